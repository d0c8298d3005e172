package transform

import (
	"crypto/ecdh"
	"crypto/mlkem"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
)

// KeyExchange is the initiator's half of one key exchange: Public goes in
// the KE payload, SharedSecret takes the responder's KE data. For ML-KEM,
// Public is the encapsulation key and the peer data the ciphertext.
type KeyExchange interface {
	Method() uint16
	Public() []byte
	SharedSecret(peer []byte) ([]byte, error)
}

// NewKeyExchange starts a key exchange as initiator (or as the side that
// sends first in a CREATE_CHILD_SA/IKE_INTERMEDIATE/IKE_FOLLOWUP_KE).
func NewKeyExchange(method uint16) (KeyExchange, error) {
	if c := curve(method); c != nil {
		k, err := c.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return &ecdhKE{method: method, priv: k}, nil
	}
	switch method {
	case KEMODP2048, KEMODP3072, KEMODP4096:
		return newMODP(method)
	case KEMLKEM768:
		dk, err := mlkem.GenerateKey768()
		if err != nil {
			return nil, err
		}
		return &mlkemKE{method: method, dk768: dk}, nil
	case KEMLKEM1024:
		dk, err := mlkem.GenerateKey1024()
		if err != nil {
			return nil, err
		}
		return &mlkemKE{method: method, dk1024: dk}, nil
	}
	return nil, fmt.Errorf("key exchange method %d not supported", method)
}

func curve(method uint16) ecdh.Curve {
	switch method {
	case KEX25519:
		return ecdh.X25519()
	case KEECP256:
		return ecdh.P256()
	case KEECP384:
		return ecdh.P384()
	case KEECP521:
		return ecdh.P521()
	}
	return nil
}

// keyExchangeFromPrivate is NewKeyExchange with a fixed private value
// (ECDH scalar, MODP exponent or ML-KEM seed), for known-answer tests.
func keyExchangeFromPrivate(method uint16, priv []byte) (KeyExchange, error) {
	if c := curve(method); c != nil {
		k, err := c.NewPrivateKey(priv)
		if err != nil {
			return nil, err
		}
		return &ecdhKE{method: method, priv: k}, nil
	}
	switch method {
	case KEMODP2048, KEMODP3072, KEMODP4096:
		p := modpPrime(method)
		x := new(big.Int).SetBytes(priv)
		return &modpKE{method: method, p: p, x: x, y: new(big.Int).Exp(two, x, p)}, nil
	case KEMLKEM768:
		dk, err := mlkem.NewDecapsulationKey768(priv)
		if err != nil {
			return nil, err
		}
		return &mlkemKE{method: method, dk768: dk}, nil
	case KEMLKEM1024:
		dk, err := mlkem.NewDecapsulationKey1024(priv)
		if err != nil {
			return nil, err
		}
		return &mlkemKE{method: method, dk1024: dk}, nil
	}
	return nil, fmt.Errorf("key exchange method %d not supported", method)
}

// RespondKeyExchange answers the peer's KE data: for Diffie-Hellman it
// generates our key and computes the shared secret; for ML-KEM it
// encapsulates to the peer's key and returns the ciphertext as public.
func RespondKeyExchange(method uint16, peer []byte) (public, shared []byte, err error) {
	switch method {
	case KEMLKEM768:
		ek, err := mlkem.NewEncapsulationKey768(peer)
		if err != nil {
			return nil, nil, fmt.Errorf("ML-KEM-768 encapsulation key: %w", err)
		}
		shared, ct := ek.Encapsulate()
		return ct, shared, nil
	case KEMLKEM1024:
		ek, err := mlkem.NewEncapsulationKey1024(peer)
		if err != nil {
			return nil, nil, fmt.Errorf("ML-KEM-1024 encapsulation key: %w", err)
		}
		shared, ct := ek.Encapsulate()
		return ct, shared, nil
	}
	ke, err := NewKeyExchange(method)
	if err != nil {
		return nil, nil, err
	}
	shared, err = ke.SharedSecret(peer)
	if err != nil {
		return nil, nil, err
	}
	return ke.Public(), shared, nil
}

// KEDataLen is the length of the KE payload data each side sends, or -1
// when the sides differ (ML-KEM), for the INVALID_SYNTAX checks.
func KEDataLen(method uint16) int {
	switch method {
	case KEX25519:
		return 32
	case KEECP256:
		return 64
	case KEECP384:
		return 96
	case KEECP521:
		return 132
	case KEMODP2048:
		return 256
	case KEMODP3072:
		return 384
	case KEMODP4096:
		return 512
	}
	return -1
}

