package pkcs11

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"

	p11 "github.com/miekg/pkcs11"

	"github.com/veil-ipsec/veil/sdk/keystore"
)

// PKCS#11 3.0 names miekg/pkcs11 v1.1.2 does not define.
const (
	ckkECEdwards = 0x40   // CKK_EC_EDWARDS
	ckmEdDSA     = 0x1057 // CKM_EDDSA
)

// callError is a failed PKCS#11 call: "C_Sign: CKR_KEY_HANDLE_INVALID".
type callError struct {
	fn  string
	err error
}

func (e *callError) Error() string { return e.fn + ": " + rv(e.err) }
func (e *callError) Unwrap() error { return e.err }

func callErr(fn string, err error) error { return &callError{fn, err} }

var (
	oidP256    = asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	oidP384    = asn1.ObjectIdentifier{1, 3, 132, 0, 34}
	oidP521    = asn1.ObjectIdentifier{1, 3, 132, 0, 35}
	oidEd25519 = asn1.ObjectIdentifier{1, 3, 101, 112}
)

// loadKey finds the private key u names and its public key: from the
// public key object with the same CKA_ID (or label), from the private key
// object's own public attributes (RSA), or from the certificate.
func loadKey(t *token, sess p11.SessionHandle, u *URI) (*key, error) {
	c := t.ctx
	priv, err := findOne(c, sess, objectTemplate(p11.CKO_PRIVATE_KEY, u), "private key")
	if err != nil {
		return nil, err
	}
	kt, err := attr(c, sess, priv, p11.CKA_KEY_TYPE)
	if err != nil {
		return nil, callErr("C_GetAttributeValue(CKA_KEY_TYPE)", err)
	}
	keyType, ok := ulong(kt)
	if !ok {
		return nil, fmt.Errorf("the module returned a CKA_KEY_TYPE of %d bytes", len(kt))
	}
	if keyType != p11.CKK_EC && keyType != p11.CKK_RSA && keyType != ckkECEdwards {
		return nil, fmt.Errorf("key type 0x%X is not supported (EC, RSA and Ed25519 are)", keyType)
	}
	// The public key and certificate share the private key's CKA_ID (or,
	// without one, its label).
	id, err := attr(c, sess, priv, p11.CKA_ID)
	if err != nil {
		return nil, callErr("C_GetAttributeValue(CKA_ID)", err)
	}
	peer := &URI{ID: id, HasID: len(id) > 0}
	if !peer.HasID {
		label, err := attr(c, sess, priv, p11.CKA_LABEL)
		if err != nil {
			return nil, callErr("C_GetAttributeValue(CKA_LABEL)", err)
		}
		if len(label) == 0 {
			return nil, errors.New("the private key has neither CKA_ID nor CKA_LABEL to find its public key by")
		}
		peer.Object = string(label)
	}

	var pub crypto.PublicKey
	if o, err := findOne(c, sess, objectTemplate(p11.CKO_PUBLIC_KEY, peer), "public key"); err == nil {
		pub, err = publicFromObject(c, sess, o, keyType)
		if err != nil {
			return nil, fmt.Errorf("public key object: %w", err)
		}
	} else if !errors.Is(err, keystore.ErrNotFound) {
		return nil, err
	}
	if pub == nil && keyType == p11.CKK_RSA {
		pub, _ = publicFromObject(c, sess, priv, keyType)
	}
	if pub == nil {
		o, err := findOne(c, sess, objectTemplate(p11.CKO_CERTIFICATE, peer), "certificate")
		if err != nil {
			return nil, fmt.Errorf("no public key object or certificate with the private key's %s", map[bool]string{true: "CKA_ID", false: "label"}[peer.HasID])
		}
		der, err := attr(c, sess, o, p11.CKA_VALUE)
		if err != nil {
			return nil, callErr("C_GetAttributeValue(certificate CKA_VALUE)", err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("certificate object: %w", err)
		}
		pub = cert.PublicKey
	}
	switch pub.(type) {
	case *ecdsa.PublicKey:
		ok = keyType == p11.CKK_EC
	case *rsa.PublicKey:
		ok = keyType == p11.CKK_RSA
	case ed25519.PublicKey:
		ok = keyType == ckkECEdwards
	default:
		ok = false
	}
	if !ok {
		return nil, fmt.Errorf("the public key (%T) does not match the private key's type 0x%X", pub, keyType)
	}
	return &key{tok: t, handle: priv, pub: pub}, nil
}

// ulong reads a CK_ULONG attribute in host byte order.
func ulong(b []byte) (uint, bool) {
	switch len(b) {
	case 4:
		return uint(binary.NativeEndian.Uint32(b)), true
	case 8:
		return uint(binary.NativeEndian.Uint64(b)), true
	}
	return 0, false
}

func publicFromObject(c *p11.Ctx, sess p11.SessionHandle, o p11.ObjectHandle, keyType uint) (crypto.PublicKey, error) {
	switch keyType {
	case p11.CKK_RSA:
		n, err := attr(c, sess, o, p11.CKA_MODULUS)
		if err != nil {
			return nil, callErr("C_GetAttributeValue(CKA_MODULUS)", err)
		}
		e, err := attr(c, sess, o, p11.CKA_PUBLIC_EXPONENT)
		if err != nil {
			return nil, callErr("C_GetAttributeValue(CKA_PUBLIC_EXPONENT)", err)
		}
		if len(n) == 0 || len(n) > 2048 || len(e) == 0 || len(e) > 4 {
			return nil, fmt.Errorf("RSA modulus of %d bytes or exponent of %d bytes is out of range", len(n), len(e))
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() < 2048 || pub.E < 3 || pub.E%2 == 0 {
			return nil, fmt.Errorf("RSA key of %d bits with exponent %d is refused (2048 bits or more)", pub.N.BitLen(), pub.E)
		}
		return pub, nil
	case p11.CKK_EC, ckkECEdwards:
		params, err := attr(c, sess, o, p11.CKA_EC_PARAMS)
		if err != nil {
			return nil, callErr("C_GetAttributeValue(CKA_EC_PARAMS)", err)
		}
		point, err := attr(c, sess, o, p11.CKA_EC_POINT)
		if err != nil {
			return nil, callErr("C_GetAttributeValue(CKA_EC_POINT)", err)
		}
		return ecPublic(keyType, params, point)
	}
	return nil, fmt.Errorf("key type 0x%X is not supported", keyType)
}

// ecPublic parses CKA_EC_PARAMS (a named curve) and CKA_EC_POINT (a DER
// OCTET STRING around the point, or, from some modules, the bare point).
func ecPublic(keyType uint, params, point []byte) (crypto.PublicKey, error) {
	var oid asn1.ObjectIdentifier
	var name string
	if rest, err := asn1.Unmarshal(params, &oid); err != nil || len(rest) > 0 {
		// PKCS#11 3.0 also allows the curve name as a PrintableString.
		if rest, err := asn1.Unmarshal(params, &name); err != nil || len(rest) > 0 {
			return nil, errors.New("CKA_EC_PARAMS is not a named curve")
		}
	}
	var raw []byte
	if rest, err := asn1.Unmarshal(point, &raw); err != nil || len(rest) > 0 {
		raw = point
	}
	if keyType == ckkECEdwards {
		if !oid.Equal(oidEd25519) && name != "edwards25519" {
			return nil, fmt.Errorf("the Edwards curve %v%s is not supported (Ed25519 is)", oid, name)
		}
		if len(raw) != ed25519.PublicKeySize {
			if len(point) == ed25519.PublicKeySize {
				raw = point
			} else {
				return nil, fmt.Errorf("an Ed25519 CKA_EC_POINT of %d bytes", len(point))
			}
		}
		return ed25519.PublicKey(bytes.Clone(raw)), nil
	}
	var curve elliptic.Curve
	switch {
	case oid.Equal(oidP256):
		curve = elliptic.P256()
	case oid.Equal(oidP384):
		curve = elliptic.P384()
	case oid.Equal(oidP521):
		curve = elliptic.P521()
	default:
		return nil, fmt.Errorf("curve %v%s is not supported (P-256, P-384 and P-521 are)", oid, name)
	}
	size := (curve.Params().BitSize + 7) / 8
	if len(raw) != 1+2*size && len(point) == 1+2*size {
		raw = point
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, raw)
	if err != nil {
		return nil, fmt.Errorf("CKA_EC_POINT: %w", err)
	}
	return pub, nil
}

// digestInfo prefixes for CKM_RSA_PKCS, which signs a DigestInfo as given
// (RFC 8017 section 9.2, note 1).
var digestInfo = map[crypto.Hash][]byte{
	crypto.SHA1:   {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14},
	crypto.SHA224: {0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04, 0x05, 0x00, 0x04, 0x1c},
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}

// pssHash maps a hash to CK_RSA_PKCS_PSS_PARAMS' hashAlg and mgf.
var pssHash = map[crypto.Hash][2]uint{
	crypto.SHA1:   {p11.CKM_SHA_1, p11.CKG_MGF1_SHA1},
	crypto.SHA224: {p11.CKM_SHA224, p11.CKG_MGF1_SHA224},
	crypto.SHA256: {p11.CKM_SHA256, p11.CKG_MGF1_SHA256},
	crypto.SHA384: {p11.CKM_SHA384, p11.CKG_MGF1_SHA384},
	crypto.SHA512: {p11.CKM_SHA512, p11.CKG_MGF1_SHA512},
}

// mechanism picks the mechanism and the bytes the token signs.
func (k *key) mechanism(digest []byte, opts keystore.SignOptions) (*p11.Mechanism, []byte, error) {
	h := opts.Hash
	if _, ok := k.pub.(ed25519.PublicKey); ok {
		if h != 0 {
			return nil, nil, errors.New("an Ed25519 key signs whole messages: hash must be 0")
		}
		if len(digest) == 0 {
			return nil, nil, errors.New("empty message")
		}
		return p11.NewMechanism(ckmEdDSA, nil), digest, nil
	}
	if h == 0 || !h.Available() || len(digest) != h.Size() {
		return nil, nil, fmt.Errorf("digest of %d bytes does not match hash %v", len(digest), h)
	}
	switch pub := k.pub.(type) {
	case *ecdsa.PublicKey:
		return p11.NewMechanism(p11.CKM_ECDSA, nil), digest, nil
	case *rsa.PublicKey:
		if opts.PSS {
			alg, ok := pssHash[h]
			if !ok {
				return nil, nil, fmt.Errorf("RSA-PSS with %v is not supported", h)
			}
			salt := opts.SaltLength
			switch {
			case salt == rsa.PSSSaltLengthEqualsHash:
				salt = h.Size()
			case salt == rsa.PSSSaltLengthAuto:
				salt = (pub.N.BitLen()-1+7)/8 - 2 - h.Size() // the largest, as crypto/rsa signs
			case salt < 0:
				return nil, nil, fmt.Errorf("RSA-PSS salt length %d", salt)
			}
			return p11.NewMechanism(p11.CKM_RSA_PKCS_PSS, p11.NewPSSParams(alg[0], alg[1], uint(salt))), digest, nil
		}
		prefix, ok := digestInfo[h]
		if !ok {
			return nil, nil, fmt.Errorf("RSA PKCS#1 v1.5 with %v is not supported", h)
		}
		return p11.NewMechanism(p11.CKM_RSA_PKCS, nil), append(bytes.Clone(prefix), digest...), nil
	}
	return nil, nil, fmt.Errorf("key type %T", k.pub)
}

// sign signs on the token and returns what crypto.Signer returns: ASN.1
// DER for ECDSA (PKCS#11 gives r||s), the raw signature otherwise.
func (k *key) sign(ctx context.Context, digest []byte, opts keystore.SignOptions) ([]byte, error) {
	mech, input, err := k.mechanism(digest, opts)
	if err != nil {
		return nil, err
	}
	t := k.tok
	var sig []byte
	err = t.do(ctx, func(sess p11.SessionHandle) error {
		if err := t.ctx.SignInit(sess, []*p11.Mechanism{mech}, k.handle); err != nil {
			return callErr("C_SignInit", err)
		}
		var err error
		if sig, err = t.ctx.Sign(sess, input); err != nil {
			return callErr("C_Sign", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch pub := k.pub.(type) {
	case *ecdsa.PublicKey:
		size := (pub.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return nil, fmt.Errorf("the module returned a %d-byte ECDSA signature, not %d", len(sig), 2*size)
		}
		return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])})
	case *rsa.PublicKey:
		if len(sig) != pub.Size() {
			return nil, fmt.Errorf("the module returned a %d-byte RSA signature, not %d", len(sig), pub.Size())
		}
	case ed25519.PublicKey:
		if len(sig) != ed25519.SignatureSize {
			return nil, fmt.Errorf("the module returned a %d-byte Ed25519 signature", len(sig))
		}
	}
	return sig, nil
}

// check signs once and verifies with the public key found for the private
// key: a public key object or certificate of another key (a wrong CKA_ID)
// would otherwise show only as the peer refusing our AUTH. A token that
// refuses the test signature (a mechanism it does not allow for the key)
// is not an error here; real signatures report their own errors.
func (k *key) check(ctx context.Context) error {
	msg := []byte("veil pkcs11 keystore: does the public key match?")
	d := sha256.Sum256(msg)
	in, opts := d[:], keystore.SignOptions{Hash: crypto.SHA256}
	if _, ok := k.pub.(*rsa.PublicKey); ok {
		opts.PSS, opts.SaltLength = true, rsa.PSSSaltLengthEqualsHash
	}
	if _, ok := k.pub.(ed25519.PublicKey); ok {
		in, opts = msg, keystore.SignOptions{}
	}
	sig, err := k.sign(ctx, in, opts)
	if err != nil {
		return nil
	}
	var ok bool
	switch pub := k.pub.(type) {
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(pub, in, sig)
	case *rsa.PublicKey:
		ok = rsa.VerifyPSS(pub, crypto.SHA256, in, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
	case ed25519.PublicKey:
		ok = ed25519.Verify(pub, in, sig)
	}
	if !ok {
		return errors.New("the public key found for the private key (the public key object or certificate with the same CKA_ID) does not match it")
	}
	return nil
}
