package engine

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/core/engine/enginetest"
	"github.com/veil-ipsec/veil/core/ike"
	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/core/transform"
	"github.com/veil-ipsec/veil/core/transport"
	"github.com/veil-ipsec/veil/core/ts"
)

func twoChildren(t *testing.T) func(a, b *Connection) {
	return func(a, b *Connection) {
		for _, c := range []*Connection{a, b} {
			c2 := c.Children[0]
			c2.Name = "c2"
			c2.LocalTS = []provider.TrafficSelector{ts.MustParse("dynamic[tcp/5432]")}
			c2.RemoteTS = []provider.TrafficSelector{ts.MustParse("dynamic[tcp]")}
			c.Children = append(c.Children, c2)
		}
		// B answers c2 only for the matching selectors.
		b.Children[1].LocalTS, b.Children[1].RemoteTS = b.Children[1].RemoteTS, b.Children[1].LocalTS
		b.Children[1].LocalTS = []provider.TrafficSelector{ts.MustParse("dynamic[tcp]")}
		b.Children[1].RemoteTS = []provider.TrafficSelector{ts.MustParse("dynamic[tcp]")}
		b.Children[0], b.Children[1] = b.Children[1], b.Children[0]
	}
}

func (p *pair) wait(ch <-chan error) {
	p.t.Helper()
	p.flush()
	err, done := result(ch)
	if !done {
		p.t.Fatal("operation did not finish")
	}
	if err != nil {
		p.t.Fatal(err)
	}
}

func spis(d *enginetest.Dataplane) []uint32 {
	var out []uint32
	for _, s := range d.Inbound() {
		out = append(out, s.SPI)
	}
	return out
}

func TestCreateChildSA(t *testing.T) {
	for _, pfs := range []bool{false, true} {
		name := "no PFS"
		if pfs {
			name = "PFS"
		}
		t.Run(name, func(t *testing.T) {
			p := newPair(t, func(a, b *Connection) {
				twoChildren(t)(a, b)
				if pfs {
					for _, c := range []*Connection{a, b} {
						for i := range c.Children {
							c.Children[i].ESPProposals = mustProposals(t, transform.ProtoESP, "aes128gcm16-x25519")
						}
					}
				}
			})
			p.wait(p.a.e.StartInitiate("conn", "c1"))
			p.wait(p.a.e.StartInitiate("conn", "c2"))
			p.established(t, 2)
			c2 := p.a.e.Snapshot()[0].Children[1]
			if c2.Name != "c2" || c2.LocalTS[0] != "192.0.2.1/32[tcp/5432]" {
				t.Fatalf("c2 %+v", c2)
			}
			if want := mustProposals(t, transform.ProtoESP, "aes128gcm16-x25519")[0].String(); pfs && c2.Proposal != want {
				t.Fatalf("proposal %s, want %s", c2.Proposal, want)
			}
		})
	}
}

