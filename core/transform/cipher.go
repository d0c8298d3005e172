package transform

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/veil-ipsec/veil/core/ike"
)

// ErrAuth is returned when an SK payload fails authentication; callers
// drop the message without telling the peer why.
var ErrAuth = errors.New("transform: SK payload authentication failed")

// NewSKCipher returns the SK payload cipher for one direction of an IKE SA:
// encKey is SK_ei or SK_er (salt included for AEAD), integKey SK_ai or SK_ar
// (nil for AEAD).
func (s Suite) NewSKCipher(encKey, integKey []byte) (ike.SKCipher, error) {
	a := findEncr(s.Encr, s.EncrKeyBits)
	if a == nil {
		return nil, fmt.Errorf("encryption %d/%d not supported", s.Encr, s.EncrKeyBits)
	}
	if len(encKey) != a.keyLen() {
		return nil, fmt.Errorf("%s key of %d bytes, want %d", a.name, len(encKey), a.keyLen())
	}
	if a.aead {
		key, salt := encKey[:len(encKey)-a.saltLen], encKey[len(encKey)-a.saltLen:]
		var aead cipher.AEAD
		var err error
		if a.id == EncrChaCha20Poly1305 {
			aead, err = chacha20poly1305.New(key)
		} else {
			var b cipher.Block
			if b, err = aes.NewCipher(key); err == nil {
				aead, err = cipher.NewGCM(b)
			}
		}
		if err != nil {
			return nil, err
		}
		c := &aeadSK{aead: aead}
		copy(c.salt[:], salt)
		// A random starting point keeps IVs unique even if a caller builds
		// two ciphers from the same key; the counter then steps through
		// 2^64 values before it could repeat one.
		var start [8]byte
		if _, err := rand.Read(start[:]); err != nil {
			return nil, err
		}
		c.next.Store(binary.BigEndian.Uint64(start[:]))
		return c, nil
	}
	ia := findInteg(s.Integ)
	if ia == nil {
		return nil, fmt.Errorf("integrity %d not supported", s.Integ)
	}
	if len(integKey) != ia.keyLen {
		return nil, fmt.Errorf("integrity key of %d bytes, want %d", len(integKey), ia.keyLen)
	}
	b, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, err
	}
	return &cbcSK{block: b, mac: hmac.New(ia.hash, integKey), icvLen: ia.icvLen}, nil
}

// aeadSK is AES-GCM-16 (RFC 5282) or ChaCha20-Poly1305 (RFC 7634): an
// 8-byte explicit IV, nonce = salt | IV, a 16-byte ICV. IVs come from a
// counter, so they never repeat under one key. Safe for concurrent use.
type aeadSK struct {
	aead cipher.AEAD
	salt [4]byte
	next atomic.Uint64 // the next IV
	used atomic.Uint64 // IVs handed out, to refuse a wrap-around
}

const aeadIVLen = 8

func (c *aeadSK) SealedLen(n int) int { return aeadIVLen + n + 1 + c.aead.Overhead() }

// ErrIVsExhausted: the key has sealed 2^64-1 messages; rekey.
var ErrIVsExhausted = errors.New("transform: SK cipher has used every IV of its key")

func (c *aeadSK) Seal(dst, aad, plaintext []byte) ([]byte, error) {
	if c.used.Add(1) == 0 {
		c.used.Store(^uint64(0))
		return nil, ErrIVsExhausted
	}
	var nonce [12]byte
	copy(nonce[:4], c.salt[:])
	binary.BigEndian.PutUint64(nonce[4:], c.next.Add(1)-1)
	dst = append(dst, nonce[4:]...)
	start := len(dst)
	dst = append(dst, plaintext...)
	dst = append(dst, 0) // pad length: no padding
	pt := dst[start:]
	return c.aead.Seal(dst[:start], nonce[:], pt, aad), nil
}

func (c *aeadSK) Open(dst, aad, sealed []byte) ([]byte, error) {
	if len(sealed) < aeadIVLen+1+c.aead.Overhead() {
		return nil, ErrAuth
	}
	var nonce [12]byte
	copy(nonce[:4], c.salt[:])
	copy(nonce[4:], sealed[:aeadIVLen])
	out, err := c.aead.Open(dst, nonce[:], sealed[aeadIVLen:], aad)
	if err != nil {
		return nil, ErrAuth
	}
	return unpad(out, len(dst))
}

// cbcSK is AES-CBC with HMAC-SHA2 (RFC 7296 §3.14): a random IV, padding to
// the block size, and an ICV over the whole message up to the ICV. Safe for
// concurrent use (the HMAC state is shared, behind mu).
type cbcSK struct {
	block  cipher.Block
	mu     sync.Mutex
	mac    hash.Hash
	icvLen int
}

// icv computes the truncated HMAC over aad | body into a new slice.
func (c *cbcSK) icv(aad, body []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mac.Reset()
	c.mac.Write(aad)
	c.mac.Write(body)
	var sum [64]byte
	return c.mac.Sum(sum[:0])[:c.icvLen]
}

func (c *cbcSK) SealedLen(n int) int {
	bs := c.block.BlockSize()
	return bs + (n+1+bs-1)/bs*bs + c.icvLen
}

func (c *cbcSK) Seal(dst, aad, plaintext []byte) ([]byte, error) {
	bs := c.block.BlockSize()
	start := len(dst)
	dst = append(dst, make([]byte, bs)...)
	iv := dst[start:]
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	ctStart := len(dst)
	dst = append(dst, plaintext...)
	padLen := (bs - (len(plaintext)+1)%bs) % bs
	for i := 0; i < padLen; i++ {
		dst = append(dst, byte(i+1))
	}
	dst = append(dst, byte(padLen))
	iv = dst[start : start+bs]
	cipher.NewCBCEncrypter(c.block, iv).CryptBlocks(dst[ctStart:], dst[ctStart:])
	return append(dst, c.icv(aad, dst[start:])...), nil
}

func (c *cbcSK) Open(dst, aad, sealed []byte) ([]byte, error) {
	bs := c.block.BlockSize()
	if len(sealed) < bs+bs+c.icvLen || (len(sealed)-bs-c.icvLen)%bs != 0 {
		return nil, ErrAuth
	}
	body, icv := sealed[:len(sealed)-c.icvLen], sealed[len(sealed)-c.icvLen:]
	if subtle.ConstantTimeCompare(c.icv(aad, body), icv) != 1 {
		return nil, ErrAuth
	}
	out := append(dst, body[bs:]...)
	pt := out[len(dst):]
	cipher.NewCBCDecrypter(c.block, body[:bs]).CryptBlocks(pt, pt)
	return unpad(out, len(dst))
}

// ErrPadding: an authenticated SK payload whose pad length exceeds its
// plaintext (a broken peer, not an attacker: the ICV was valid).
var ErrPadding = errors.New("transform: SK padding longer than the plaintext")

// unpad strips padding | pad length from b[start:], the plaintext Open
// appended after the caller's dst.
func unpad(b []byte, start int) ([]byte, error) {
	pt := b[start:]
	if len(pt) == 0 {
		return nil, ErrPadding
	}
	n := int(pt[len(pt)-1])
	if n+1 > len(pt) {
		clear(pt)
		return nil, ErrPadding
	}
	clear(pt[len(pt)-1-n:])
	return b[:len(b)-1-n], nil
}
