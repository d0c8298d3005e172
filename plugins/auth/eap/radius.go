package eap

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/veil-ipsec/veil/sdk/auth"
)

// RADIUS pass-through (RFC 3579): the EAP server asks the peer for its
// identity itself, then relays every EAP response to a RADIUS server in an
// Access-Request and every EAP request back from its Access-Challenge. On
// Access-Accept the MSK comes from the MS-MPPE keys (RFC 2548), which is
// how FreeRADIUS and strongSwan's eap-radius carry it.

type radiusConfig struct {
	Server  string
	Secret  []byte
	Timeout time.Duration
	// EAPID is the server connection's eap_id: only that identity may log
	// in ("" or "%any": anyone the RADIUS server knows).
	EAPID string
}

// RADIUS codes (RFC 2865 §3).
const (
	radiusAccessRequest   = 1
	radiusAccessAccept    = 2
	radiusAccessReject    = 3
	radiusAccessChallenge = 11
)

// RADIUS attributes used here (RFC 2865, 2869, 3579).
const (
	attrUserName       = 1
	attrServiceType    = 6
	attrFramedMTU      = 12
	attrReplyMessage   = 18
	attrState          = 24
	attrVendorSpecific = 26
	attrNASIdentifier  = 32
	attrNASPortType    = 61
	attrEAPMessage     = 79
	attrMessageAuth    = 80

	vendorMicrosoft = 311
	msMPPESendKey   = 16
	msMPPERecvKey   = 17

	serviceTypeFramed  = 2
	nasPortTypeVirtual = 5

	radiusHeaderLen = 20
	radiusMaxLen    = 4096 // RFC 2865 §3
	radiusMaxValue  = 253
)

// radiusPacket is a RADIUS packet: the header and its attributes in order.
type radiusPacket struct {
	Code  uint8
	ID    uint8
	Auth  [16]byte
	Attrs []radiusAttr
}

type radiusAttr struct {
	Type  uint8
	Value []byte
}

