package x509

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// AUTH methods (RFC 7296 §3.8, RFC 4754, RFC 7427).
const (
	MethodRSA       uint8 = 1  // RSA PKCS#1 v1.5 with SHA-1: refused
	MethodECDSA256  uint8 = 9  // ECDSA P-256 with SHA-256, raw r|s
	MethodECDSA384  uint8 = 10 // ECDSA P-384 with SHA-384, raw r|s
	MethodECDSA521  uint8 = 11 // ECDSA P-521 with SHA-512, raw r|s
	MethodDigSigned uint8 = 14 // RFC 7427 Digital Signature
)

// Hash algorithm IDs of SIGNATURE_HASH_ALGORITHMS (RFC 7427 §7, RFC 8420).
const (
	HashSHA1     uint16 = 1
	HashSHA2_256 uint16 = 2
	HashSHA2_384 uint16 = 3
	HashSHA2_512 uint16 = 4
	HashIdentity uint16 = 5
)

// Announced is what the engine sends in SIGNATURE_HASH_ALGORITHMS
// (core/ikesa/init.go); a peer's RFC 7427 signature must use one of them.
var Announced = []uint16{HashSHA2_256, HashSHA2_384, HashSHA2_512, HashIdentity}

var hashIDs = map[crypto.Hash]uint16{crypto.SHA256: HashSHA2_256, crypto.SHA384: HashSHA2_384, crypto.SHA512: HashSHA2_512}

type keyKind uint8

const (
	kindRSA keyKind = iota + 1
	kindRSAPSS
	kindECDSA
	kindEd25519
)

// sigAlg is one signature algorithm of RFC 7427 AUTH data.
type sigAlg struct {
	name   string
	kind   keyKind
	hash   crypto.Hash // 0: Ed25519 signs the octets themselves
	hashID uint16
}

var (
	oidRSAPKCS1SHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidRSAPKCS1SHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidRSAPKCS1SHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidRSAPKCS1SHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	oidRSAPSS         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidMGF1           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidECDSASHA1      = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}
	oidECDSASHA256    = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSASHA384    = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSASHA512    = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidEd25519        = asn1.ObjectIdentifier{1, 3, 101, 112}
	oidSHA1           = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
)

// Algorithms without parameters (or with NULL ones), by OID.
var plainAlgs = []struct {
	oid asn1.ObjectIdentifier
	alg sigAlg
}{
	{oidECDSASHA256, sigAlg{"ECDSA with SHA-256", kindECDSA, crypto.SHA256, HashSHA2_256}},
	{oidECDSASHA384, sigAlg{"ECDSA with SHA-384", kindECDSA, crypto.SHA384, HashSHA2_384}},
	{oidECDSASHA512, sigAlg{"ECDSA with SHA-512", kindECDSA, crypto.SHA512, HashSHA2_512}},
	{oidEd25519, sigAlg{"Ed25519", kindEd25519, 0, HashIdentity}},
	{oidRSAPKCS1SHA256, sigAlg{"RSA PKCS#1 v1.5 with SHA-256", kindRSA, crypto.SHA256, HashSHA2_256}},
	{oidRSAPKCS1SHA384, sigAlg{"RSA PKCS#1 v1.5 with SHA-384", kindRSA, crypto.SHA384, HashSHA2_384}},
	{oidRSAPKCS1SHA512, sigAlg{"RSA PKCS#1 v1.5 with SHA-512", kindRSA, crypto.SHA512, HashSHA2_512}},
}

var hashOIDs = map[crypto.Hash]asn1.ObjectIdentifier{crypto.SHA256: oidSHA256, crypto.SHA384: oidSHA384, crypto.SHA512: oidSHA512}

