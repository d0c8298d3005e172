package transform

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/veil-ipsec/veil/core/ike"
)

func TestProposalRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		proto Protocol
		in    string
		out   string
	}{
		{ProtoIKE, "aes256gcm16-prfsha384-x25519-ke1_mlkem768", ""},
		{ProtoIKE, "aes128-sha256-modp3072", "aes128-sha256-prfsha256-modp3072"},
		{ProtoIKE, "chacha20poly1305-prfsha256-ecp256", ""},
		{ProtoIKE, "aes256gcm16-aes128gcm16-prfsha384-prfsha256-x25519-ecp384-ke1_mlkem768-ke1_none", ""},
		{ProtoIKE, "aes128gcm128-prfsha256-curve25519", "aes128gcm16-prfsha256-x25519"},
		{ProtoESP, "aes256gcm16", ""},
		{ProtoESP, "aes256gcm16-esn", ""},
		{ProtoESP, "aes256gcm16-esn-noesn", ""},
		{ProtoESP, "chacha20poly1305", ""},
		{ProtoESP, "aes128-sha256-x25519", ""},
		{ProtoESP, "aes256-sha512-sha384", ""},
		// strongSwan's rules: the PRF comes from the integrity algorithm before
		// an all-AEAD proposal drops integrity; ESP drops PRFs.
		{ProtoIKE, "aes256gcm16-sha384-x25519", "aes256gcm16-prfsha384-x25519"},
		{ProtoIKE, "aes128gcm16-sha256-prfsha256-x25519", "aes128gcm16-prfsha256-x25519"},
		{ProtoESP, "aes128gcm16-prfsha256", "aes128gcm16"},
		{ProtoESP, "AES-SHA256", "aes128-sha256"},
	} {
		p, err := ParseProposal(tc.proto, tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		want := tc.out
		if want == "" {
			want = tc.in
		}
		if got := p.String(); got != want {
			t.Errorf("%s printed as %s, want %s", tc.in, got, want)
		}
		again, err := ParseProposal(tc.proto, p.String())
		if err != nil || again.String() != p.String() {
			t.Errorf("%s does not re-parse: %v", p, err)
		}
	}
}

