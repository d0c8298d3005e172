package transform

import (
	"crypto/sha256"
	"crypto/sha512"
	"hash"

	"github.com/veil-ipsec/veil/core/ike"
)

// Transform IDs (IANA "IKEv2 Transform Type N Transform IDs").
const (
	EncrAESCBC           uint16 = 12
	EncrAESGCM16         uint16 = 20
	EncrChaCha20Poly1305 uint16 = 28

	PRFHMACSHA256 uint16 = 5
	PRFHMACSHA384 uint16 = 6
	PRFHMACSHA512 uint16 = 7

	IntegNone          uint16 = 0
	IntegHMACSHA256128 uint16 = 12
	IntegHMACSHA384192 uint16 = 13
	IntegHMACSHA512256 uint16 = 14

	KENone      uint16 = 0
	KEMODP2048  uint16 = 14
	KEMODP3072  uint16 = 15
	KEMODP4096  uint16 = 16
	KEECP256    uint16 = 19
	KEECP384    uint16 = 20
	KEECP521    uint16 = 21
	KEX25519    uint16 = 31
	KEMLKEM512  uint16 = 35
	KEMLKEM768  uint16 = 36
	KEMLKEM1024 uint16 = 37

	ESNNo  uint16 = 0
	ESNYes uint16 = 1
)

// encrAlg is one row of the encryption table.
type encrAlg struct {
	id       uint16
	keyBits  int    // 0 for fixed-key algorithms
	name     string // strongSwan keyword
	aead     bool
	saltLen  int // AEAD: bytes of salt after the key (RFC 5282, RFC 7634)
	espName  string
	fixedKey bool
}

var encrAlgs = []encrAlg{
	{id: EncrAESGCM16, keyBits: 128, name: "aes128gcm16", aead: true, saltLen: 4, espName: "aes-gcm-16"},
	{id: EncrAESGCM16, keyBits: 256, name: "aes256gcm16", aead: true, saltLen: 4, espName: "aes-gcm-16"},
	{id: EncrChaCha20Poly1305, keyBits: 256, name: "chacha20poly1305", aead: true, saltLen: 4, espName: "chacha20-poly1305", fixedKey: true},
	{id: EncrAESCBC, keyBits: 128, name: "aes128", espName: "aes-cbc"},
	{id: EncrAESCBC, keyBits: 256, name: "aes256", espName: "aes-cbc"},
}

// aliases accepted when parsing; printing uses the row's name.
var encrAliases = map[string]string{
	"aes128gcm": "aes128gcm16", "aes128gcm128": "aes128gcm16",
	"aes256gcm": "aes256gcm16", "aes256gcm128": "aes256gcm16",
	"chacha20": "chacha20poly1305", "aes": "aes128",
}

func findEncr(id uint16, keyBits int) *encrAlg {
	for i := range encrAlgs {
		a := &encrAlgs[i]
		if a.id == id && (a.keyBits == keyBits || (a.fixedKey && keyBits == 0)) {
			return a
		}
	}
	return nil
}

// keyLen is the key material length in bytes, salt included.
func (a *encrAlg) keyLen() int { return a.keyBits/8 + a.saltLen }

type prfAlg struct {
	id   uint16
	name string
	hash func() hash.Hash
	size int
}

var prfAlgs = []prfAlg{
	{PRFHMACSHA256, "prfsha256", sha256.New, 32},
	{PRFHMACSHA384, "prfsha384", sha512.New384, 48},
	{PRFHMACSHA512, "prfsha512", sha512.New, 64},
}

func findPRF(id uint16) *prfAlg {
	for i := range prfAlgs {
		if prfAlgs[i].id == id {
			return &prfAlgs[i]
		}
	}
	return nil
}

type integAlg struct {
	id      uint16
	name    string
	aliases []string
	hash    func() hash.Hash
	keyLen  int
	icvLen  int
	espName string
	prf     uint16 // the PRF strongSwan pairs with it when none is given
}

var integAlgs = []integAlg{
	{IntegHMACSHA256128, "sha256", []string{"sha2_256"}, sha256.New, 32, 16, "hmac-sha2-256-128", PRFHMACSHA256},
	{IntegHMACSHA384192, "sha384", []string{"sha2_384"}, sha512.New384, 48, 24, "hmac-sha2-384-192", PRFHMACSHA384},
	{IntegHMACSHA512256, "sha512", []string{"sha2_512"}, sha512.New, 64, 32, "hmac-sha2-512-256", PRFHMACSHA512},
}