// algorithmIdentifier returns the DER AlgorithmIdentifier this package
// sends for alg: RFC 7427 Appendix A's encodings (RFC 8420 for Ed25519).
// RSASSA-PSS carries its parameters (hash, MGF1 with the same hash, salt
// as long as the hash); the default trailerField is left out, as DER
// requires.
func algorithmIdentifier(alg sigAlg) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		switch alg.kind {
		case kindRSAPSS:
			b.AddASN1ObjectIdentifier(oidRSAPSS)
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				hashAI := func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(hashOIDs[alg.hash])
						b.AddASN1NULL()
					})
				}
				b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), hashAI)
				b.AddASN1(cbasn1.Tag(1).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(oidMGF1)
						hashAI(b)
					})
				})
				b.AddASN1(cbasn1.Tag(2).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
					b.AddASN1Int64(int64(alg.hash.Size()))
				})
			})
		default:
			for _, p := range plainAlgs {
				if p.alg == alg {
					b.AddASN1ObjectIdentifier(p.oid)
					if alg.kind == kindRSA {
						b.AddASN1NULL()
					}
					return
				}
			}
			b.SetError(fmt.Errorf("no AlgorithmIdentifier for %s", alg.name))
		}
	})
	return b.BytesOrPanic()
}

// pssParams is RSASSA-PSS-params (RFC 4055 §3.1).
type pssParams struct {
	Hash         algID `asn1:"explicit,tag:0,optional"`
	MGF          algID `asn1:"explicit,tag:1,optional"`
	SaltLength   int   `asn1:"explicit,tag:2,optional,default:20"`
	TrailerField int   `asn1:"explicit,tag:3,optional,default:1"`
}

type algID struct {
	Algorithm  asn1.ObjectIdentifier
	Parameters asn1.RawValue `asn1:"optional"`
}

// parsedAlg is the algorithm of a peer's RFC 7427 AUTH data.
type parsedAlg struct {
	sigAlg
	saltLength int // RSASSA-PSS
}

// parseAlgorithm reads a DER AlgorithmIdentifier of RFC 7427 AUTH data.
func parseAlgorithm(der []byte) (parsedAlg, error) {
	var ai algID
	rest, err := asn1.Unmarshal(der, &ai)
	if err != nil || len(rest) != 0 {
		return parsedAlg{}, errors.New("AUTH data has a malformed signature AlgorithmIdentifier")
	}
	noParams := len(ai.Parameters.FullBytes) == 0 || bytes.Equal(ai.Parameters.FullBytes, []byte{0x05, 0x00})
	switch {
	case ai.Algorithm.Equal(oidRSAPKCS1SHA1), ai.Algorithm.Equal(oidECDSASHA1):
		return parsedAlg{}, errors.New("peer signed with SHA-1, which is deprecated and refused (RFC 8247); configure SHA-256 or better")
	case ai.Algorithm.Equal(oidRSAPSS):
		return parsePSS(ai.Parameters.FullBytes)
	}
	for _, p := range plainAlgs {
		if ai.Algorithm.Equal(p.oid) {
			if !noParams {
				return parsedAlg{}, fmt.Errorf("AUTH data's %s AlgorithmIdentifier has unexpected parameters", p.alg.name)
			}
			return parsedAlg{sigAlg: p.alg}, nil
		}
	}
	return parsedAlg{}, fmt.Errorf("signature algorithm %s is not supported (ECDSA, RSASSA-PSS or RSA PKCS#1 v1.5 with SHA-2, Ed25519)", ai.Algorithm)
}

func hashFromOID(ai algID) (crypto.Hash, error) {
	for h, oid := range hashOIDs {
		if ai.Algorithm.Equal(oid) {
			return h, nil
		}
	}
	if len(ai.Algorithm) == 0 || ai.Algorithm.Equal(oidSHA1) {
		return 0, errors.New("peer signed with RSASSA-PSS over SHA-1, which is deprecated and refused (RFC 8247); configure SHA-256 or better")
	}
	return 0, fmt.Errorf("RSASSA-PSS hash %s is not supported (SHA-256, SHA-384, SHA-512)", ai.Algorithm)
}