func TestProposalErrors(t *testing.T) {
	for _, tc := range []struct {
		proto Protocol
		in    string
		want  string
	}{
		{ProtoIKE, "3des-sha256-modp2048", "3des is refused"},
		{ProtoIKE, "aes128-md5-modp2048", "md5 is refused"},
		{ProtoIKE, "aes128-sha1-modp2048", "sha1 is refused"},
		{ProtoIKE, "aes128-sha256-modp1024", "modp1024 is refused"},
		{ProtoIKE, "aes128-sha256-modp2048s256", "refused"},
		{ProtoIKE, "aes128gcm16-x25519", "a PRF algorithm is mandatory"},
		{ProtoIKE, "aes128gcm16-aes128-sha256-x25519", "classic and combined-mode"},
		{ProtoESP, "aes128", "integrity algorithm is mandatory"},
		{ProtoESP, "esn", "encryption algorithm is mandatory"},
		{ProtoIKE, "aes256gcm16-prfsha256-ke1_mlkem512", "ML-KEM-512 is not implemented"},
		{ProtoIKE, "aes256gcm16-prfsha256-ecp192", "ecp192 is refused"},
		{ProtoIKE, "aes128gcm16-prfsha256", "key exchange method is mandatory"},
		{ProtoIKE, "aes128-prfsha256-x25519", "integrity algorithm is mandatory"},
		{ProtoIKE, "aes128gcm16-prfsha256-mlkem768", "ke1_mlkem768"},
		{ProtoIKE, "aes128gcm16-prfsha256-x25519-esn", "ESP only"},
		{ProtoIKE, "rot13-prfsha256-x25519", "unknown algorithm"},
		{ProtoESP, "", "empty"},
		{ProtoESP, "aes256gcm16-aes256gcm16", "twice"},
	} {
		_, err := ParseProposal(tc.proto, tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestDefaultsFollowHardware(t *testing.T) {
	if !strings.HasPrefix(defaultIKE(true)[0].String(), "aes256gcm16") {
		t.Errorf("with AES-NI: %v", defaultIKE(true)[0])
	}
	if !strings.HasPrefix(defaultIKE(false)[0].String(), "chacha20poly1305") {
		t.Errorf("without AES-NI: %v", defaultIKE(false)[0])
	}
	if !strings.HasPrefix(defaultESP(false)[0].String(), "chacha20poly1305") || !strings.HasPrefix(defaultESP(true)[0].String(), "aes256gcm16") {
		t.Error("ESP defaults do not follow the hardware")
	}
	// Either way both families are offered, so two hosts with different
	// hardware still agree, and the exported functions follow the CPU flag.
	for _, aes := range []bool{true, false} {
		for _, ps := range [][]Proposal{defaultIKE(aes), defaultESP(aes)} {
			all := ps[0].String() + " " + ps[1].String()
			if !strings.Contains(all, "aes256gcm16") || !strings.Contains(all, "chacha20poly1305") {
				t.Errorf("aes=%v: %s", aes, all)
			}
		}
	}
	if DefaultIKEProposals()[0].String() != defaultIKE(hasAESHardware())[0].String() ||
		DefaultESPProposals()[0].String() != defaultESP(hasAESHardware())[0].String() {
		t.Error("exported defaults ignore the CPU")
	}
}

func mustP(t *testing.T, proto Protocol, s string) Proposal {
	p, err := ParseProposal(proto, s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSelect(t *testing.T) {
	ours := []Proposal{mustP(t, ProtoIKE, "aes256gcm16-prfsha384-x25519"), mustP(t, ProtoIKE, "aes128-sha256-modp3072")}
	theirs := []ike.Proposal{
		mustP(t, ProtoIKE, "chacha20poly1305-prfsha256-x25519").ToWire(1, nil),
		mustP(t, ProtoIKE, "aes128-sha256-modp3072").ToWire(2, nil),
		mustP(t, ProtoIKE, "aes256gcm16-prfsha384-x25519").ToWire(3, nil),
	}
	s, n, err := Select(ours, theirs, false)
	if err != nil || n != 2 || s.String() != "aes128-sha256-prfsha256-modp3072" {
		t.Errorf("initiator's order: %v %d %v", s, n, err)
	}
	s, n, err = Select(ours, theirs, true)
	if err != nil || n != 3 || s.String() != "aes256gcm16-prfsha384-x25519" {
		t.Errorf("our order: %v %d %v", s, n, err)
	}
	_, _, err = Select(ours[:1], theirs[:1], false)
	var npe *NoProposalError
	if !errors.As(err, &npe) || !strings.Contains(err.Error(), "chacha20poly1305-prfsha256-x25519") || !strings.Contains(err.Error(), "aes256gcm16-prfsha384-x25519") {
		t.Errorf("mismatch error should list both sides: %v", err)
	}
	// A weak transform from a peer is never chosen.
	weakP := ike.Proposal{Number: 1, Protocol: ike.ProtoIKE, Transforms: []ike.Transform{
		{Type: ike.TransformENCR, ID: 3}, {Type: ike.TransformPRF, ID: 2}, {Type: ike.TransformINTEG, ID: 2}, {Type: ike.TransformKE, ID: 2}}}
	if _, _, err := Select(ours, []ike.Proposal{weakP}, false); err == nil {
		t.Error("3DES/SHA1/MODP1024 negotiated")
	}
	// Additional key exchange that the initiator allows to be none.
	hyb := mustP(t, ProtoIKE, "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none").ToWire(1, nil)
	s, _, err = Select(ours[:1], []ike.Proposal{hyb}, false)
	if err != nil || len(s.AdditionalKEs()) != 0 {
		t.Errorf("optional ADDKE: %v %v", s, err)
	}
	s, _, err = Select([]Proposal{mustP(t, ProtoIKE, "aes256gcm16-prfsha384-x25519-ke1_mlkem768")}, []ike.Proposal{hyb}, false)
	if err != nil || len(s.AdditionalKEs()) != 1 || s.AdditionalKEs()[0] != KEMLKEM768 {
		t.Errorf("ADDKE: %v %v", s, err)
	}
}

func TestKeyExchangeAgreement(t *testing.T) {
	for _, m := range []uint16{KEX25519, KEECP256, KEECP384, KEECP521, KEMODP2048, KEMODP3072, KEMLKEM768, KEMLKEM1024} {
		i, err := NewKeyExchange(m)
		if err != nil {
			t.Fatal(err)
		}
		pub, shared, err := RespondKeyExchange(m, i.Public())
		if err != nil {
			t.Fatalf("%d: %v", m, err)
		}
		got, err := i.SharedSecret(pub)
		if err != nil || !bytes.Equal(got, shared) {
			t.Errorf("method %d: shared secrets differ (%v)", m, err)
		}
		if n := KEDataLen(m); n > 0 && len(i.Public()) != n {
			t.Errorf("method %d: public of %d bytes, want %d", m, len(i.Public()), n)
		}
	}
}

// RFC 6989 §2.1: the MODP peer value must satisfy 1 < y < p-1.
func TestMODPRejectsBadPeerValues(t *testing.T) {
	for _, m := range []uint16{KEMODP2048, KEMODP3072, KEMODP4096} {
		ke, err := NewKeyExchange(m)
		if err != nil {
			t.Fatal(err)
		}
		p := modpPrime(m)
		n := KEDataLen(m)
		pm1 := new(bigInt).Sub(p, one())
		for name, y := range map[string][]byte{
			"0":   make([]byte, n),
			"1":   one().FillBytes(make([]byte, n)),
			"p-1": pm1.FillBytes(make([]byte, n)),
			"p":   p.FillBytes(make([]byte, n)),
			">p":  bytes.Repeat([]byte{0xff}, n),
		} {
			if _, err := ke.SharedSecret(y); !errors.Is(err, ErrBadPublicValue) {
				t.Errorf("group %d: y=%s accepted: %v", m, name, err)
			}
			if _, _, err := RespondKeyExchange(m, y); !errors.Is(err, ErrBadPublicValue) {
				t.Errorf("group %d: responder took y=%s: %v", m, name, err)
			}
		}
		if _, err := ke.SharedSecret(make([]byte, 100)); err == nil {
			t.Errorf("group %d: short value accepted", m)
		}
		// 2 and p-2 are the extremes that are allowed.
		two := big2().FillBytes(make([]byte, n))
		if _, err := ke.SharedSecret(two); err != nil {
			t.Errorf("group %d: y=2 refused: %v", m, err)
		}
	}
}

// ECP and X25519 points that are not on the curve are refused.
func TestECPRejectsInvalidPoints(t *testing.T) {
	for _, m := range []uint16{KEECP256, KEECP384, KEX25519} {
		ke, _ := NewKeyExchange(m)
		bad := make([]byte, KEDataLen(m))
		if m != KEX25519 { // for X25519, u=0 is a low-order point: the shared secret would be zero
			bad[len(bad)-1] = 1
		}
		if _, err := ke.SharedSecret(bad); err == nil {
			t.Errorf("method %d accepted an invalid point", m)
		}
	}
}

func TestSKRoundTripAndTamper(t *testing.T) {
	for _, prop := range []string{"aes128gcm16-prfsha256-x25519", "aes256gcm16-prfsha384-x25519", "chacha20poly1305-prfsha256-x25519",
		"aes128-sha256-x25519", "aes256-sha384-x25519", "aes256-sha512-x25519"} {
		p := mustP(t, ProtoIKE, prop)
		s, _, err := Select([]Proposal{p}, []ike.Proposal{p.ToWire(1, nil)}, false)
		if err != nil {
			t.Fatal(err)
		}
		ni, nr, shared := randB(32), randB(32), randB(32)
		k := s.NewIKEKeys(ni, nr, shared, 1, 2)
		enc, _ := s.NewSKCipher(k.SKei, k.SKai)
		dec, _ := s.NewSKCipher(k.SKei, k.SKai)
		for _, n := range []int{0, 1, 15, 16, 17, 100, 1000} {
			h := ike.Header{SPIi: 1, SPIr: 2, Exchange: ike.IKE_AUTH, Flags: ike.FlagInitiator, MessageID: 1}
			inner := []ike.Payload{&ike.Nonce{Data: randB(16)}, &ike.VendorID{Data: randB(n)}}
			msg, err := ike.SealMessage(h, inner, enc)
			if err != nil {
				t.Fatal(err)
			}
			m, err := ike.ParseMessage(msg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ike.OpenMessage(m, dec)
			if err != nil {
				t.Fatalf("%s n=%d: %v", prop, n, err)
			}
			if !bytes.Equal(got[1].(*ike.VendorID).Data, inner[1].(*ike.VendorID).Data) {
				t.Fatalf("%s: payload changed", prop)
			}
			for _, i := range []int{0, 20, ike.HeaderLen + 2, len(msg) / 2, len(msg) - 1} {
				bad := bytes.Clone(msg)
				bad[i] ^= 0x40
				if m, err := ike.ParseMessage(bad); err == nil {
					if _, err := ike.OpenMessage(m, dec); err == nil {
						t.Errorf("%s: flipped byte %d accepted", prop, i)
					}
				}
			}
		}
	}
}

func TestSKFragmentsReassemble(t *testing.T) {
	p := mustP(t, ProtoIKE, "aes256-sha256-x25519")
	s, _, _ := Select([]Proposal{p}, []ike.Proposal{p.ToWire(1, nil)}, false)
	k := s.NewIKEKeys(randB(32), randB(32), randB(32), 7, 8)
	c, _ := s.NewSKCipher(k.SKei, k.SKai)
	big := &ike.KeyExchange{Group: KEMLKEM768, Data: randB(1184)}
	h := ike.Header{SPIi: 7, SPIr: 8, Exchange: ike.IKE_INTERMEDIATE, Flags: ike.FlagInitiator, MessageID: 1}
	frags, err := ike.SealFragments(h, []ike.Payload{big}, c, 548)
	if err != nil {
		t.Fatal(err)
	}
	if len(frags) < 3 {
		t.Fatalf("%d fragments", len(frags))
	}
	var r ike.Reassembler
	for i := len(frags) - 1; i >= 0; i-- { // out of order, with a duplicate
		if len(frags[i]) > 548 {
			t.Fatalf("fragment of %d bytes", len(frags[i]))
		}
		m, err := ike.ParseMessage(frags[i])
		if err != nil {
			t.Fatal(err)
		}
		inner, done, err := r.Add(m, c)
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			if _, d, _ := r.Add(m, c); d {
				t.Fatal("duplicate completed the message")
			}
		}
		if done != (i == 0) {
			t.Fatalf("fragment %d: done=%v", i, done)
		}
		if done && !bytes.Equal(inner[0].(*ike.KeyExchange).Data, big.Data) {
			t.Fatal("reassembled payload differs")
		}
	}
}

// RFC 4868 §2.7.1 test case 2 (PRF-HMAC-SHA-256/384/512, key "Jefe").
func TestPRFRFC4868(t *testing.T) {
	data := []byte("what do ya want for nothing?")
	for _, tc := range []struct {
		prf  uint16
		want string
	}{
		{PRFHMACSHA256, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
		{PRFHMACSHA384, "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"},
		{PRFHMACSHA512, "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"},
	} {
		got := Suite{PRF: tc.prf}.ComputePRF([]byte("Jefe"), data)
		if hex.EncodeToString(got) != tc.want {
			t.Errorf("prf %d: %x", tc.prf, got)
		}
	}
}

func randB(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
