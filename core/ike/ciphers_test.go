package ike

// Test doubles for SKCipher, written from RFC 7296 §3.14 and RFC 5282 so the
// package can be tested before core/transform's ciphers exist. The tshark
// cross-check (tshark_test.go) decrypts CBCHMACCipher's output with
// Wireshark's own implementation, which keeps these honest.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
)

// GCMCipher is ENCR_AES_GCM_16 (RFC 5282): key|4-byte salt, 8-byte explicit
// IV, 16-byte ICV, AAD = IKE header through the SK payload header.
type GCMCipher struct {
	aead cipher.AEAD
	salt []byte
}

func NewGCMCipher(keyAndSalt []byte) *GCMCipher {
	block, err := aes.NewCipher(keyAndSalt[:len(keyAndSalt)-4])
	if err != nil {
		panic(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &GCMCipher{aead: aead, salt: keyAndSalt[len(keyAndSalt)-4:]}
}

func (c *GCMCipher) SealedLen(n int) int { return 8 + n + 1 + 16 }

func (c *GCMCipher) Seal(dst, aad, plaintext []byte) ([]byte, error) {
	iv := make([]byte, 8)
	rand.Read(iv)
	nonce := append(append([]byte{}, c.salt...), iv...)
	padded := append(append([]byte{}, plaintext...), 0) // no padding, pad length 0
	dst = append(dst, iv...)
	return c.aead.Seal(dst, nonce, padded, aad), nil
}

func (c *GCMCipher) Open(dst, aad, sealed []byte) ([]byte, error) {
	if len(sealed) < 8+1+16 {
		return nil, errors.New("sealed data too short")
	}
	nonce := append(append([]byte{}, c.salt...), sealed[:8]...)
	pt, err := c.aead.Open(nil, nonce, sealed[8:], aad)
	if err != nil {
		return nil, err
	}
	return unpad(dst, pt)
}

// CBCHMACCipher is ENCR_AES_CBC with AUTH_HMAC_SHA2_256_128: 16-byte IV,
// padding to the block size, ICV = HMAC over aad|IV|ciphertext.
type CBCHMACCipher struct {
	block    cipher.Block
	integKey []byte
}

func NewCBCHMACCipher(encKey, integKey []byte) *CBCHMACCipher {
	block, err := aes.NewCipher(encKey)
	if err != nil {
		panic(err)
	}
	return &CBCHMACCipher{block: block, integKey: integKey}
}

func (c *CBCHMACCipher) SealedLen(n int) int { return 16 + (n+1+15)/16*16 + 16 }

func (c *CBCHMACCipher) Seal(dst, aad, plaintext []byte) ([]byte, error) {
	start := len(dst)
	iv := make([]byte, 16)
	rand.Read(iv)
	padLen := (16 - (len(plaintext)+1)%16) % 16
	padded := append(append([]byte{}, plaintext...), make([]byte, padLen+1)...)
	padded[len(padded)-1] = byte(padLen)
	cipher.NewCBCEncrypter(c.block, iv).CryptBlocks(padded, padded)
	dst = append(dst, iv...)
	dst = append(dst, padded...)
	mac := hmac.New(sha256.New, c.integKey)
	mac.Write(aad)
	mac.Write(dst[start:])
	return mac.Sum(dst)[:len(dst)+16], nil
}

func (c *CBCHMACCipher) Open(dst, aad, sealed []byte) ([]byte, error) {
	if len(sealed) < 16+16+16 || (len(sealed)-32)%16 != 0 {
		return nil, errors.New("sealed data has a bad length")
	}
	body, icv := sealed[:len(sealed)-16], sealed[len(sealed)-16:]
	mac := hmac.New(sha256.New, c.integKey)
	mac.Write(aad)
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil)[:16], icv) {
		return nil, errors.New("integrity check failed")
	}
	pt := make([]byte, len(body)-16)
	cipher.NewCBCDecrypter(c.block, body[:16]).CryptBlocks(pt, body[16:])
	return unpad(dst, pt)
}

func unpad(dst, pt []byte) ([]byte, error) {
	padLen := int(pt[len(pt)-1])
	if padLen+1 > len(pt) {
		return nil, errors.New("bad padding length")
	}
	return append(dst, pt[:len(pt)-1-padLen]...), nil
}
