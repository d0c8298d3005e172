package eap

import (
	"bytes"
	"crypto/des"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"unicode/utf16"
)

// EAP-MSCHAPv2 (draft-kamath-pppext-eap-mschapv2-02) carries MS-CHAP-V2
// (RFC 2759); the MSK is derived as in RFC 3079 and laid out as strongSwan,
// hostapd and FreeRADIUS do: MasterReceiveKey | MasterSendKey (the
// server's view), padded with zeros to 64 bytes.

// MS-CHAPv2 opcodes.
const (
	mschapChallenge = 1
	mschapResponse  = 2
	mschapSuccess   = 3
	mschapFailure   = 4
)

const (
	challengeLen = 16
	responseLen  = 49 // PeerChallenge(16) Reserved(8) NT-Response(24) Flags(1)
	serverName   = "veil"
)

var (
	magic1 = []byte("Magic server to client signing constant")
	magic2 = []byte("Pad to make it do more than one iteration")
	// RFC 3079 §3.4.
	keyMagic1 = []byte("This is the MPPE Master Key")
	keyMagic2 = []byte("On the client side, this is the send key; on the server side, it is the receive key.")
	keyMagic3 = []byte("On the client side, this is the receive key; on the server side, it is the send key.")
	shsPad1   = make([]byte, 40)
	shsPad2   = bytes.Repeat([]byte{0xf2}, 40)
)

// ntPasswordHash is MD4 over the UTF-16LE password (RFC 2759 §8.3).
func ntPasswordHash(password []byte) []byte {
	u := utf16.Encode([]rune(string(password)))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	h := md4Sum(b)
	clear(b)
	return h[:]
}

// userName is the name hashed into the challenge: the identity without a
// leading "DOMAIN\" (RFC 2759 §8.2).
func userName(identity []byte) []byte {
	if i := bytes.LastIndexByte(identity, '\\'); i >= 0 {
		return identity[i+1:]
	}
	return identity
}

// challengeHash is RFC 2759 §8.2.
func challengeHash(peerChallenge, authChallenge, user []byte) []byte {
	h := sha1.New()
	h.Write(peerChallenge)
	h.Write(authChallenge)
	h.Write(userName(user))
	return h.Sum(nil)[:8]
}

// challengeResponse is RFC 2759 §8.5: the challenge DES-encrypted under the
// three 7-byte thirds of the zero-padded password hash.
func challengeResponse(challenge, passwordHash []byte) []byte {
	var z [21]byte
	copy(z[:], passwordHash)
	out := make([]byte, 24)
	for i := 0; i < 3; i++ {
		k := desKey(z[7*i : 7*i+7])
		c, _ := des.NewCipher(k) // 8-byte key: cannot fail
		c.Encrypt(out[8*i:], challenge)
		clear(k)
	}
	clear(z[:])
	return out
}

// desKey spreads 56 key bits over 8 bytes, leaving the parity bits clear
// (DES ignores them).
func desKey(k []byte) []byte {
	v := uint64(0)
	for _, b := range k {
		v = v<<8 | uint64(b)
	}
	out := make([]byte, 8)
	for i := 0; i < 8; i++ {
		out[i] = byte(v>>(49-7*i)) << 1 & 0xfe
	}
	return out
}

// ntResponse is GenerateNTResponse (RFC 2759 §8.1).
func ntResponse(authChallenge, peerChallenge, user, passwordHash []byte) []byte {
	return challengeResponse(challengeHash(peerChallenge, authChallenge, user), passwordHash)
}

// authenticatorResponse is GenerateAuthenticatorResponse (RFC 2759 §8.7):
// the 20 bytes the server sends as "S=<hex>" to prove it knows the password.
func authenticatorResponse(passwordHash, ntResp, peerChallenge, authChallenge, user []byte) []byte {
	hh := md4Sum(passwordHash)
	h := sha1.New()
	h.Write(hh[:])
	h.Write(ntResp)
	h.Write(magic1)
	digest := h.Sum(nil)
	h.Reset()
	h.Write(digest)
	h.Write(challengeHash(peerChallenge, authChallenge, user))
	h.Write(magic2)
	clear(hh[:])
	return h.Sum(nil)
}

// masterKey is GetMasterKey (RFC 3079 §3.4).
func masterKey(passwordHash, ntResp []byte) []byte {
	hh := md4Sum(passwordHash)
	h := sha1.New()
	h.Write(hh[:])
	h.Write(ntResp)
	h.Write(keyMagic1)
	clear(hh[:])
	return h.Sum(nil)[:16]
}

// startKey is GetAsymmetricStartKey (RFC 3079 §3.4) for a 128-bit key;
// keyMagic2 gives the client's send (server's receive) key, keyMagic3 the
// server's send key.
func startKey(master, magic []byte) []byte {
	h := sha1.New()
	h.Write(master)
	h.Write(shsPad1)
	h.Write(magic)
	h.Write(shsPad2)
	return h.Sum(nil)[:16]
}