// parseRADIUS parses b strictly: the length field must fit in b (octets
// past it are padding, RFC 2865 §3) and the attributes must fill it.
func parseRADIUS(b []byte) (*radiusPacket, error) {
	if len(b) < radiusHeaderLen {
		return nil, fmt.Errorf("RADIUS packet of %d bytes is shorter than its header", len(b))
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n < radiusHeaderLen || n > len(b) || n > radiusMaxLen {
		return nil, fmt.Errorf("RADIUS length field %d does not fit the %d bytes received", n, len(b))
	}
	p := &radiusPacket{Code: b[0], ID: b[1]}
	copy(p.Auth[:], b[4:20])
	for rest := b[radiusHeaderLen:n]; len(rest) > 0; {
		if len(rest) < 2 || rest[1] < 2 || int(rest[1]) > len(rest) {
			return nil, errors.New("RADIUS attribute overruns the packet")
		}
		p.Attrs = append(p.Attrs, radiusAttr{Type: rest[0], Value: rest[2:rest[1]]})
		rest = rest[rest[1]:]
	}
	return p, nil
}

// marshal encodes p; a Message-Authenticator attribute is encoded as is
// (sign fills it in).
func (p *radiusPacket) marshal() ([]byte, error) {
	b := make([]byte, radiusHeaderLen, 256)
	b[0], b[1] = p.Code, p.ID
	copy(b[4:20], p.Auth[:])
	for _, a := range p.Attrs {
		if len(a.Value) > radiusMaxValue {
			return nil, fmt.Errorf("RADIUS attribute %d of %d bytes is too long", a.Type, len(a.Value))
		}
		b = append(b, a.Type, byte(2+len(a.Value)))
		b = append(b, a.Value...)
	}
	if len(b) > radiusMaxLen {
		return nil, fmt.Errorf("RADIUS packet of %d bytes is over the %d-byte limit", len(b), radiusMaxLen)
	}
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
	return b, nil
}

func (p *radiusPacket) add(typ uint8, value []byte) {
	p.Attrs = append(p.Attrs, radiusAttr{Type: typ, Value: value})
}

// get returns the first attribute of a type, or nil.
func (p *radiusPacket) get(typ uint8) []byte {
	for _, a := range p.Attrs {
		if a.Type == typ {
			return a.Value
		}
	}
	return nil
}

// eapMessage joins the EAP-Message attributes (RFC 3579 §3.1).
func (p *radiusPacket) eapMessage() []byte {
	var m []byte
	for _, a := range p.Attrs {
		if a.Type == attrEAPMessage {
			m = append(m, a.Value...)
		}
	}
	return m
}

// msAttr returns the value of a Microsoft vendor attribute, or nil.
func (p *radiusPacket) msAttr(typ uint8) []byte {
	for _, a := range p.Attrs {
		v := a.Value
		if a.Type != attrVendorSpecific || len(v) < 4 || binary.BigEndian.Uint32(v) != vendorMicrosoft {
			continue
		}
		// One vendor attribute may carry several sub-attributes.
		for v = v[4:]; len(v) >= 2 && v[1] >= 2 && int(v[1]) <= len(v); v = v[v[1]:] {
			if v[0] == typ {
				return v[2:v[1]]
			}
		}
	}
	return nil
}

// messageAuthenticator is HMAC-MD5 over the packet with the
// Message-Authenticator value zeroed and, in a reply, the Request
// Authenticator in place of its own (RFC 3579 §3.2). b is modified.
func messageAuthenticator(b []byte, reqAuth *[16]byte, secret []byte) (sum []byte, found bool) {
	off := -1
	for i := radiusHeaderLen; i+2 <= len(b) && b[i+1] >= 2 && i+int(b[i+1]) <= len(b); i += int(b[i+1]) {
		if b[i] == attrMessageAuth && b[i+1] == 18 {
			off = i + 2
			break
		}
	}
	if off < 0 {
		return nil, false
	}
	clear(b[off : off+16])
	if reqAuth != nil {
		copy(b[4:20], reqAuth[:])
	}
	m := hmac.New(md5.New, secret)
	m.Write(b)
	return m.Sum(nil), true
}

// radiusSession is the EAP server of one conversation, relaying to RADIUS.
type radiusSession struct {
	cfg   *radiusConfig
	req   *auth.EAPRequest
	conn  *net.UDPConn
	log   *slog.Logger
	radID uint8 // identifier of the last Access-Request
	eapID uint8 // identifier of our own Identity request

	identity []byte
	state    []byte
	started  bool
	done     bool
	rounds   int
	dropped  int // replies dropped as malformed or unauthenticated
}

func newRADIUSSession(c *radiusConfig, req *auth.EAPRequest) (auth.EAPSession, error) {
	if c.Timeout <= 0 {
		c.Timeout = 3 * time.Second
	}
	raddr, err := net.ResolveUDPAddr("udp", c.Server)
	if err != nil {
		clear(c.Secret)
		return nil, fmt.Errorf("radius_server %q: %w", c.Server, err)
	}
	conn, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		clear(c.Secret)
		return nil, fmt.Errorf("radius_server %q: %w", c.Server, err)
	}
	var ids [2]byte
	rand.Read(ids[:])
	return &radiusSession{
		cfg: c, req: req, conn: conn, log: slog.Default(),
		radID: ids[0], eapID: ids[1],
	}, nil
}

