package transform

import (
	"crypto/hmac"
	"encoding/binary"
	"fmt"
)

// ComputePRF computes prf(key, data) with the suite's PRF (HMAC).
func (s Suite) ComputePRF(key, data []byte) []byte {
	a := findPRF(s.PRF)
	m := hmac.New(a.hash, key)
	m.Write(data)
	return m.Sum(nil)
}

// PRFPlus is prf+ (RFC 7296 §2.13): T1 | T2 | ... truncated to n bytes.
func (s Suite) PRFPlus(key, seed []byte, n int) []byte {
	a := findPRF(s.PRF)
	out := make([]byte, 0, n+a.size)
	var t []byte
	m := hmac.New(a.hash, key)
	for i := 1; len(out) < n; i++ {
		if i > 255 {
			panic("transform: prf+ asked for too much key material")
		}
		m.Reset()
		m.Write(t)
		m.Write(seed)
		m.Write([]byte{byte(i)})
		t = m.Sum(t[:0])
		out = append(out, t...)
	}
	clear(t)
	clear(out[n:cap(out)])
	return out[:n]
}

// IKEKeys are an IKE SA's keys (RFC 7296 §2.14).
type IKEKeys struct {
	SKd, SKai, SKar, SKei, SKer, SKpi, SKpr []byte
}

// Zero overwrites every key.
func (k *IKEKeys) Zero() {
	if k == nil {
		return
	}
	for _, b := range [][]byte{k.SKd, k.SKai, k.SKar, k.SKei, k.SKer, k.SKpi, k.SKpr} {
		clear(b)
	}
}

// EncrKeyLen is the SK_e length for the suite (salt included for AEAD).
func (s Suite) EncrKeyLen() int {
	a := findEncr(s.Encr, s.EncrKeyBits)
	if a == nil {
		return 0
	}
	return a.keyLen()
}

// IntegKeyLen is the SK_a length (0 for AEAD).
func (s Suite) IntegKeyLen() int {
	if a := findInteg(s.Integ); a != nil {
		return a.keyLen
	}
	return 0
}

func (s Suite) prfKeyLen() int { return findPRF(s.PRF).size }

// SKEYSEED = prf(Ni | Nr, g^ir) (§2.14). HMAC takes variable-length keys,
// so the whole nonces are the key.
func (s Suite) SKEYSEED(ni, nr, shared []byte) []byte {
	return s.ComputePRF(concat(ni, nr), shared)
}

// DeriveIKEKeys computes {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi |
// SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
func (s Suite) DeriveIKEKeys(skeyseed, ni, nr []byte, spii, spir uint64) *IKEKeys {
	seed := concat(ni, nr)
	seed = binary.BigEndian.AppendUint64(seed, spii)
	seed = binary.BigEndian.AppendUint64(seed, spir)
	p, a, e := s.prfKeyLen(), s.IntegKeyLen(), s.EncrKeyLen()
	km := s.PRFPlus(skeyseed, seed, 3*p+2*a+2*e)
	k := &IKEKeys{}
	for _, f := range []struct {
		dst *[]byte
		n   int
	}{{&k.SKd, p}, {&k.SKai, a}, {&k.SKar, a}, {&k.SKei, e}, {&k.SKer, e}, {&k.SKpi, p}, {&k.SKpr, p}} {
		*f.dst = km[:f.n:f.n]
		km = km[f.n:]
	}
	return k
}

// NewIKEKeys is the whole schedule for a new IKE SA: SKEYSEED, then prf+.
func (s Suite) NewIKEKeys(ni, nr, shared []byte, spii, spir uint64) *IKEKeys {
	seed := s.SKEYSEED(ni, nr, shared)
	defer clear(seed)
	return s.DeriveIKEKeys(seed, ni, nr, spii, spir)
}

// RekeyIKE derives the keys of the IKE SA that replaces old (§2.18):
// SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr) with the old SA's PRF,
// then prf+ with the new suite's PRF over the new SPIs. With RFC 9370
// additional key exchanges (IKE_FOLLOWUP_KE, §2.2.4) their shared secrets
// SK(1)..SK(n) follow the nonces: prf(SK_d, SK(0) | Ni | Nr | SK(1) | ... ).
func RekeyIKE(old Suite, oldSKd []byte, s Suite, shared, ni, nr []byte, spii, spir uint64, additional ...[]byte) *IKEKeys {
	in := concat(append([][]byte{shared, ni, nr}, additional...)...)
	seed := old.ComputePRF(oldSKd, in)
	clear(in)
	defer clear(seed)
	return s.DeriveIKEKeys(seed, ni, nr, spii, spir)
}

// AdditionalKE folds the shared secret of an RFC 9370 additional key
// exchange into the IKE SA's keys: SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni |
// Nr), keys(n) = prf+(SKEYSEED(n), Ni | Nr | SPIi | SPIr). The old keys are
// zeroed.
func (s Suite) AdditionalKE(k *IKEKeys, shared, ni, nr []byte, spii, spir uint64) *IKEKeys {
	in := concat(shared, ni, nr)
	seed := s.ComputePRF(k.SKd, in)
	clear(in)
	defer clear(seed)
	n := s.DeriveIKEKeys(seed, ni, nr, spii, spir)
	k.Zero()
	return n
}

// ChildKeys are a Child SA's keys (§2.17): initiator-to-responder first.
type ChildKeys struct {
	EncrI, IntegI, EncrR, IntegR []byte
}

// Zero overwrites every key.
func (k *ChildKeys) Zero() {
	if k == nil {
		return
	}
	for _, b := range [][]byte{k.EncrI, k.IntegI, k.EncrR, k.IntegR} {
		clear(b)
	}
}

// ChildKeymat computes KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr) for a
// child suite (§2.17); ike is the IKE SA's suite (its PRF is used). shared
// is nil without PFS. RFC 9370 additional key exchanges (§2.2.4) append
// their secrets after the nonces: prf+(SK_d, SK(0) | Ni | Nr | SK(1) | ...).
func ChildKeymat(ike Suite, skd []byte, child Suite, shared, ni, nr []byte, additional ...[]byte) (*ChildKeys, error) {
	a := findEncr(child.Encr, child.EncrKeyBits)
	if a == nil {
		return nil, fmt.Errorf("child encryption %d/%d unknown", child.Encr, child.EncrKeyBits)
	}
	if findPRF(ike.PRF) == nil {
		return nil, fmt.Errorf("IKE PRF %d unknown", ike.PRF)
	}
	e, i := a.keyLen(), child.IntegKeyLen()
	seed := concat(append([][]byte{shared, ni, nr}, additional...)...)
	km := ike.PRFPlus(skd, seed, 2*(e+i))
	clear(seed)
	k := &ChildKeys{}
	for _, f := range []struct {
		dst *[]byte
		n   int
	}{{&k.EncrI, e}, {&k.IntegI, i}, {&k.EncrR, e}, {&k.IntegR, i}} {
		*f.dst = km[:f.n:f.n]
		km = km[f.n:]
	}
	return k, nil
}

// ESPAlgorithms names the suite's algorithms as provider.ChildSA expects.
func (s Suite) ESPAlgorithms() (encryption, integrity string) {
	if a := findEncr(s.Encr, s.EncrKeyBits); a != nil {
		encryption = a.espName
	}
	if a := findInteg(s.Integ); a != nil {
		integrity = a.espName
	}
	return encryption, integrity
}

func concat(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n+16)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