// mschapMSK derives the 64-byte MSK: MasterReceiveKey | MasterSendKey as
// the server sees them, then 32 zero bytes.
func mschapMSK(passwordHash, ntResp []byte) []byte {
	master := masterKey(passwordHash, ntResp)
	msk := make([]byte, 0, 64)
	msk = append(msk, startKey(master, keyMagic2)...)
	msk = append(msk, startKey(master, keyMagic3)...)
	msk = append(msk, make([]byte, 32)...)
	clear(master)
	return msk
}

// mschapHeader builds MS-CHAPv2 type-data: OpCode, MS-CHAPv2-ID, MS-Length
// (the EAP length minus 5, i.e. the length of this type-data) and body.
func mschapHeader(op, id uint8, body []byte) []byte {
	b := make([]byte, 4, 4+len(body))
	b[0], b[1] = op, id
	b = append(b, body...)
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
	return b
}

// mschapServer is the authenticator side.
type mschapServer struct {
	identity  []byte
	pwHash    []byte // nil: unknown identity (the exchange still runs, then fails)
	id        uint8
	challenge [challengeLen]byte
	state     int // 0 challenge sent, 1 success sent, 2 failure sent
	msk       []byte
}

func newMSCHAPServer(identity, password []byte) *mschapServer {
	s := &mschapServer{identity: identity}
	if password != nil {
		s.pwHash = ntPasswordHash(password)
	}
	return s
}

func (s *mschapServer) typ() uint8 { return TypeMSCHAPv2 }

func (s *mschapServer) start(uint8) ([]byte, error) {
	rand.Read(s.challenge[:])
	var idb [1]byte
	rand.Read(idb[:])
	s.id = idb[0]
	body := append([]byte{challengeLen}, s.challenge[:]...)
	body = append(body, serverName...)
	return mschapHeader(mschapChallenge, s.id, body), nil
}

func (s *mschapServer) next(_ uint8, data []byte) ([]byte, *result, error) {
	if len(data) < 1 {
		return nil, nil, errors.New("EAP-MSCHAPv2 response is empty")
	}
	switch s.state {
	case 0:
		if data[0] != mschapResponse {
			return nil, nil, fmt.Errorf("EAP-MSCHAPv2: expected a Response, got opcode %d", data[0])
		}
		if len(data) < 5+responseLen || data[4] != responseLen {
			return nil, nil, errors.New("EAP-MSCHAPv2 Response is malformed")
		}
		if data[1] != s.id {
			return nil, nil, errors.New("EAP-MSCHAPv2 Response answers another challenge")
		}
		r := data[5 : 5+responseLen]
		peerChallenge, nt := r[:16], r[24:48]
		// The name in the Response should be the identity; the hash is
		// over the identity the user was looked up by, so a peer cannot
		// pick the name the password is checked for.
		if s.pwHash != nil {
			want := ntResponse(s.challenge[:], peerChallenge, s.identity, s.pwHash)
			if hmac.Equal(want, nt) {
				auth := authenticatorResponse(s.pwHash, nt, peerChallenge, s.challenge[:], s.identity)
				s.msk = mschapMSK(s.pwHash, nt)
				s.state = 1
				msg := "S=" + strings.ToUpper(hex.EncodeToString(auth)) + " M=Welcome to veil"
				return mschapHeader(mschapSuccess, s.id, []byte(msg)), nil, nil
			}
		}
		s.state = 2
		var c [16]byte
		rand.Read(c[:])
		msg := "E=691 R=0 C=" + strings.ToUpper(hex.EncodeToString(c[:])) + " V=3 M=Authentication failed"
		return mschapHeader(mschapFailure, s.id, []byte(msg)), nil, nil
	case 1:
		if data[0] != mschapSuccess {
			return nil, nil, fmt.Errorf("EAP-MSCHAPv2: expected a Success Response, got opcode %d", data[0])
		}
		return nil, &result{ok: true, msk: s.msk}, nil
	default:
		reason := "wrong password"
		if s.pwHash == nil {
			reason = "unknown EAP identity"
		}
		return nil, &result{reason: "EAP-MSCHAPv2: " + reason}, nil
	}
}

func (s *mschapServer) close() {
	clear(s.pwHash)
	clear(s.msk)
}

// mschapClient is the peer side.
type mschapClient struct {
	identity []byte
	pwHash   []byte
	auth     []byte // expected authenticator response
	msk      []byte
	ok       bool
	failed   string
}

func newMSCHAPClient(identity, password []byte) *mschapClient {
	return &mschapClient{identity: identity, pwHash: ntPasswordHash(password)}
}

