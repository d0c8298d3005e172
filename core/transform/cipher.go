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
// counter, so they never repeat under one key.
type aeadSK struct {
	aead    cipher.AEAD
	salt    [4]byte
	counter atomic.Uint64
}

const aeadIVLen = 8

func (c *aeadSK) SealedLen(n int) int { return aeadIVLen + n + 1 + c.aead.Overhead() }

func (c *aeadSK) Seal(dst, aad, plaintext []byte) ([]byte, error) {
	var nonce [12]byte
	copy(nonce[:4], c.salt[:])
	binary.BigEndian.PutUint64(nonce[4:], c.counter.Add(1))
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
	return unpad(out)
}

// cbcSK is AES-CBC with HMAC-SHA2 (RFC 7296 §3.14): a random IV, padding to
// the block size, and an ICV over the whole message up to the ICV.
type cbcSK struct {
	block  cipher.Block
	mac    hash.Hash
	icvLen int
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
	c.mac.Reset()
	c.mac.Write(aad)
	c.mac.Write(dst[start:])
	sum := c.mac.Sum(nil)
	return append(dst, sum[:c.icvLen]...), nil
}

func (c *cbcSK) Open(dst, aad, sealed []byte) ([]byte, error) {
	bs := c.block.BlockSize()
	if len(sealed) < bs+bs+c.icvLen || (len(sealed)-bs-c.icvLen)%bs != 0 {
		return nil, ErrAuth
	}
	body, icv := sealed[:len(sealed)-c.icvLen], sealed[len(sealed)-c.icvLen:]
	c.mac.Reset()
	c.mac.Write(aad)
	c.mac.Write(body)
	if subtle.ConstantTimeCompare(c.mac.Sum(nil)[:c.icvLen], icv) != 1 {
		return nil, ErrAuth
	}
	out := append(dst, body[bs:]...)
	pt := out[len(dst):]
	cipher.NewCBCDecrypter(c.block, body[:bs]).CryptBlocks(pt, pt)
	return unpad(out)
}

func unpad(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, ErrAuth
	}
	n := int(b[len(b)-1])
	if n+1 > len(b) {
		return nil, errors.New("transform: SK padding longer than the plaintext")
	}
	return b[:len(b)-1-n], nil
}