func TestChildRekey(t *testing.T) {
	for _, tc := range []struct {
		name string
		from func(p *pair) *peer
		pfs  bool
	}{
		{"by initiator", func(p *pair) *peer { return p.a }, false},
		{"by responder", func(p *pair) *peer { return p.b }, false},
		{"with PFS", func(p *pair) *peer { return p.a }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, func(a, b *Connection) {
				if tc.pfs {
					a.Children[0].ESPProposals = mustProposals(t, transform.ProtoESP, "aes128gcm16-ecp256")
					b.Children[0].ESPProposals = mustProposals(t, transform.ProtoESP, "aes128gcm16-ecp256")
				}
			})
			p.up()
			oldA, oldB := spis(p.a.dp), spis(p.b.dp)
			oldKey := p.a.dp.Outbound()[0].EncKey
			reqID := p.a.dp.Outbound()[0].ReqID
			x := tc.from(p)
			x.dp.Log = nil
			p.wait(x.e.StartRekey("conn", "c1"))
			p.established(t, 1)
			if slices.Equal(spis(p.a.dp), oldA) || slices.Equal(spis(p.b.dp), oldB) {
				t.Fatal("SPIs unchanged")
			}
			if slices.Equal(p.a.dp.Outbound()[0].EncKey, oldKey) {
				t.Fatal("keys unchanged")
			}
			if p.a.dp.Outbound()[0].ReqID != reqID || p.a.dp.PolicyCount() != 2 || p.b.dp.PolicyCount() != 2 {
				t.Fatalf("policies: reqid %d/%d, %d and %d", p.a.dp.Outbound()[0].ReqID, reqID, p.a.dp.PolicyCount(), p.b.dp.PolicyCount())
			}
			// make-before-break: new SAs installed before the old ones go
			log := x.dp.Log
			if i, j := slices.Index(log, "sa-in"), slices.Index(log, "del-sa"); i < 0 || j < 0 || i > j || slices.Contains(log, "del-policy") {
				t.Fatalf("order %v", log)
			}
			if x.e.Stats().Rekeys["child"] != 1 {
				t.Fatalf("stats %+v", x.e.Stats())
			}
		})
	}
}

func TestIKERekey(t *testing.T) {
	for _, from := range []string{"initiator", "responder"} {
		t.Run(from, func(t *testing.T) {
			p := newPair(t, nil)
			p.up()
			before := p.a.e.Snapshot()[0]
			childSPIs := spis(p.a.dp)
			x := p.a
			if from == "responder" {
				x = p.b
			}
			events, cancel := p.a.e.Subscribe()
			defer cancel()
			p.wait(x.e.StartRekey("conn", ""))
			p.established(t, 1)
			after := p.a.e.Snapshot()[0]
			if after.SPIi == before.SPIi || after.SPIr == before.SPIr {
				t.Fatal("IKE SPIs unchanged")
			}
			if after.Initiator != (from == "initiator") {
				t.Fatalf("the rekey initiator is the new SA's initiator: %+v", after)
			}
			if !slices.Equal(spis(p.a.dp), childSPIs) {
				t.Fatal("child SAs changed with an IKE rekey")
			}
			for len(events) > 0 {
				if ev := <-events; ev.Kind.String() == "down" || ev.Kind.String() == "child-down" {
					t.Fatalf("rekey produced %v", ev)
				}
			}
			// The new SA works: rekey the child over it, then delete.
			p.wait(p.a.e.StartRekey("conn", "c1"))
			p.established(t, 1)
			done, _ := p.b.e.StartTerminate("conn")
			p.flush()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("terminate")
			}
			p.gone(t)
		})
	}
}

func TestSimultaneousChildRekey(t *testing.T) {
	for i := 0; i < 8; i++ { // random nonces decide the winner; run both ways
		p := newPair(t, nil)
		p.up()
		old := spis(p.a.dp)
		ca := p.a.e.StartRekey("conn", "c1")
		cb := p.b.e.StartRekey("conn", "c1")
		p.flush()
		p.flush()
		for _, ch := range []<-chan error{ca, cb} {
			if err, done := result(ch); done && err != nil {
				t.Fatal(err)
			}
		}
		p.established(t, 1)
		if slices.Equal(spis(p.a.dp), old) || p.a.dp.PolicyCount() != 2 || p.b.dp.PolicyCount() != 2 {
			t.Fatalf("after collision: spis %v (old %v), policies %d/%d", spis(p.a.dp), old, p.a.dp.PolicyCount(), p.b.dp.PolicyCount())
		}
		if p.a.e.Stats().Rekeys["collision"] != 1 || p.b.e.Stats().Rekeys["collision"] != 1 {
			t.Fatalf("collisions %v %v", p.a.e.Stats().Rekeys, p.b.e.Stats().Rekeys)
		}
	}
}

