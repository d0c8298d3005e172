package transform

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/veil-ipsec/veil/core/ike"
)

// tableProposals builds, from every row of every table, proposals that use
// it: a new algorithm row is covered without touching this test.
func tableProposals() []struct {
	proto Protocol
	s     string
} {
	var out []struct {
		proto Protocol
		s     string
	}
	add := func(p Protocol, s string) {
		out = append(out, struct {
			proto Protocol
			s     string
		}{p, s})
	}
	for _, e := range encrAlgs {
		if e.aead {
			add(ProtoIKE, e.name+"-prfsha256-x25519")
			add(ProtoESP, e.name)
			add(ProtoESP, e.name+"-esn")
		} else {
			add(ProtoIKE, e.name+"-sha256-x25519")
			add(ProtoESP, e.name+"-sha256-noesn")
		}
	}
	for _, p := range prfAlgs {
		add(ProtoIKE, "aes256gcm16-"+p.name+"-ecp256")
	}
	for _, i := range integAlgs {
		add(ProtoIKE, "aes128-"+i.name+"-modp3072")
		add(ProtoESP, "aes256-"+i.name+"-esn-noesn")
		for _, alias := range i.aliases {
			add(ProtoESP, "aes256-"+alias)
		}
	}
	for _, k := range keAlgs {
		if !k.kem {
			add(ProtoIKE, "chacha20poly1305-prfsha384-"+k.name)
			add(ProtoESP, "aes256gcm16-"+k.name) // PFS group
		}
		for n := 1; n <= 7; n++ {
			add(ProtoIKE, "aes256gcm16-prfsha384-x25519-ke"+string(rune('0'+n))+"_"+k.name+"-ke"+string(rune('0'+n))+"_none")
		}
		for _, alias := range k.aliases {
			add(ProtoIKE, "aes128gcm16-prfsha256-"+alias)
		}
	}
	return out
}

// TestProposalTableRoundTrip: every table row parses, prints back, and the
// printed form parses to the same proposal; through the wire and Select it
// yields a suite whose String is again a valid proposal.
func TestProposalTableRoundTrip(t *testing.T) {
	for _, tc := range tableProposals() {
		p, err := ParseProposal(tc.proto, tc.s)
		if err != nil {
			t.Errorf("%s: %v", tc.s, err)
			continue
		}
		again, err := ParseProposal(tc.proto, p.String())
		if err != nil {
			t.Errorf("%s printed as %s, which does not parse: %v", tc.s, p, err)
			continue
		}
		if !sameTransforms(p.Transforms, again.Transforms) {
			t.Errorf("%s: %v re-parsed as %v", tc.s, p.Transforms, again.Transforms)
		}
		s, n, err := Select([]Proposal{p}, []ike.Proposal{p.ToWire(7, nil)}, false)
		if err != nil || n != 7 {
			t.Errorf("%s: does not select itself: %v", tc.s, err)
			continue
		}
		if _, err := ParseProposal(tc.proto, s.String()); err != nil {
			t.Errorf("%s: suite %s does not parse: %v", tc.s, s, err)
		}
	}
}

func sameTransforms(a, b []ike.Transform) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !containsT(b, x) {
			return false
		}
	}
	return true
}