// KEDataLens is the KE payload data length each role sends: the initiator
// (the side that sent first) and the responder. They differ for ML-KEM
// (encapsulation key, then ciphertext). 0, 0 for an unknown method.
func KEDataLens(method uint16) (initiator, responder int) {
	switch method {
	case KEMLKEM768:
		return mlkem.EncapsulationKeySize768, mlkem.CiphertextSize768
	case KEMLKEM1024:
		return mlkem.EncapsulationKeySize1024, mlkem.CiphertextSize1024
	}
	if n := KEDataLen(method); n > 0 {
		return n, n
	}
	return 0, 0
}

type ecdhKE struct {
	method uint16
	priv   *ecdh.PrivateKey
}

func (k *ecdhKE) Method() uint16 { return k.method }

// Public is X25519's 32 bytes, or x|y for the NIST curves (RFC 5903 §7:
// no point-format octet).
func (k *ecdhKE) Public() []byte {
	b := k.priv.PublicKey().Bytes()
	if k.method != KEX25519 {
		b = b[1:]
	}
	return b
}

// SharedSecret checks the peer's value (on the curve, not the identity:
// RFC 6989 §2.3; crypto/ecdh rejects invalid points and X25519's all-zero
// output) and returns the x coordinate (RFC 5903 §7).
func (k *ecdhKE) SharedSecret(peer []byte) ([]byte, error) {
	if len(peer) != KEDataLen(k.method) {
		return nil, fmt.Errorf("key exchange data of %d bytes, want %d", len(peer), KEDataLen(k.method))
	}
	if k.method != KEX25519 {
		peer = append([]byte{4}, peer...)
	}
	pub, err := k.priv.Curve().NewPublicKey(peer)
	if err != nil {
		return nil, fmt.Errorf("peer's public value: %w", err)
	}
	return k.priv.ECDH(pub)
}

type modpKE struct {
	method uint16
	p      *big.Int
	x, y   *big.Int
}

var two = big.NewInt(2)

func modpPrime(method uint16) *big.Int {
	p, _ := new(big.Int).SetString(modpPrimeHex[method], 16)
	return p
}

// exponentBits: twice the group's security strength (NIST SP 800-56A).
var exponentBits = map[uint16]int{KEMODP2048: 256, KEMODP3072: 320, KEMODP4096: 384}

func newMODP(method uint16) (*modpKE, error) {
	p := modpPrime(method)
	max := new(big.Int).Lsh(big.NewInt(1), uint(exponentBits[method]))
	x, err := rand.Int(rand.Reader, max)
	if err != nil {
		return nil, err
	}
	x.SetBit(x, exponentBits[method]-1, 1)
	return &modpKE{method: method, p: p, x: x, y: new(big.Int).Exp(two, x, p)}, nil
}

func (k *modpKE) Method() uint16 { return k.method }
func (k *modpKE) Public() []byte { return k.y.FillBytes(make([]byte, (k.p.BitLen()+7)/8)) }

// ErrBadPublicValue is RFC 6989's rejection of a peer's MODP value.
var ErrBadPublicValue = errors.New("peer's public value outside 1 < y < p-1 (RFC 6989)")

func (k *modpKE) SharedSecret(peer []byte) ([]byte, error) {
	n := (k.p.BitLen() + 7) / 8
	if len(peer) != n {
		return nil, fmt.Errorf("key exchange data of %d bytes, want %d", len(peer), n)
	}
	y := new(big.Int).SetBytes(peer)
	// The RFC 3526 groups are safe primes, so 1 < y < p-1 is the whole
	// check (RFC 6989 §2.2).
	pm1 := new(big.Int).Sub(k.p, big.NewInt(1))
	if y.Cmp(big.NewInt(1)) <= 0 || y.Cmp(pm1) >= 0 {
		return nil, ErrBadPublicValue
	}
	z := new(big.Int).Exp(y, k.x, k.p)
	return z.FillBytes(make([]byte, n)), nil
}

type mlkemKE struct {
	method uint16
	dk768  *mlkem.DecapsulationKey768
	dk1024 *mlkem.DecapsulationKey1024
}

func (k *mlkemKE) Method() uint16 { return k.method }
func (k *mlkemKE) Public() []byte {
	if k.dk768 != nil {
		return k.dk768.EncapsulationKey().Bytes()
	}
	return k.dk1024.EncapsulationKey().Bytes()
}

func (k *mlkemKE) SharedSecret(ct []byte) ([]byte, error) {
	if k.dk768 != nil {
		return k.dk768.Decapsulate(ct)
	}
	return k.dk1024.Decapsulate(ct)
}