func (s *radiusSession) Step(ctx context.Context, in []byte) (*auth.EAPStep, error) {
	if s.done {
		return nil, errors.New("the EAP conversation has ended")
	}
	if in == nil {
		if s.started {
			return nil, errors.New("EAP server: no response to the last request")
		}
		s.started = true
		return &auth.EAPStep{Message: (&Packet{Code: CodeRequest, ID: s.eapID, Type: TypeIdentity}).Marshal()}, nil
	}
	if !s.started {
		return nil, errors.New("EAP server: a response before any request")
	}
	if s.rounds++; s.rounds > maxRounds {
		return s.fail(s.eapID, "the EAP conversation took too many rounds"), nil
	}
	pk, err := ParsePacket(in)
	if err != nil {
		return nil, err
	}
	if pk.Code != CodeResponse {
		return nil, fmt.Errorf("EAP server: got code %d, expected a response", pk.Code)
	}
	if s.identity == nil {
		if pk.ID != s.eapID {
			return nil, fmt.Errorf("EAP response %d does not answer request %d", pk.ID, s.eapID)
		}
		if pk.Type != TypeIdentity {
			return s.fail(pk.ID, fmt.Sprintf("the peer answered the identity request with %s", typeName(pk.Type))), nil
		}
		if len(pk.Data) == 0 || len(pk.Data) > radiusMaxValue || bytes.IndexByte(pk.Data, 0) >= 0 {
			return s.fail(pk.ID, "the peer's EAP identity is empty, too long or holds NUL"), nil
		}
		s.identity = pk.Data
		if s.cfg.EAPID != "" && s.cfg.EAPID != "%any" && s.cfg.EAPID != string(s.identity) {
			return s.fail(pk.ID, fmt.Sprintf("EAP identity %q is not the expected %q", s.identity, s.cfg.EAPID)), nil
		}
	}
	reply, reqAuth, err := s.exchange(ctx, in)
	if err != nil {
		return nil, err
	}
	return s.answer(pk.ID, reply, reqAuth), nil
}

// answer turns an authenticated RADIUS reply into the EAP step for the
// peer; id is the identifier of the EAP response it answers.
func (s *radiusSession) answer(id uint8, reply *radiusPacket, reqAuth *[16]byte) *auth.EAPStep {
	eap := reply.eapMessage()
	switch reply.Code {
	case radiusAccessChallenge:
		rp, err := ParsePacket(eap)
		if err != nil || rp.Code != CodeRequest {
			return s.fail(id, "the RADIUS server's Access-Challenge carries no EAP request")
		}
		s.state = append([]byte(nil), reply.get(attrState)...)
		return &auth.EAPStep{Message: eap[:binary.BigEndian.Uint16(eap[2:4])]}
	case radiusAccessAccept:
		msg := (&Packet{Code: CodeSuccess, ID: id}).Marshal()
		if len(eap) > 0 {
			// The EAP-Success is the server's to send; an Accept that
			// carries anything else contradicts itself.
			if rp, err := ParsePacket(eap); err != nil || rp.Code != CodeSuccess {
				return s.fail(id, "the RADIUS server's Access-Accept carries no EAP-Success")
			}
			msg = eap[:4]
		}
		msk, err := s.msk(reply, reqAuth)
		if err != nil {
			return s.fail(id, err.Error())
		}
		s.done = true
		return &auth.EAPStep{Message: msg, Done: true, Success: true, MSK: msk, Identity: s.identity}
	default: // radiusAccessReject; check passes no other code
		reason := fmt.Sprintf("RADIUS server rejected %q", s.identity)
		if m := reply.get(attrReplyMessage); len(m) > 0 {
			// The server's text goes to logs and status: printable only.
			reason += ": " + strings.Map(func(r rune) rune {
				if r == utf8.RuneError || !unicode.IsPrint(r) {
					return '?'
				}
				return r
			}, string(m))
		}
		return s.fail(id, reason)
	}
}

// fail ends the conversation with EAP-Failure; id is the identifier of
// the response it answers (RFC 3748 §4.2).
func (s *radiusSession) fail(id uint8, reason string) *auth.EAPStep {
	s.done = true
	return &auth.EAPStep{
		Message: (&Packet{Code: CodeFailure, ID: id}).Marshal(),
		Done:    true, Identity: s.identity, Reason: reason,
	}
}