// A peer offering only weak algorithms gets nothing, and the operator sees
// both sides by name.
func TestSelectNeverNegotiatesWeak(t *testing.T) {
	ours := DefaultIKEProposals()
	for _, w := range []ike.Proposal{
		{Number: 1, Protocol: ike.ProtoIKE, Transforms: []ike.Transform{
			{Type: ike.TransformENCR, ID: 3}, {Type: ike.TransformPRF, ID: 2}, {Type: ike.TransformINTEG, ID: 2}, {Type: ike.TransformKE, ID: 2}}},
		// strong cipher, weak group
		{Number: 2, Protocol: ike.ProtoIKE, Transforms: []ike.Transform{
			{Type: ike.TransformENCR, ID: EncrAESGCM16, KeyLength: 256}, {Type: ike.TransformPRF, ID: PRFHMACSHA256}, {Type: ike.TransformKE, ID: 24}}},
		// weak PRF with an AEAD
		{Number: 3, Protocol: ike.ProtoIKE, Transforms: []ike.Transform{
			{Type: ike.TransformENCR, ID: EncrAESGCM16, KeyLength: 256}, {Type: ike.TransformPRF, ID: 2}, {Type: ike.TransformKE, ID: KEX25519}}},
		// ML-KEM as the IKE_SA_INIT key exchange (only an additional one here)
		{Number: 4, Protocol: ike.ProtoIKE, Transforms: []ike.Transform{
			{Type: ike.TransformENCR, ID: EncrAESGCM16, KeyLength: 256}, {Type: ike.TransformPRF, ID: PRFHMACSHA256}, {Type: ike.TransformKE, ID: KEMLKEM768}}},
	} {
		_, _, err := Select(ours, []ike.Proposal{w}, true)
		var npe *NoProposalError
		if !errors.As(err, &npe) {
			t.Fatalf("proposal %d negotiated: %v", w.Number, err)
		}
		if w.Number == 1 && !strings.Contains(err.Error(), "3des-sha1-prfsha1-modp1024") {
			t.Errorf("error does not name the peer's algorithms: %v", err)
		}
		if !strings.Contains(err.Error(), ours[0].String()) {
			t.Errorf("error does not list our proposals: %v", err)
		}
	}
}

// RFC 7296 §3.3.6: a transform with an attribute we do not understand is
// not chosen; ID/key length must match exactly.
func TestSelectAttributesAndKeyLengths(t *testing.T) {
	ours := []Proposal{mustP(t, ProtoESP, "aes128gcm16-aes256gcm16")}
	odd := ike.Proposal{Number: 1, Protocol: ike.ProtoESP, Transforms: []ike.Transform{
		{Type: ike.TransformENCR, ID: EncrAESGCM16, KeyLength: 256, OtherAttributes: "\x80\x99\x00\x01"},
		{Type: ike.TransformENCR, ID: EncrAESGCM16, KeyLength: 192},
		{Type: ike.TransformENCR, ID: EncrAESGCM16, KeyLength: 128},
		{Type: ike.TransformESN, ID: ESNNo}}}
	s, _, err := Select(ours, []ike.Proposal{odd}, false)
	if err != nil || s.EncrKeyBits != 128 {
		t.Fatalf("chose %v (%v), want AES-GCM-128", s, err)
	}
	// AEAD with INTEG NONE from the peer is fine (RFC 7296 §3.3).
	withNone := mustP(t, ProtoESP, "aes256gcm16").ToWire(2, []byte{1, 2, 3, 4})
	withNone.Transforms = append(withNone.Transforms, ike.Transform{Type: ike.TransformINTEG, ID: IntegNone})
	if s, _, err := Select(ours, []ike.Proposal{withNone}, false); err != nil || s.Integ != IntegNone {
		t.Fatalf("INTEG NONE with AEAD: %v %v", s, err)
	}
	enc, integ := s.ESPAlgorithms()
	if enc != "aes-gcm-16" || integ != "" {
		t.Errorf("ESP names %q %q", enc, integ)
	}
}

func TestESPAlgorithmNames(t *testing.T) {
	for _, tc := range []struct{ prop, enc, integ string }{
		{"aes128gcm16", "aes-gcm-16", ""},
		{"chacha20poly1305-esn", "chacha20-poly1305", ""},
		{"aes256-sha512", "aes-cbc", "hmac-sha2-512-256"},
		{"aes128-sha384", "aes-cbc", "hmac-sha2-384-192"},
		{"aes128-sha256", "aes-cbc", "hmac-sha2-256-128"},
	} {
		p := mustP(t, ProtoESP, tc.prop)
		s, _, err := Select([]Proposal{p}, []ike.Proposal{p.ToWire(1, nil)}, false)
		if err != nil {
			t.Fatal(err)
		}
		if e, i := s.ESPAlgorithms(); e != tc.enc || i != tc.integ {
			t.Errorf("%s: %q %q", tc.prop, e, i)
		}
	}
}

