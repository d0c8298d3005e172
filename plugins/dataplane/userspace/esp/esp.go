// Package esp seals and opens ESP packets (RFC 4303) in place.
//
// Packets live in caller-owned buffers with headroom: Seal writes the ESP
// header in front of the payload and the trailer and ICV behind it, Open
// decrypts in place and returns a sub-slice. Neither allocates. An SA is safe
// for concurrent use; the caller supplies the sequence number (an atomic
// counter on the send side, the replay window's inference on the receive side).
//
// Algorithms are rows in the algorithms table: AES-GCM-16 (RFC 4106) and
// ChaCha20-Poly1305 (RFC 7634), both with a 4-byte salt at the end of the key
// and the 64-bit sequence number as the 8-byte explicit IV, and AES-CBC with
// HMAC-SHA2 (RFC 3602, RFC 4868).
package esp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
)

// HeaderLen is the SPI and sequence number in front of the IV.
const HeaderLen = 8

// Headroom is what Seal and Open need in front of the ESP header: the nonce
// (12 bytes) and the ESN AAD (4 bytes) are built there so that nothing
// escapes to the heap, so every buffer keeps at least this much.
const Headroom = 16

var (
	ErrShort     = errors.New("esp: packet too short")
	ErrAuth      = errors.New("esp: authentication failed")
	ErrPadding   = errors.New("esp: bad padding")
	ErrNoRoom    = errors.New("esp: buffer lacks headroom or tailroom")
	ErrAlgorithm = errors.New("esp: unsupported algorithm")
)

type aeadAlgorithm struct {
	keyLens []int // without the salt
	newAEAD func(key []byte) (cipher.AEAD, error)
}

// aeadAlgorithms: encryption names as provider.ChildSA carries them.
var aeadAlgorithms = map[string]aeadAlgorithm{
	"aes-gcm-16": {[]int{16, 24, 32}, func(k []byte) (cipher.AEAD, error) {
		b, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(b)
	}},
	"chacha20-poly1305": {[]int{32}, chacha20poly1305.New},
}

type integAlgorithm struct {
	keyLen, icvLen int
	hash           func() hash.Hash
}

var integAlgorithms = map[string]integAlgorithm{
	"hmac-sha2-256-128": {32, 16, sha256.New},
	"hmac-sha2-384-192": {48, 24, sha512.New384},
	"hmac-sha2-512-256": {64, 32, sha512.New},
}

const saltLen = 4

// SA is one direction of an ESP security association.
type SA struct {
	SPI uint32
	ESN bool

	aead cipher.AEAD
	salt [saltLen]byte

	// AES-CBC + HMAC.
	block   cipher.Block
	macPool sync.Pool // of hash.Hash keyed with the integrity key
	integ   integAlgorithm

	ivLen, icvLen, align int
}

// New builds an SA from the negotiated algorithm names and keys. The keys are
// copied into cipher state; the caller may zero its copies.
func New(spi uint32, encryption string, encKey []byte, integrity string, integKey []byte, esn bool) (*SA, error) {
	s := &SA{SPI: spi, ESN: esn}
	if a, ok := aeadAlgorithms[encryption]; ok {
		if integrity != "" {
			return nil, fmt.Errorf("%w: %s takes no integrity algorithm, got %q", ErrAlgorithm, encryption, integrity)
		}
		n := len(encKey) - saltLen
		if !containsInt(a.keyLens, n) {
			return nil, fmt.Errorf("esp: %s key must be %v bytes plus a %d-byte salt, got %d", encryption, a.keyLens, saltLen, len(encKey))
		}
		aead, err := a.newAEAD(encKey[:n])
		if err != nil {
			return nil, err
		}
		s.aead = aead
		copy(s.salt[:], encKey[n:])
		s.ivLen, s.icvLen, s.align = 8, aead.Overhead(), 4
		return s, nil
	}
	if encryption != "aes-cbc" {
		return nil, fmt.Errorf("%w: encryption %q", ErrAlgorithm, encryption)
	}
	ia, ok := integAlgorithms[integrity]
	if !ok {
		return nil, fmt.Errorf("%w: integrity %q", ErrAlgorithm, integrity)
	}
	if len(integKey) != ia.keyLen {
		return nil, fmt.Errorf("esp: %s key must be %d bytes, got %d", integrity, ia.keyLen, len(integKey))
	}
	b, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, fmt.Errorf("esp: aes-cbc key: %w", err)
	}
	key := append([]byte(nil), integKey...)
	s.block, s.integ = b, ia
	s.macPool.New = func() any { return hmac.New(ia.hash, key) }
	s.ivLen, s.icvLen, s.align = aes.BlockSize, ia.icvLen, aes.BlockSize
	return s, nil
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// PrefixLen is the ESP header plus IV that Seal writes in front of the payload.
func (s *SA) PrefixLen() int { return HeaderLen + s.ivLen }