func TestSimultaneousIKERekey(t *testing.T) {
	for i := 0; i < 8; i++ {
		p := newPair(t, nil)
		p.up()
		before := p.a.e.Snapshot()[0]
		p.a.e.StartRekey("conn", "")
		p.b.e.StartRekey("conn", "")
		p.flush()
		p.flush()
		p.established(t, 1)
		if after := p.a.e.Snapshot()[0]; after.SPIi == before.SPIi {
			t.Fatal("not rekeyed")
		}
		p.wait(p.b.e.StartRekey("conn", "c1"))
		p.established(t, 1)
	}
}

// consistent asserts both sides agree on whatever survived.
func (p *pair) consistent(t *testing.T) {
	t.Helper()
	sa, sb := p.a.e.Snapshot(), p.b.e.Snapshot()
	if len(sa) != len(sb) {
		t.Fatalf("IKE SAs: %d vs %d\n%+v\n%+v", len(sa), len(sb), sa, sb)
	}
	checkKeys(t, p.a.dp, p.b.dp, len(p.a.dp.Outbound()))
	if p.a.dp.PolicyCount() != 2*len(p.a.dp.Outbound()) || p.b.dp.PolicyCount() != 2*len(p.b.dp.Outbound()) {
		t.Fatalf("policies %d/%d for %d SAs", p.a.dp.PolicyCount(), p.b.dp.PolicyCount(), len(p.a.dp.Outbound()))
	}
}

func TestCollisions(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b func(p *pair)
		// survivors: children left on each side
		children int
		ikeSAs   int
	}{
		{"child rekey vs child delete", func(p *pair) { p.a.e.StartRekey("conn", "c1") }, func(p *pair) { p.deleteChild(p.b, "c1") }, -1, 1},
		{"child rekey vs IKE rekey", func(p *pair) { p.a.e.StartRekey("conn", "c1") }, func(p *pair) { p.b.e.StartRekey("conn", "") }, 1, 1},
		{"IKE rekey vs child rekey", func(p *pair) { p.a.e.StartRekey("conn", "") }, func(p *pair) { p.b.e.StartRekey("conn", "c1") }, 1, 1},
		{"child rekey vs IKE delete", func(p *pair) { p.a.e.StartRekey("conn", "c1") }, func(p *pair) { p.b.e.StartTerminate("conn") }, 0, 0},
		{"IKE rekey vs IKE delete", func(p *pair) { p.a.e.StartRekey("conn", "") }, func(p *pair) { p.b.e.StartTerminate("conn") }, 0, 0},
		{"IKE delete vs IKE delete", func(p *pair) { p.a.e.StartTerminate("conn") }, func(p *pair) { p.b.e.StartTerminate("conn") }, 0, 0},
		{"child delete vs child delete", func(p *pair) { p.deleteChild(p.a, "c1") }, func(p *pair) { p.deleteChild(p.b, "c1") }, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i < 4; i++ {
				p := newPair(t, nil)
				p.up()
				tc.a(p)
				tc.b(p)
				for j := 0; j < 3; j++ {
					p.flush()
					p.advance(5 * time.Second)
				}
				p.consistent(t)
				if n := len(p.a.e.Snapshot()); n != tc.ikeSAs {
					t.Fatalf("%d IKE SAs, want %d", n, tc.ikeSAs)
				}
				if tc.children >= 0 && len(p.a.dp.Outbound()) != tc.children {
					t.Fatalf("%d children, want %d", len(p.a.dp.Outbound()), tc.children)
				}
			}
		})
	}
}

func (p *pair) deleteChild(x *peer, name string) {
	x.e.mu.Lock()
	defer x.e.mu.Unlock()
	for _, sa := range x.e.sas {
		if sa.DeleteChild(name) == nil {
			x.e.after(sa)
		}
	}
}