func findInteg(id uint16) *integAlg {
	for i := range integAlgs {
		if integAlgs[i].id == id {
			return &integAlgs[i]
		}
	}
	return nil
}

type keAlg struct {
	id      uint16
	name    string
	aliases []string
	kem     bool // ML-KEM: only as an additional key exchange (RFC 9370)
}

var keAlgs = []keAlg{
	{id: KEX25519, name: "x25519", aliases: []string{"curve25519"}},
	{id: KEECP256, name: "ecp256"},
	{id: KEECP384, name: "ecp384"},
	{id: KEECP521, name: "ecp521"},
	{id: KEMODP2048, name: "modp2048"},
	{id: KEMODP3072, name: "modp3072"},
	{id: KEMODP4096, name: "modp4096"},
	{id: KEMLKEM768, name: "mlkem768", kem: true},
	{id: KEMLKEM1024, name: "mlkem1024", kem: true},
}

func findKE(id uint16) *keAlg {
	for i := range keAlgs {
		if keAlgs[i].id == id {
			return &keAlgs[i]
		}
	}
	return nil
}

// weak lists keywords refused with the reason operators need to see.
var weak = map[string]string{
	"des":          "DES has a 56-bit key",
	"3des":         "3DES has a 64-bit block (Sweet32) and is deprecated (RFC 8247)",
	"md5":          "MD5 is broken",
	"prfmd5":       "MD5 is broken",
	"sha1":         "SHA-1 integrity is deprecated (RFC 8247)",
	"sha":          "SHA-1 integrity is deprecated (RFC 8247)",
	"prfsha1":      "SHA-1 is deprecated (RFC 8247)",
	"modp768":      "MODP-768 (group 1) is far too small",
	"modp1024":     "MODP-1024 (group 2) is too small (RFC 8247)",
	"modp1536":     "MODP-1536 (group 5) is too small (RFC 8247)",
	"modp1024s160": "group 22 has a small subgroup of doubtful origin (RFC 8247)",
	"modp2048s224": "group 23 has a small subgroup of doubtful origin (RFC 8247)",
	"modp2048s256": "group 24 has a small subgroup of doubtful origin (RFC 8247)",
	"sha1_160":     "SHA-1 integrity is deprecated (RFC 8247)",
	"ecp192":       "ECP-192 (group 25) is too small (RFC 8247)",
	"null":         "encryption NULL gives no confidentiality",
}

// unsupported lists keywords strongSwan knows that Veil does not implement.
var unsupported = map[string]string{
	"mlkem512":    "ML-KEM-512 is not implemented (Go's crypto/mlkem has ML-KEM-768 and ML-KEM-1024)",
	"aes192":      "AES-192 is not implemented; use aes128 or aes256",
	"aes192gcm16": "AES-192 is not implemented; use aes128gcm16 or aes256gcm16",
	"aes128gcm8":  "8-byte ICVs are too short; use aes128gcm16",
	"aes128gcm12": "12-byte ICVs are not implemented; use aes128gcm16",
	"aes256gcm8":  "8-byte ICVs are too short; use aes256gcm16",
	"aes256gcm12": "12-byte ICVs are not implemented; use aes256gcm16",
}

type weakKey struct {
	typ ike.TransformType
	id  uint16
}

// weakNames names, for operators reading a mismatch error, weak transforms
// a peer may offer (IANA IKEv2 transform IDs). They are never negotiated:
// Select only accepts rows of the tables above.
var weakNames = map[weakKey]string{
	{ike.TransformENCR, 2}: "des", {ike.TransformENCR, 3}: "3des",
	{ike.TransformPRF, 1}: "prfmd5", {ike.TransformPRF, 2}: "prfsha1",
	{ike.TransformINTEG, 1}: "md5", {ike.TransformINTEG, 2}: "sha1",
	{ike.TransformKE, 1}: "modp768", {ike.TransformKE, 2}: "modp1024", {ike.TransformKE, 5}: "modp1536",
	{ike.TransformKE, 22}: "modp1024s160", {ike.TransformKE, 23}: "modp2048s224", {ike.TransformKE, 24}: "modp2048s256",
}