// SealedLen is the size of the ESP packet for an n-byte payload.
func (s *SA) SealedLen(n int) int {
	body := n + 2
	body += (s.align - body%s.align) % s.align
	return HeaderLen + s.ivLen + body + s.icvLen
}

// MaxOverhead is the largest number of bytes Seal adds to any payload.
func (s *SA) MaxOverhead() int { return HeaderLen + s.ivLen + 2 + s.align - 1 + s.icvLen }

// Seal encrypts the payload buf[off:off+n] in place as ESP with sequence
// number seq and returns the ESP packet, which starts at off-PrefixLen().
// buf needs Headroom+PrefixLen() bytes before off and the trailer after the
// payload within len(buf).
func (s *SA) Seal(buf []byte, off, n int, nextHeader byte, seq uint64) ([]byte, error) {
	start := off - s.PrefixLen()
	end := start + s.SealedLen(n)
	if start < Headroom || end > len(buf) || n < 0 {
		return nil, ErrNoRoom
	}
	// Trailer: monotonic padding 1, 2, 3... (RFC 4303 §2.4), pad length, next header.
	body := s.SealedLen(n) - HeaderLen - s.ivLen - s.icvLen
	pad := body - n - 2
	p := off + n
	for i := 0; i < pad; i++ {
		buf[p+i] = byte(i + 1)
	}
	buf[p+pad] = byte(pad)
	buf[p+pad+1] = nextHeader
	if s.aead != nil {
		binary.BigEndian.PutUint64(buf[start+HeaderLen:], seq) // explicit IV
		return s.sealAEAD(buf, start, body, seq), nil
	}
	if _, err := rand.Read(buf[start+HeaderLen : off]); err != nil {
		return nil, err
	}
	return s.sealCBC(buf, start, body, seq), nil
}

// sealAEAD encrypts buf[start+prefix:][:body] with the IV already in place.
func (s *SA) sealAEAD(buf []byte, start, body int, seq uint64) []byte {
	nonce := s.writeNonce(buf, start)
	aad := s.writeAAD(buf, start, seq)
	off := start + HeaderLen + s.ivLen
	s.aead.Seal(buf[off:off], nonce, buf[off:off+body], aad)
	s.writeHeader(buf, start, seq)
	return buf[start : off+body+s.icvLen]
}

func (s *SA) sealCBC(buf []byte, start, body int, seq uint64) []byte {
	s.writeHeader(buf, start, seq)
	iv := buf[start+HeaderLen : start+HeaderLen+s.ivLen]
	off := start + HeaderLen + s.ivLen
	cipher.NewCBCEncrypter(s.block, iv).CryptBlocks(buf[off:off+body], buf[off:off+body])
	mac := s.macPool.Get().(hash.Hash)
	mac.Reset()
	mac.Write(buf[start : off+body])
	if s.ESN {
		var hi [4]byte
		binary.BigEndian.PutUint32(hi[:], uint32(seq>>32))
		mac.Write(hi[:])
	}
	var sum [64]byte
	full := mac.Sum(sum[:0])
	s.macPool.Put(mac)
	copy(buf[off+body:], full[:s.icvLen])
	return buf[start : off+body+s.icvLen]
}