// RFC 9370 §2.2.2: each IKE_INTERMEDIATE exchange replaces every key with
// prf+(prf(SK_d(n-1), SK(n) | Ni | Nr), Ni | Nr | SPIi | SPIr), and zeroes
// the old ones.
func TestAdditionalKEUpdatesEveryKey(t *testing.T) {
	s := Suite{Protocol: ProtoIKE, Encr: EncrAESGCM16, EncrKeyBits: 256, PRF: PRFHMACSHA384, KE: KEX25519}
	ni, nr, g, sk1 := randB(32), randB(32), randB(32), randB(32)
	k0 := s.NewIKEKeys(ni, nr, g, 1, 2)
	oldSKd := bytes.Clone(k0.SKd)
	oldSKei := bytes.Clone(k0.SKei)
	k1 := s.AdditionalKE(k0, sk1, ni, nr, 1, 2)
	want := s.DeriveIKEKeys(s.ComputePRF(oldSKd, concat(sk1, ni, nr)), ni, nr, 1, 2)
	if !bytes.Equal(k1.SKd, want.SKd) || !bytes.Equal(k1.SKei, want.SKei) || !bytes.Equal(k1.SKpr, want.SKpr) {
		t.Fatal("keys after the additional exchange differ from RFC 9370's formula")
	}
	if bytes.Equal(k1.SKei, oldSKei) {
		t.Fatal("SK_ei unchanged")
	}
	if !allZero(k0.SKd) || !allZero(k0.SKei) || !allZero(k0.SKpi) {
		t.Fatal("old keys not zeroed")
	}
	if len(k1.SKei) != 36 || len(k1.SKai) != 0 || len(k1.SKd) != 48 {
		t.Fatalf("key lengths %d %d %d", len(k1.SKei), len(k1.SKai), len(k1.SKd))
	}
	k1.Zero()
	if !allZero(k1.SKd) || !allZero(k1.SKer) {
		t.Fatal("Zero left key bytes")
	}
}