func TestLostRekeyMessages(t *testing.T) {
	for _, tc := range []struct {
		name  string
		match func(ike.Header) bool
		ike   bool
	}{
		{"child rekey request", isReq(ike.CREATE_CHILD_SA), false},
		{"child rekey response", isResp(ike.CREATE_CHILD_SA), false},
		{"old child delete response", isResp(ike.INFORMATIONAL), false},
		{"IKE rekey request", isReq(ike.CREATE_CHILD_SA), true},
		{"IKE rekey response", isResp(ike.CREATE_CHILD_SA), true},
		{"old IKE delete request", isReq(ike.INFORMATIONAL), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, nil)
			p.up()
			p.filter = dropFirst(1, tc.match)
			child := "c1"
			if tc.ike {
				child = ""
			}
			ch := p.a.e.StartRekey("conn", child)
			p.flush()
			p.advance(4 * time.Second)
			p.flush()
			p.advance(8 * time.Second)
			p.flush()
			if err, done := result(ch); !done || err != nil {
				t.Fatalf("done %v err %v", done, err)
			}
			p.established(t, 1)
			if p.a.e.Stats().Retransmits != 1 {
				t.Fatalf("retransmits %d", p.a.e.Stats().Retransmits)
			}
		})
	}
}

func TestLifetimes(t *testing.T) {
	t.Run("child rekey before expiry", func(t *testing.T) {
		p := newPair(t, func(a, b *Connection) {
			a.Children[0].RekeyTime, a.Children[0].LifeTime = time.Hour, 2*time.Hour
			b.Children[0].RekeyTime, b.Children[0].LifeTime = 2*time.Hour, 3*time.Hour
		})
		p.up()
		old := spis(p.a.dp)
		p.advance(54 * time.Minute) // before the earliest jittered rekey (60 min - 10 %)
		p.flush()
		if !slices.Equal(spis(p.a.dp), old) {
			t.Fatal("rekeyed early")
		}
		p.advance(6 * time.Minute)
		p.flush()
		p.established(t, 1)
		if slices.Equal(spis(p.a.dp), old) {
			t.Fatal("not rekeyed after the rekey time")
		}
	})
	t.Run("child hard expiry", func(t *testing.T) {
		p := newPair(t, func(a, b *Connection) { a.Children[0].LifeTime = time.Hour })
		p.up()
		p.advance(59 * time.Minute)
		p.flush()
		p.established(t, 1)
		p.advance(time.Minute)
		p.flush()
		if len(p.a.dp.SAs)+len(p.b.dp.SAs) != 0 {
			t.Fatal("child outlived its lifetime")
		}
		if s := p.a.e.Snapshot(); len(s) != 1 {
			t.Fatal("IKE SA should stay")
		}
	})
	t.Run("IKE rekey", func(t *testing.T) {
		p := newPair(t, func(a, b *Connection) { a.RekeyTime = 4 * time.Hour })
		p.up()
		before := p.a.e.Snapshot()[0].SPIi
		p.advance(4 * time.Hour)
		p.flush()
		p.established(t, 1)
		if p.a.e.Snapshot()[0].SPIi == before {
			t.Fatal("IKE SA not rekeyed")
		}
	})
	t.Run("IKE hard expiry", func(t *testing.T) {
		p := newPair(t, func(a, b *Connection) { a.LifeTime = 4 * time.Hour })
		p.up()
		p.advance(4 * time.Hour)
		p.flush()
		p.gone(t)
	})
}

var _ = transport.Packet{}

// A Child rekey the peer refuses ends the operator's rekey request with
// the reason at once; the old child stays installed.
func TestRekeyRefusedAnswersWaiter(t *testing.T) {
	p := newPair(t, nil)
	p.up()
	p.b.e.mu.Lock()
	p.b.e.conns["conn"].Children[0].ESPProposals = mustProposals(t, transform.ProtoESP, "aes256gcm16-x25519")
	p.b.e.mu.Unlock()
	ch := p.a.e.StartRekey("conn", "c1")
	p.flush()
	err, done := result(ch)
	if !done || err == nil || !strings.Contains(err.Error(), "NO_PROPOSAL_CHOSEN") {
		t.Fatalf("rekey result %v (done %v)", err, done)
	}
	p.established(t, 1)
}