// writeNonce builds salt|IV (RFC 4106 §4, RFC 7634 §2) in the headroom.
func (s *SA) writeNonce(buf []byte, start int) []byte {
	n := buf[start-16 : start-4]
	copy(n, s.salt[:])
	copy(n[saltLen:], buf[start+HeaderLen:start+HeaderLen+8])
	return n
}

// writeAAD builds SPI|Seq (or SPI|SeqHigh|SeqLow with ESN, RFC 4303 §2.2.1)
// in the header position, using the headroom for the ESN case.
func (s *SA) writeAAD(buf []byte, start int, seq uint64) []byte {
	if !s.ESN {
		s.writeHeader(buf, start, seq)
		return buf[start : start+HeaderLen]
	}
	binary.BigEndian.PutUint32(buf[start-4:], s.SPI)
	binary.BigEndian.PutUint64(buf[start:], seq)
	return buf[start-4 : start+HeaderLen]
}

func (s *SA) writeHeader(buf []byte, start int, seq uint64) {
	binary.BigEndian.PutUint32(buf[start:], s.SPI)
	binary.BigEndian.PutUint32(buf[start+4:], uint32(seq))
}

// ParseHeader returns the SPI and low 32 bits of the sequence number.
func ParseHeader(pkt []byte) (spi, seq uint32, err error) {
	if len(pkt) < HeaderLen {
		return 0, 0, ErrShort
	}
	return binary.BigEndian.Uint32(pkt), binary.BigEndian.Uint32(pkt[4:]), nil
}

// Open authenticates and decrypts the ESP packet buf[start:end] in place,
// given the full sequence number (from the replay window), and returns the
// payload and the Next Header value. buf needs Headroom bytes before start.
func (s *SA) Open(buf []byte, start, end int, seq uint64) ([]byte, byte, error) {
	if start < Headroom || end > len(buf) || end-start < HeaderLen+s.ivLen+s.align+s.icvLen {
		return nil, 0, ErrShort
	}
	off := start + HeaderLen + s.ivLen
	body := end - off - s.icvLen
	if body%s.align != 0 {
		return nil, 0, ErrPadding
	}
	var err error
	if s.aead != nil {
		nonce := s.writeNonce(buf, start)
		aad := s.writeAAD(buf, start, seq)
		_, err = s.aead.Open(buf[off:off], nonce, buf[off:end], aad)
		s.writeHeader(buf, start, seq)
	} else {
		err = s.openCBC(buf, start, off, body, seq)
	}
	if err != nil {
		return nil, 0, ErrAuth
	}
	padLen := int(buf[off+body-2])
	nextHeader := buf[off+body-1]
	n := body - 2 - padLen
	if n < 0 {
		return nil, 0, ErrPadding
	}
	for i := 0; i < padLen; i++ {
		if buf[off+n+i] != byte(i+1) {
			return nil, 0, ErrPadding
		}
	}
	return buf[off : off+n], nextHeader, nil
}

func (s *SA) openCBC(buf []byte, start, off, body int, seq uint64) error {
	mac := s.macPool.Get().(hash.Hash)
	mac.Reset()
	mac.Write(buf[start : off+body])
	if s.ESN {
		var hi [4]byte
		binary.BigEndian.PutUint32(hi[:], uint32(seq>>32))
		mac.Write(hi[:])
	}
	var sum [64]byte
	full := mac.Sum(sum[:0])
	s.macPool.Put(mac)
	if subtle.ConstantTimeCompare(full[:s.icvLen], buf[off+body:off+body+s.icvLen]) != 1 {
		return ErrAuth
	}
	iv := buf[start+HeaderLen : off]
	cipher.NewCBCDecrypter(s.block, iv).CryptBlocks(buf[off:off+body], buf[off:off+body])
	return nil
}