func (c *mschapClient) typ() uint8 { return TypeMSCHAPv2 }

func (c *mschapClient) next(_ uint8, data []byte) ([]byte, error) {
	if len(data) < 4 {
		return nil, errors.New("EAP-MSCHAPv2 request is too short")
	}
	switch data[0] {
	case mschapChallenge:
		if c.auth != nil {
			return nil, errors.New("EAP-MSCHAPv2: a second challenge")
		}
		if len(data) < 5+challengeLen || data[4] != challengeLen {
			return nil, errors.New("EAP-MSCHAPv2 Challenge is malformed")
		}
		authChallenge := data[5 : 5+challengeLen]
		var r [responseLen]byte
		rand.Read(r[:16])
		nt := ntResponse(authChallenge, r[:16], c.identity, c.pwHash)
		copy(r[24:48], nt)
		c.auth = authenticatorResponse(c.pwHash, nt, r[:16], authChallenge, c.identity)
		c.msk = mschapMSK(c.pwHash, nt)
		body := append([]byte{responseLen}, r[:]...)
		body = append(body, c.identity...)
		return mschapHeader(mschapResponse, data[1], body), nil
	case mschapSuccess:
		if c.auth == nil {
			return nil, errors.New("EAP-MSCHAPv2 Success before a challenge")
		}
		s, ok := mschapField(string(data[4:]), "S=")
		got, err := hex.DecodeString(s)
		if !ok || err != nil || !hmac.Equal(got, c.auth) {
			// The server does not know our password: it may be an impostor.
			return nil, errors.New("EAP-MSCHAPv2: the server's authenticator response is wrong (it does not know the password)")
		}
		c.ok = true
		return []byte{mschapSuccess}, nil
	case mschapFailure:
		e, _ := mschapField(string(data[4:]), "E=")
		c.failed = "EAP-MSCHAPv2: the server refused the password (error " + e + ")"
		return []byte{mschapFailure}, nil
	}
	return nil, fmt.Errorf("EAP-MSCHAPv2: unexpected opcode %d", data[0])
}

// mschapField finds "K=value" in a space-separated success/failure message.
func mschapField(msg, key string) (string, bool) {
	for _, f := range strings.Fields(msg) {
		if v, ok := strings.CutPrefix(f, key); ok {
			return v, true
		}
	}
	return "", false
}

func (c *mschapClient) finished() bool { return c.ok }
func (c *mschapClient) key() []byte    { return c.msk }
func (c *mschapClient) failure() string {
	return c.failed
}

func (c *mschapClient) close() {
	clear(c.pwHash)
	clear(c.msk)
}

// md4Sum is MD4 (RFC 1320), which MS-CHAPv2 needs for the NT password
// hash. It is written out here because x/crypto/md4 is deprecated.
func md4Sum(msg []byte) [16]byte {
	s := [4]uint32{0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476}
	n := len(msg)
	padded := make([]byte, 0, n+72)
	padded = append(padded, msg...)
	padded = append(padded, 0x80)
	for len(padded)%64 != 56 {
		padded = append(padded, 0)
	}
	padded = binary.LittleEndian.AppendUint64(padded, uint64(n)<<3)
	var x [16]uint32
	for off := 0; off < len(padded); off += 64 {
		for i := range x {
			x[i] = binary.LittleEndian.Uint32(padded[off+4*i:])
		}
		a, b, c, d := s[0], s[1], s[2], s[3]
		f := func(x, y, z uint32) uint32 { return x&y | ^x&z }
		g := func(x, y, z uint32) uint32 { return x&y | x&z | y&z }
		h := func(x, y, z uint32) uint32 { return x ^ y ^ z }
		r1 := [4]int{3, 7, 11, 19}
		for i := 0; i < 16; i++ {
			v := bits.RotateLeft32(a+f(b, c, d)+x[i], r1[i%4])
			a, b, c, d = d, v, b, c
		}
		r2 := [4]int{3, 5, 9, 13}
		o2 := [16]int{0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15}
		for i := 0; i < 16; i++ {
			v := bits.RotateLeft32(a+g(b, c, d)+x[o2[i]]+0x5a827999, r2[i%4])
			a, b, c, d = d, v, b, c
		}
		r3 := [4]int{3, 9, 11, 15}
		o3 := [16]int{0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15}
		for i := 0; i < 16; i++ {
			v := bits.RotateLeft32(a+h(b, c, d)+x[o3[i]]+0x6ed9eba1, r3[i%4])
			a, b, c, d = d, v, b, c
		}
		s[0] += a
		s[1] += b
		s[2] += c
		s[3] += d
	}
	clear(padded)
	clear(x[:])
	var out [16]byte
	for i, v := range s {
		binary.LittleEndian.PutUint32(out[4*i:], v)
	}
	return out
}