func parsePSS(params []byte) (parsedAlg, error) {
	var p pssParams
	if len(params) == 0 {
		return parsedAlg{}, errors.New("peer signed with RSASSA-PSS without parameters, which means SHA-1: deprecated and refused (RFC 8247)")
	}
	if rest, err := asn1.Unmarshal(params, &p); err != nil || len(rest) != 0 {
		return parsedAlg{}, errors.New("AUTH data has malformed RSASSA-PSS parameters")
	}
	h, err := hashFromOID(p.Hash)
	if err != nil {
		return parsedAlg{}, err
	}
	var mgfHash algID
	if !p.MGF.Algorithm.Equal(oidMGF1) {
		return parsedAlg{}, errors.New("RSASSA-PSS parameters name a mask generation function other than MGF1")
	}
	if rest, err := asn1.Unmarshal(p.MGF.Parameters.FullBytes, &mgfHash); err != nil || len(rest) != 0 {
		return parsedAlg{}, errors.New("AUTH data has malformed RSASSA-PSS MGF1 parameters")
	}
	if mh, err := hashFromOID(mgfHash); err != nil || mh != h {
		// Go's crypto/rsa uses MGF1 with the signature's hash.
		return parsedAlg{}, errors.New("RSASSA-PSS with an MGF1 hash other than the signature hash is not supported")
	}
	if p.TrailerField != 1 {
		return parsedAlg{}, fmt.Errorf("RSASSA-PSS trailer field %d is not the standard 1", p.TrailerField)
	}
	if p.SaltLength < 0 || p.SaltLength > 1024 {
		return parsedAlg{}, fmt.Errorf("RSASSA-PSS salt length %d is out of range", p.SaltLength)
	}
	name := fmt.Sprintf("RSASSA-PSS with SHA-%d", h.Size()*8)
	return parsedAlg{sigAlg: sigAlg{name, kindRSAPSS, h, hashIDs[h]}, saltLength: p.SaltLength}, nil
}

// digest returns what the signature covers: the hash of the octets, or the
// octets themselves for Ed25519.
func digest(h crypto.Hash, octets []byte) []byte {
	if h == 0 {
		return octets
	}
	d := h.New()
	d.Write(octets)
	return d.Sum(nil)
}

// verifySignature checks sig over octets with pub for alg.
func verifySignature(pub crypto.PublicKey, alg parsedAlg, octets, sig []byte, rawECDSA bool) error {
	bad := fmt.Errorf("%s signature does not verify with the certificate's key: the peer signed other data or holds another key", alg.name)
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch alg.kind {
		case kindRSA:
			if rsa.VerifyPKCS1v15(k, alg.hash, digest(alg.hash, octets), sig) != nil {
				return bad
			}
			return nil
		case kindRSAPSS:
			if rsa.VerifyPSS(k, alg.hash, digest(alg.hash, octets), sig, &rsa.PSSOptions{SaltLength: alg.saltLength, Hash: alg.hash}) != nil {
				return bad
			}
			return nil
		}
	case *ecdsa.PublicKey:
		if alg.kind != kindECDSA {
			break
		}
		d := digest(alg.hash, octets)
		if rawECDSA {
			n := (k.Curve.Params().BitSize + 7) / 8
			if len(sig) != 2*n {
				return fmt.Errorf("ECDSA signature is %d bytes, want %d for %s", len(sig), 2*n, k.Curve.Params().Name)
			}
			r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
			if !ecdsa.Verify(k, d, r, s) {
				return bad
			}
			return nil
		}
		if !ecdsa.VerifyASN1(k, d, sig) {
			return bad
		}
		return nil
	case ed25519.PublicKey:
		if alg.kind != kindEd25519 {
			break
		}
		if !ed25519.Verify(k, octets, sig) {
			return bad
		}
		return nil
	}
	return fmt.Errorf("peer's AUTH uses %s but its certificate holds a %s key", alg.name, keyName(pub))
}

