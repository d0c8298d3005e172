package engine

import (
	"testing"
	"time"

	"github.com/veil-ipsec/veil/core/ike"
	"github.com/veil-ipsec/veil/core/transform"
	"github.com/veil-ipsec/veil/core/transport"
)

const hybrid = "aes256gcm16-prfsha384-x25519-ke1_mlkem768"

func TestHybridMLKEM(t *testing.T) {
	for _, tc := range []struct {
		name, a, b string
		inter      int
	}{
		{"x25519+mlkem768", hybrid, hybrid, 1},
		{"two additional", "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_mlkem1024", "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_mlkem1024", 2},
		{"responder without PQ falls back", hybrid + "," + "aes256gcm16-prfsha384-x25519", "aes256gcm16-prfsha384-x25519", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, func(a, b *Connection) {
				a.IKEProposals = mustProposals(t, transform.ProtoIKE, splitList(tc.a)...)
				b.IKEProposals = mustProposals(t, transform.ProtoIKE, splitList(tc.b)...)
			})
			inter, followups := 0, 0
			p.filter = func(pk transport.Packet) []transport.Packet {
				if h, _ := exchangeOf(pk); h.Exchange == ike.IKE_INTERMEDIATE && !h.IsResponse() {
					inter++
				} else if h.Exchange == ike.IKE_FOLLOWUP_KE && !h.IsResponse() {
					followups++
				}
				return []transport.Packet{pk}
			}
			p.up()
			p.established(t, 1)
			if inter != tc.inter {
				t.Fatalf("%d IKE_INTERMEDIATE exchanges, want %d", inter, tc.inter)
			}
			if got, want := p.a.e.Snapshot()[0].Proposal, mustProposals(t, transform.ProtoIKE, splitList(tc.b)[0])[0].String(); got != want {
				t.Fatalf("proposal %s, want %s", got, want)
			}
			// The updated keys protect later exchanges: rekey a child and
			// the IKE SA; the IKE rekey repeats every additional key
			// exchange with IKE_FOLLOWUP_KE (RFC 9370 §2.2.2).
			p.wait(p.a.e.StartRekey("conn", "c1"))
			before := p.a.e.Snapshot()[0].SPIi
			p.wait(p.b.e.StartRekey("conn", ""))
			p.established(t, 1)
			if followups != tc.inter {
				t.Fatalf("%d IKE_FOLLOWUP_KE exchanges, want %d", followups, tc.inter)
			}
			if s := p.a.e.Snapshot()[0]; s.SPIi == before || s.Proposal != mustProposals(t, transform.ProtoIKE, splitList(tc.b)[0])[0].String() {
				t.Fatalf("after IKE rekey: %+v", s)
			}
			p.wait(p.a.e.StartRekey("conn", ""))
			p.wait(p.a.e.StartRekey("conn", "c1"))
			p.established(t, 1)
		})
	}
}

func splitList(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

func TestIntermediateLoss(t *testing.T) {
	for _, m := range []func(ike.Header) bool{isReq(ike.IKE_INTERMEDIATE), isResp(ike.IKE_INTERMEDIATE)} {
		p := newPair(t, func(a, b *Connection) {
			a.IKEProposals = mustProposals(t, transform.ProtoIKE, hybrid)
			b.IKEProposals = mustProposals(t, transform.ProtoIKE, hybrid)
		})
		p.filter = dropFirst(1, m)
		ch := p.a.e.StartInitiate("conn", "")
		p.flush()
		p.advance(4 * time.Second)
		p.flush()
		if err, done := result(ch); !done || err != nil {
			t.Fatalf("done %v err %v", done, err)
		}
		p.established(t, 1)
	}
}

// TestIntermediateAuthCoversExchange: tampering with the IntAuth chain on
// one side (a different PSK would be caught anyway) must fail AUTH: here
// the responder's view of the chain is altered.
func TestIntermediateAuthCoversExchange(t *testing.T) {
	p := newPair(t, func(a, b *Connection) {
		a.IKEProposals = mustProposals(t, transform.ProtoIKE, hybrid)
		b.IKEProposals = mustProposals(t, transform.ProtoIKE, hybrid)
	})
	p.filter = func(pk transport.Packet) []transport.Packet {
		if h, _ := exchangeOf(pk); h.Exchange == ike.IKE_AUTH && !h.IsResponse() {
			p.b.e.mu.Lock()
			for _, sa := range p.b.e.sas {
				sa.TamperIntAuthForTest()
			}
			p.b.e.mu.Unlock()
		}
		return []transport.Packet{pk}
	}
	if err := p.initiateExpect(t); err == nil {
		t.Fatal("AUTH verified although the IntAuth chains differ")
	}
}