// RFC 9370 §2.2.4: additional secrets follow the nonces in child KEYMAT
// and in the rekeyed SKEYSEED; order matters.
func TestMultipleKEChildAndRekey(t *testing.T) {
	ikeS := Suite{Protocol: ProtoIKE, PRF: PRFHMACSHA256}
	child := Suite{Protocol: ProtoESP, Encr: EncrAESGCM16, EncrKeyBits: 128}
	skd, ni, nr, sk0, sk1, sk2 := randB(32), randB(32), randB(32), randB(32), randB(1088), randB(32)
	k, err := ChildKeymat(ikeS, skd, child, sk0, ni, nr, sk1, sk2)
	if err != nil {
		t.Fatal(err)
	}
	want := ikeS.PRFPlus(skd, concat(sk0, ni, nr, sk1, sk2), 40)
	if got := concat(k.EncrI, k.IntegI, k.EncrR, k.IntegR); !bytes.Equal(got, want) {
		t.Fatalf("KEYMAT %x, want %x", got, want)
	}
	swapped, _ := ChildKeymat(ikeS, skd, child, sk0, ni, nr, sk2, sk1)
	if bytes.Equal(swapped.EncrI, k.EncrI) {
		t.Fatal("order of additional secrets ignored")
	}
	if len(k.EncrI) != 20 || len(k.IntegI) != 0 {
		t.Fatalf("AES-GCM-128 KEYMAT lengths %d %d, want 20 (key+salt) and 0", len(k.EncrI), len(k.IntegI))
	}
	newS := Suite{Protocol: ProtoIKE, Encr: EncrAESCBC, EncrKeyBits: 256, Integ: IntegHMACSHA512256, PRF: PRFHMACSHA512}
	r := RekeyIKE(ikeS, skd, newS, sk0, ni, nr, 3, 4, sk1)
	seed := ikeS.ComputePRF(skd, concat(sk0, ni, nr, sk1))
	if w := newS.DeriveIKEKeys(seed, ni, nr, 3, 4); !bytes.Equal(r.SKd, w.SKd) || len(r.SKd) != 64 || len(r.SKai) != 64 || len(r.SKei) != 32 {
		t.Fatal("rekey with an additional exchange: wrong keys or lengths")
	}
	k.Zero()
	if !allZero(k.EncrI) || !allZero(k.EncrR) {
		t.Fatal("ChildKeys.Zero left bytes")
	}
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// Every cipher and size: round trip for many lengths, dst prefixes kept,
// every single flipped bit of the sealed bytes or the AAD refused.
func TestSKEveryCipherFlipEveryBit(t *testing.T) {
	for _, c := range allSKCiphers(t) {
		aad := randB(32)
		for _, n := range []int{0, 1, 7, 15, 16, 17, 31, 64, 255, 256, 1000} {
			pt := randB(n)
			prefix := []byte("prefix")
			sealed, err := c.seal.Seal(bytes.Clone(prefix), aad, pt)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(sealed, prefix) || len(sealed)-len(prefix) != c.seal.SealedLen(n) {
				t.Fatalf("%s n=%d: sealed %d bytes, SealedLen %d", c.name, n, len(sealed)-len(prefix), c.seal.SealedLen(n))
			}
			sealed = sealed[len(prefix):]
			got, err := c.open.Open(bytes.Clone(prefix), aad, sealed)
			if err != nil || !bytes.Equal(got, append(bytes.Clone(prefix), pt...)) {
				t.Fatalf("%s n=%d: open %v", c.name, n, err)
			}
			if n != 17 {
				continue
			}
			for i := 0; i < len(sealed)*8; i++ {
				bad := bytes.Clone(sealed)
				bad[i/8] ^= 1 << (i % 8)
				if _, err := c.open.Open(nil, aad, bad); err == nil {
					t.Fatalf("%s: bit %d of the sealed bytes flipped, accepted", c.name, i)
				}
			}
			for i := 0; i < len(aad)*8; i++ {
				bad := bytes.Clone(aad)
				bad[i/8] ^= 1 << (i % 8)
				if _, err := c.open.Open(nil, bad, sealed); err == nil {
					t.Fatalf("%s: bit %d of the AAD flipped, accepted", c.name, i)
				}
			}
			for _, cut := range []int{0, 1, len(sealed) - 1} {
				if _, err := c.open.Open(nil, aad, sealed[:cut]); err == nil {
					t.Fatalf("%s: truncated to %d accepted", c.name, cut)
				}
			}
		}
	}
}

type skPair struct {
	name       string
	seal, open ike.SKCipher
}

// allSKCiphers returns a sealing and an opening cipher (same key, separate
// objects, as the two peers have) for every encryption row, with every
// integrity row for the classic ciphers.
func allSKCiphers(tb testing.TB) []skPair {
	var out []skPair
	for _, e := range encrAlgs {
		integs := []uint16{IntegNone}
		if !e.aead {
			integs = nil
			for _, i := range integAlgs {
				integs = append(integs, i.id)
			}
		}
		for _, integ := range integs {
			s := Suite{Protocol: ProtoIKE, Encr: e.id, EncrKeyBits: e.keyBits, Integ: integ, PRF: PRFHMACSHA256, KE: KEX25519}
			ek, ik := randB(s.EncrKeyLen()), randB(s.IntegKeyLen())
			a, err := s.NewSKCipher(ek, ik)
			if err != nil {
				tb.Fatal(err)
			}
			b, err := s.NewSKCipher(ek, ik)
			if err != nil {
				tb.Fatal(err)
			}
			out = append(out, skPair{s.String(), a, b})
		}
	}
	return out
}

// Authenticated plaintext whose pad length byte overruns it is refused,
// not sliced out of range (a broken peer).
func TestSKPadLengthOverrun(t *testing.T) {
	s := Suite{Protocol: ProtoIKE, Encr: EncrAESGCM16, EncrKeyBits: 128, PRF: PRFHMACSHA256, KE: KEX25519}
	c, _ := s.NewSKCipher(randB(20), nil)
	a := c.(*aeadSK)
	aad := randB(28)
	nonce := append(a.salt[:], make([]byte, 8)...)
	sealed := a.aead.Seal(make([]byte, 8), nonce, []byte{1, 2, 3, 200}, aad)
	if _, err := c.Open(nil, aad, sealed); !errors.Is(err, ErrPadding) {
		t.Fatalf("pad length 200 of 4 bytes: %v", err)
	}
	// Padding is allowed (RFC 5282 §3): 2 bytes of padding, pad length 2.
	sealed = a.aead.Seal(make([]byte, 8), nonce, []byte{9, 8, 0, 0, 2}, aad)
	if got, err := c.Open(nil, aad, sealed); err != nil || !bytes.Equal(got, []byte{9, 8}) {
		t.Fatalf("padded plaintext: %x %v", got, err)
	}
}

// Keys of the wrong size are refused with an error, never a panic.
func TestNewSKCipherKeyLengths(t *testing.T) {
	for _, e := range encrAlgs {
		s := Suite{Encr: e.id, EncrKeyBits: e.keyBits, Integ: IntegHMACSHA256128}
		if e.aead {
			s.Integ = IntegNone
		}
		if _, err := s.NewSKCipher(randB(s.EncrKeyLen()-1), randB(s.IntegKeyLen())); err == nil {
			t.Errorf("%s: short key accepted", e.name)
		}
		if !e.aead {
			if _, err := s.NewSKCipher(randB(s.EncrKeyLen()), randB(3)); err == nil {
				t.Errorf("%s: short integrity key accepted", e.name)
			}
		}
	}
	if _, err := (Suite{Encr: 99}).NewSKCipher(nil, nil); err == nil {
		t.Error("unknown cipher accepted")
	}
}

// Two IVs from one key never repeat, even across two cipher objects built
// from the same key (the counters start at random points).
func TestAEADIVsUnique(t *testing.T) {
	s := Suite{Protocol: ProtoIKE, Encr: EncrChaCha20Poly1305, EncrKeyBits: 256}
	key := randB(36)
	seen := map[string]bool{}
	for range 2 {
		c, _ := s.NewSKCipher(key, nil)
		for range 1000 {
			out, err := c.Seal(nil, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			iv := string(out[:8])
			if seen[iv] {
				t.Fatal("IV repeated")
			}
			seen[iv] = true
		}
	}
	c, _ := s.NewSKCipher(key, nil)
	c.(*aeadSK).used.Store(^uint64(0))
	if _, err := c.Seal(nil, nil, nil); !errors.Is(err, ErrIVsExhausted) {
		t.Fatalf("exhausted IV space: %v", err)
	}
}

// One cipher object is shared by the goroutines sending on an IKE SA: seals
// from many goroutines all open, and no two share an IV (run with -race).
func TestSKConcurrentUse(t *testing.T) {
	for _, c := range allSKCiphers(t) {
		const workers, each = 4, 50
		out := make(chan []byte, workers*each)
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					s, err := c.seal.Seal(nil, []byte("aad"), []byte("payload"))
					if err != nil {
						t.Error(err)
						return
					}
					out <- s
				}
			}()
		}
		wg.Wait()
		close(out)
		ivs := map[string]bool{}
		for s := range out {
			if _, err := c.open.Open(nil, []byte("aad"), s); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			iv := string(s[:8])
			if ivs[iv] {
				t.Fatalf("%s: IV repeated", c.name)
			}
			ivs[iv] = true
		}
	}
}