// request builds the Access-Request that carries one EAP response.
func (s *radiusSession) request(eap []byte) ([]byte, *[16]byte, error) {
	s.radID++
	p := &radiusPacket{Code: radiusAccessRequest, ID: s.radID}
	rand.Read(p.Auth[:])
	p.add(attrUserName, s.identity)
	p.add(attrServiceType, []byte{0, 0, 0, serviceTypeFramed})
	p.add(attrNASPortType, []byte{0, 0, 0, nasPortTypeVirtual})
	p.add(attrNASIdentifier, []byte(nasIdentifier()))
	// EAP-TLS fragments must fit in IKE messages with room to spare.
	p.add(attrFramedMTU, []byte{0, 0, 0x04, 0x00})
	for rest := eap; len(rest) > 0; {
		n := min(len(rest), radiusMaxValue)
		p.add(attrEAPMessage, rest[:n])
		rest = rest[n:]
	}
	if s.state != nil {
		p.add(attrState, s.state)
	}
	p.add(attrMessageAuth, make([]byte, 16))
	b, err := p.marshal()
	if err != nil {
		return nil, nil, err
	}
	sum, _ := messageAuthenticator(bytes.Clone(b), nil, s.cfg.Secret)
	copy(b[len(b)-16:], sum)
	return b, &p.Auth, nil
}

