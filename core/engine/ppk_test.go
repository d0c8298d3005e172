package engine

import (
	"strings"
	"testing"

	"github.com/veil-ipsec/veil/core/engine/enginetest"
	"github.com/veil-ipsec/veil/core/transform"
)

// ppkPair builds a pair whose keystore holds PPKs "ppk-a" and "ppk-b"; edit
// sets each side's ppk_id, ppk and ppk_required.
func ppkPair(t *testing.T, a, b []byte, edit func(a, b *Connection)) *pair {
	ks := enginetest.KeyStore{"ppk-a": a, "ppk-b": b}
	return newPairCfg(t, edit, func(c *Config) { c.KeyStore = ks })
}

func setPPK(c *Connection, id, ref string, required bool) {
	c.PPKID, c.PPK, c.PPKRequired = id, ref, required
}

func (p *pair) initiate() error {
	ch := p.a.e.StartInitiate("conn", "")
	p.flush()
	err, done := result(ch)
	if !done {
		p.t.Fatal("initiate did not finish")
	}
	return err
}

func TestPPK(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	for _, required := range []bool{false, true} {
		p := ppkPair(t, key, key, func(a, b *Connection) {
			setPPK(a, "pqkey", "ppk-a", required)
			setPPK(b, "pqkey", "ppk-b", required)
		})
		p.up()
		// checkKeys (in established) fails unless both mixed SK_d alike.
		p.established(t, 1)
		if !p.a.e.Snapshot()[0].PPK || !p.b.e.Snapshot()[0].PPK {
			t.Fatalf("required=%v: PPK not reported in use", required)
		}
		// An IKE rekey derives from the mixed SK_d: still PPK-protected.
		if err, _ := result(p.a.e.StartRekey("conn", "")); err != nil {
			t.Fatal(err)
		}
		p.flush()
		if s := p.b.e.Snapshot(); len(s) != 1 || !s[0].PPK {
			t.Fatalf("after IKE rekey: %+v", s)
		}
		if err, _ := result(p.a.e.StartRekey("conn", "c1")); err != nil {
			t.Fatal(err)
		}
		p.flush()
		p.established(t, 1)
	}
}

// The same PPK_ID with different keys: AUTH computed with the mixed keys
// cannot verify, and nothing falls back when the PPK is required.
func TestPPKMismatch(t *testing.T) {
	p := ppkPair(t, []byte("key-one-key-one-key-one"), []byte("key-two-key-two-key-two"), func(a, b *Connection) {
		setPPK(a, "pqkey", "ppk-a", true)
		setPPK(b, "pqkey", "ppk-b", true)
	})
	err := p.initiate()
	if err == nil || !strings.Contains(err.Error(), "AUTHENTICATION_FAILED") {
		t.Fatalf("initiator: %v", err)
	}
	if st := p.b.e.Status("conn"); !strings.Contains(st.LastFailure, "did not verify") {
		t.Fatalf("responder: %q", st.LastFailure)
	}
	p.gone(t)
}

func TestPPKFallback(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	for _, tc := range []struct {
		name string
		edit func(a, b *Connection)
	}{
		// the responder knows no PPK at all: no USE_PPK back
		{"peer without PPK", func(a, b *Connection) { setPPK(a, "pqkey", "ppk-a", false) }},
		// the responder has another PPK: it checks NO_PPK_AUTH
		{"unknown PPK_ID", func(a, b *Connection) {
			setPPK(a, "pqkey", "ppk-a", false)
			setPPK(b, "other", "ppk-b", false)
		}},
		// the initiator has none; the responder's is optional
		{"initiator without PPK", func(a, b *Connection) { setPPK(b, "pqkey", "ppk-b", false) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ppkPair(t, key, key, tc.edit)
			p.up()
			p.established(t, 1)
			if p.a.e.Snapshot()[0].PPK || p.b.e.Snapshot()[0].PPK {
				t.Fatal("PPK reported in use")
			}
		})
	}
}

func TestPPKRequired(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	for _, tc := range []struct {
		name               string
		edit               func(a, b *Connection)
		initiator, refuser string
		responderReason    string
	}{
		{"initiator requires, peer has none", func(a, b *Connection) { setPPK(a, "pqkey", "ppk-a", true) },
			"peer does not support PPK", "", ""},
		{"responder requires, initiator has none", func(a, b *Connection) { setPPK(b, "pqkey", "ppk-b", true) },
			"AUTHENTICATION_FAILED", "", "PPK is required"},
		{"responder requires another PPK_ID", func(a, b *Connection) {
			setPPK(a, "pqkey", "ppk-a", false)
			setPPK(b, "other", "ppk-b", true)
		}, "AUTHENTICATION_FAILED", "", `PPK_ID "pqkey" is not ours`},
		{"initiator requires a PPK_ID the responder lacks", func(a, b *Connection) {
			setPPK(a, "pqkey", "ppk-a", true)
			setPPK(b, "other", "ppk-b", false)
		}, "AUTHENTICATION_FAILED", "", "which we do not have"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ppkPair(t, key, key, tc.edit)
			err := p.initiate()
			if err == nil || !strings.Contains(err.Error(), tc.initiator) {
				t.Fatalf("initiator: %v, want %q", err, tc.initiator)
			}
			if tc.responderReason != "" {
				if st := p.b.e.Status("conn"); !strings.Contains(st.LastFailure, tc.responderReason) {
					t.Fatalf("responder: %q, want %q", st.LastFailure, tc.responderReason)
				}
			}
			// The initiator gives up; a responder that saw only
			// IKE_SA_INIT drops its half-open SA on its timer.
			if s := p.a.e.Snapshot(); len(s) != 0 || len(p.a.dp.SAs) != 0 {
				t.Fatalf("initiator left %+v", s)
			}
		})
	}
}

// A PPK reference the keystore cannot resolve fails with the PPK named.
func TestPPKMissingKey(t *testing.T) {
	p := ppkPair(t, nil, nil, func(a, b *Connection) {
		setPPK(a, "pqkey", "no-such-ref", false)
		setPPK(b, "pqkey", "ppk-b", false)
	})
	err := p.initiate()
	if err == nil || !strings.Contains(err.Error(), `loading PPK "pqkey" failed`) {
		t.Fatalf("initiator: %v", err)
	}
}

// With IKE_INTERMEDIATE (a hybrid ML-KEM key exchange, RFC 9370) the PPK
// mixes into the keys that exchange produced.
func TestPPKWithIntermediate(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	p := ppkPair(t, key, key, func(a, b *Connection) {
		for _, c := range []*Connection{a, b} {
			c.IKEProposals = mustProposals(t, transform.ProtoIKE, "aes256gcm16-prfsha384-x25519-ke1_mlkem768")
		}
		setPPK(a, "pqkey", "ppk-a", true)
		setPPK(b, "pqkey", "ppk-b", true)
	})
	p.up()
	p.established(t, 1)
	if s := p.a.e.Snapshot()[0]; !s.PPK || !strings.Contains(s.Proposal, "mlkem768") {
		t.Fatalf("%+v", s)
	}
}
