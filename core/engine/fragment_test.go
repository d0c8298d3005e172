package engine

import (
	"testing"
	"time"

	"github.com/veil-ipsec/veil/core/ike"
	"github.com/veil-ipsec/veil/core/transform"
	"github.com/veil-ipsec/veil/core/transport"
)

func countSKF(n *int, max *int) func(transport.Packet) []transport.Packet {
	return func(pk transport.Packet) []transport.Packet {
		h, _ := exchangeOf(pk)
		if h.NextPayload == ike.PayloadSKF {
			*n++
		}
		if h.Exchange != ike.IKE_SA_INIT && len(pk.Data) > *max {
			*max = len(pk.Data)
		}
		return []transport.Packet{pk}
	}
}

func TestFragmentation(t *testing.T) {
	for _, tc := range []struct {
		name      string
		a, b      bool
		size      int
		ike       string
		wantFrags bool
	}{
		{"both, small fragments", true, true, 150, "aes128gcm16-prfsha256-x25519", true},
		{"only initiator supports", true, false, 150, "aes128gcm16-prfsha256-x25519", false},
		{"hybrid mlkem1024 at the default size", true, true, 0, "aes256gcm16-prfsha384-x25519-ke1_mlkem1024", true},
		{"cbc cipher", true, true, 160, "aes256-sha256-x25519", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPairCfg(t, func(a, b *Connection) {
				a.Fragmentation, b.Fragmentation = tc.a, tc.b
				a.IKEProposals = mustProposals(t, transform.ProtoIKE, tc.ike)
				b.IKEProposals = mustProposals(t, transform.ProtoIKE, tc.ike)
			}, func(c *Config) { c.FragmentSize = tc.size })
			var frags, largest int
			p.filter = countSKF(&frags, &largest)
			p.up()
			p.established(t, 1)
			if (frags > 0) != tc.wantFrags {
				t.Fatalf("%d fragments", frags)
			}
			limit := tc.size
			if limit == 0 {
				limit = 1228
			}
			if tc.wantFrags && largest > limit {
				t.Fatalf("datagram of %d bytes exceeds %d", largest, limit)
			}
			p.wait(p.a.e.StartRekey("conn", ""))
			p.established(t, 1)
		})
	}
}

func TestLostFragment(t *testing.T) {
	p := newPairCfg(t, func(a, b *Connection) { a.Fragmentation, b.Fragmentation = true, true },
		func(c *Config) { c.FragmentSize = 150 })
	dropped := false
	p.filter = func(pk transport.Packet) []transport.Packet {
		if h, _ := exchangeOf(pk); h.NextPayload == ike.PayloadSKF && !h.IsResponse() && !dropped {
			dropped = true
			return nil
		}
		return []transport.Packet{pk}
	}
	ch := p.a.e.StartInitiate("conn", "")
	p.flush()
	p.advance(4 * time.Second)
	p.flush()
	if err, done := result(ch); !done || err != nil {
		t.Fatalf("done %v err %v", done, err)
	}
	p.established(t, 1)
}