// exchange sends one Access-Request and waits for its authenticated
// reply, sending the same packet again every third of the timeout.
func (s *radiusSession) exchange(ctx context.Context, eap []byte) (*radiusPacket, *[16]byte, error) {
	req, reqAuth, err := s.request(eap)
	if err != nil {
		return nil, nil, err
	}
	deadline := time.Now().Add(s.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	interval := s.cfg.Timeout / 3
	// A cancelled context ends the wait now, not at the next retransmission.
	stop := context.AfterFunc(ctx, func() { s.conn.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, radiusMaxLen+1)
	var lastErr error
	bad := 0 // replies to this request dropped
	for {
		if _, err := s.conn.Write(req); err != nil {
			lastErr = err
		}
		resend := time.Now().Add(interval)
		if resend.After(deadline) {
			resend = deadline
		}
		for ctx.Err() == nil {
			s.conn.SetReadDeadline(resend)
			n, err := s.conn.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				// An ICMP error (the server is down) is not an answer:
				// keep waiting, it may come up, but say so at the end.
				lastErr = err
				if time.Now().Before(resend) {
					time.Sleep(min(time.Until(resend), 50*time.Millisecond))
					continue
				}
				break
			}
			if p, why := s.check(buf[:n], reqAuth); p != nil {
				return p, reqAuth, nil
			} else if why != "" {
				s.dropped++
				s.log.Debug("eap: dropped a RADIUS reply", "server", s.cfg.Server, "why", why)
				lastErr = errors.New(why)
				bad++
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("RADIUS server %s: %w", s.cfg.Server, err)
		}
		if !time.Now().Before(deadline) {
			break
		}
	}
	switch {
	case bad > 0:
		return nil, nil, fmt.Errorf("RADIUS server %s sent no valid answer within %v: %d replies dropped, the last because %v", s.cfg.Server, s.cfg.Timeout, bad, lastErr)
	case lastErr != nil:
		return nil, nil, fmt.Errorf("RADIUS server %s did not answer within %v (%v)", s.cfg.Server, s.cfg.Timeout, lastErr)
	}
	// RADIUS servers silently drop requests they cannot authenticate.
	return nil, nil, fmt.Errorf("RADIUS server %s did not answer within %v (is radius_secret the server's secret for this gateway?)", s.cfg.Server, s.cfg.Timeout)
}

// check accepts a reply to the outstanding request: the right identifier,
// a known code, a valid Response Authenticator and Message-Authenticator.
// Otherwise it returns why it drops the reply ("" for a stale reply to an
// earlier request, which retransmissions can produce).
func (s *radiusSession) check(b []byte, reqAuth *[16]byte) (*radiusPacket, string) {
	p, err := parseRADIUS(b)
	if err != nil {
		return nil, err.Error()
	}
	if p.ID != s.radID {
		return nil, ""
	}
	switch p.Code {
	case radiusAccessAccept, radiusAccessReject, radiusAccessChallenge:
	default:
		return nil, fmt.Sprintf("RADIUS code %d is not an answer to an Access-Request", p.Code)
	}
	b = bytes.Clone(b[:binary.BigEndian.Uint16(b[2:4])])
	// Response Authenticator = MD5(Code|ID|Length|RequestAuth|Attributes|Secret).
	h := md5.New()
	h.Write(b[:4])
	h.Write(reqAuth[:])
	h.Write(b[radiusHeaderLen:])
	h.Write(s.cfg.Secret)
	if subtle.ConstantTimeCompare(h.Sum(nil), p.Auth[:]) != 1 {
		return nil, "the Response Authenticator does not match (wrong RADIUS secret?)"
	}
	got := p.get(attrMessageAuth)
	want, ok := messageAuthenticator(b, reqAuth, s.cfg.Secret)
	if !ok || len(got) != 16 {
		return nil, "the reply has no Message-Authenticator"
	}
	if !hmac.Equal(got, want) {
		return nil, "the Message-Authenticator does not match (wrong RADIUS secret?)"
	}
	return p, ""
}

// msk is MS-MPPE-Recv-Key | MS-MPPE-Send-Key, as FreeRADIUS splits the
// MSK into them and strongSwan's eap-radius joins them (RFC 2548 §2.4.2,
// 2.4.3); nil when the method has no key.
func (s *radiusSession) msk(p *radiusPacket, reqAuth *[16]byte) ([]byte, error) {
	recvAttr, sendAttr := p.msAttr(msMPPERecvKey), p.msAttr(msMPPESendKey)
	if recvAttr == nil && sendAttr == nil {
		return nil, nil
	}
	recv, err := decryptMPPEKey(recvAttr, reqAuth, s.cfg.Secret)
	if err != nil {
		return nil, fmt.Errorf("MS-MPPE-Recv-Key: %w", err)
	}
	send, err := decryptMPPEKey(sendAttr, reqAuth, s.cfg.Secret)
	if err != nil {
		clear(recv)
		return nil, fmt.Errorf("MS-MPPE-Send-Key: %w", err)
	}
	// EAP-MSCHAPv2 keys are 16 bytes each: the MSK is then padded with
	// zeros to the 64 bytes RFC 3748 §7.10 asks for, as the method itself
	// derives it (EAP-TLS gives 32 + 32).
	msk := make([]byte, 0, max(64, len(recv)+len(send)))
	msk = append(append(msk, recv...), send...)
	msk = msk[:max(64, len(msk))]
	clear(recv)
	clear(send)
	return msk, nil
}

// decryptMPPEKey undoes RFC 2548 §2.4.2: Salt(2) then the key's length
// octet, key and padding, XORed 16 bytes at a time with
// MD5(secret | RequestAuth | salt), then MD5(secret | previous ciphertext).
func decryptMPPEKey(v []byte, reqAuth *[16]byte, secret []byte) ([]byte, error) {
	if len(v) < 2+16 || (len(v)-2)%16 != 0 {
		return nil, fmt.Errorf("%d bytes is not a salt and whole 16-byte blocks", len(v))
	}
	if v[0]&0x80 == 0 {
		return nil, errors.New("the salt's high bit is clear")
	}
	salt, ct := v[:2], v[2:]
	plain := make([]byte, len(ct))
	prev := append(bytes.Clone(reqAuth[:]), salt...)
	for i := 0; i < len(ct); i += 16 {
		h := md5.New()
		h.Write(secret)
		h.Write(prev)
		b := h.Sum(nil)
		for j := range 16 {
			plain[i+j] = ct[i+j] ^ b[j]
		}
		prev = ct[i : i+16]
	}
	n := int(plain[0])
	if n == 0 || n > len(plain)-1 {
		clear(plain)
		return nil, fmt.Errorf("key length %d does not fit %d bytes", n, len(plain)-1)
	}
	key := append([]byte(nil), plain[1:1+n]...)
	clear(plain)
	return key, nil
}

// nasIdentifier names this gateway to the RADIUS server.
func nasIdentifier() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return "veil@" + h
	}
	return "veil"
}

func (s *radiusSession) Close() {
	s.done = true
	if s.conn != nil {
		s.conn.Close()
	}
	clear(s.cfg.Secret)
}
