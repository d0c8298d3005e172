package engine

import (
	"slices"
	"testing"

	"github.com/veil-ipsec/veil/core/provider"
)

func TestDataplaneEvents(t *testing.T) {
	for _, tc := range []struct {
		kind     provider.EventKind
		inbound  bool
		rekeyed  bool
		children int
	}{
		{provider.SoftExpire, true, true, 1},
		{provider.SoftExpire, false, true, 1},
		{provider.SeqExhausted, false, true, 1},
		{provider.HardExpire, true, false, 0},
	} {
		p := newPair(t, nil)
		p.up()
		old := spis(p.a.dp)
		sa := p.a.dp.Outbound()[0]
		if tc.inbound {
			sa = p.a.dp.Inbound()[0]
		}
		p.a.e.HandleDataplaneEvent(provider.Event{Kind: tc.kind, SA: provider.SAKey{Dst: sa.Dst, SPI: sa.SPI}})
		p.flush()
		if tc.children == 1 {
			p.established(t, 1)
		} else if len(p.a.dp.SAs)+len(p.b.dp.SAs) != 0 {
			t.Fatalf("%v: SAs left", tc.kind)
		}
		if tc.children == 1 && tc.rekeyed == slices.Equal(old, spis(p.a.dp)) {
			t.Fatalf("%v: rekeyed=%v, old %v now %v", tc.kind, tc.rekeyed, old, spis(p.a.dp))
		}
	}
	p := newPair(t, nil)
	p.up()
	p.a.e.HandleDataplaneEvent(provider.Event{Kind: provider.SoftExpire, SA: provider.SAKey{Dst: addrA, SPI: 12345}})
	if p.a.e.Stats().Drops["dataplane-event-unknown-sa"] != 1 {
		t.Fatal("unknown SA event not counted")
	}
}

func TestSnapshotCounters(t *testing.T) {
	p := newPair(t, nil)
	p.up()
	in, out := p.a.dp.Inbound()[0], p.a.dp.Outbound()[0]
	p.a.dp.SetCounters(provider.SAKey{Dst: in.Dst, SPI: in.SPI}, provider.Counters{Bytes: 1000, Packets: 10})
	p.a.dp.SetCounters(provider.SAKey{Dst: out.Dst, SPI: out.SPI}, provider.Counters{Bytes: 2000, Packets: 20})
	c := p.a.e.Snapshot()[0].Children[0]
	if c.BytesIn != 1000 || c.PacketsIn != 10 || c.BytesOut != 2000 || c.PacketsOut != 20 {
		t.Fatalf("counters %+v", c)
	}
}

func TestSetConnectionsReload(t *testing.T) {
	p := newPair(t, nil)
	p.up()
	before := p.a.e.Snapshot()[0].SPIi
	// unchanged: untouched
	p.a.e.SetConnections([]Connection{p.a.cfg})
	p.flush()
	if s := p.a.e.Snapshot(); len(s) != 1 || s[0].SPIi != before {
		t.Fatal("unchanged connection was touched")
	}
	// a new connection with start_action=start is initiated; the removed one is deleted
	c2 := baseConn(t, "other", addrA, addrB)
	c2.Children[0].StartAction = "start"
	b2 := baseConn(t, "other", addrB, addrA)
	b2.Remote.ID = c2.Local.ID // B tells the two connections apart by A's identity
	p.b.e.SetConnections([]Connection{p.b.cfg, b2})
	p.a.e.SetConnections([]Connection{c2})
	p.flush()
	s := p.a.e.Snapshot()
	if len(s) != 1 || s[0].Name != "other" || s[0].State != "ESTABLISHED" || len(s[0].Children) != 1 {
		t.Fatalf("after reload: %+v", s)
	}
	if st := p.b.e.Status("conn"); st.State != "DOWN" {
		t.Fatalf("removed connection's SA still up on the peer: %+v", st)
	}
	checkKeys(t, p.a.dp, p.b.dp, 1)
}