func keyName(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d-bit", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

// ChooseHash picks the hash for our RFC 7427 signature with key pub from
// the hashes the peer announced: Identity for Ed25519, otherwise the
// strongest SHA-2 both sides know, SHA2-256 if the peer announced none.
func ChooseHash(pub crypto.PublicKey, peerHashes []uint16) (uint16, error) {
	has := func(h uint16) bool {
		for _, p := range peerHashes {
			if p == h {
				return true
			}
		}
		return false
	}
	if _, ok := pub.(ed25519.PublicKey); ok {
		if len(peerHashes) > 0 && !has(HashIdentity) {
			return 0, errors.New("peer did not announce the Identity hash, which Ed25519 signatures need (RFC 8420)")
		}
		return HashIdentity, nil
	}
	if len(peerHashes) == 0 {
		return HashSHA2_256, nil
	}
	for _, h := range []uint16{HashSHA2_512, HashSHA2_384, HashSHA2_256} {
		if has(h) {
			return h, nil
		}
	}
	return 0, fmt.Errorf("peer announced no signature hash we use (it offered %v; we use SHA2-256/384/512)", peerHashes)
}

// SignedAuthData builds RFC 7427 AUTH data (method 14) over octets with
// signer, whose private key stays wherever signer keeps it (a keystore).
// hashID is a SIGNATURE_HASH_ALGORITHMS value (see ChooseHash). RSA keys
// sign with RSASSA-PSS (salt as long as the hash), ECDSA keys with
// DER-encoded ECDSA, Ed25519 keys over the octets directly.
func SignedAuthData(signer crypto.Signer, octets []byte, hashID uint16) ([]byte, uint8, error) {
	if len(octets) == 0 {
		return nil, 0, errors.New("nothing to sign")
	}
	var h crypto.Hash
	switch hashID {
	case HashSHA2_256:
		h = crypto.SHA256
	case HashSHA2_384:
		h = crypto.SHA384
	case HashSHA2_512:
		h = crypto.SHA512
	case HashIdentity:
	default:
		return nil, 0, fmt.Errorf("signature hash %d is not supported (2, 3, 4: SHA2-256/384/512; 5: Identity for Ed25519)", hashID)
	}
	var alg sigAlg
	var opts crypto.SignerOpts = h
	switch k := signer.Public().(type) {
	case *rsa.PublicKey:
		if err := checkKeySize(k); err != nil {
			return nil, 0, err
		}
		alg = sigAlg{fmt.Sprintf("RSASSA-PSS with SHA-%d", h.Size()*8), kindRSAPSS, h, hashID}
		opts = &rsa.PSSOptions{SaltLength: h.Size(), Hash: h}
	case *ecdsa.PublicKey:
		for _, p := range plainAlgs {
			if p.alg.kind == kindECDSA && p.alg.hash == h {
				alg = p.alg
			}
		}
	case ed25519.PublicKey:
		if h != 0 {
			return nil, 0, errors.New("Ed25519 signs the octets themselves: use the Identity hash (5)")
		}
		alg = plainAlgs[3].alg
		opts = crypto.Hash(0)
	default:
		return nil, 0, fmt.Errorf("cannot sign with a %T key", k)
	}
	if alg.kind == 0 || (h == 0 && alg.kind != kindEd25519) {
		return nil, 0, fmt.Errorf("a %s key cannot sign with hash %d", keyName(signer.Public()), hashID)
	}
	sig, err := signer.Sign(rand.Reader, digest(h, octets), opts)
	if err != nil {
		return nil, 0, fmt.Errorf("signing AUTH: %w", err)
	}
	ai := algorithmIdentifier(alg)
	out := make([]byte, 0, 1+len(ai)+len(sig))
	out = append(append(append(out, byte(len(ai))), ai...), sig...)
	return out, MethodDigSigned, nil
}

// curveForMethod maps the RFC 4754 methods to their curve and hash.
func curveForMethod(m uint8) (elliptic.Curve, sigAlg) {
	switch m {
	case MethodECDSA256:
		return elliptic.P256(), plainAlgs[0].alg
	case MethodECDSA384:
		return elliptic.P384(), plainAlgs[1].alg
	case MethodECDSA521:
		return elliptic.P521(), plainAlgs[2].alg
	}
	return nil, sigAlg{}
}
