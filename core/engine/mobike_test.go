package engine

import (
	"net/netip"
	"testing"

	"github.com/veil-ipsec/veil/core/engine/enginetest"
	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/core/transport"
)

func TestMOBIKEAddressChange(t *testing.T) {
	for _, mobike := range []bool{true, false} {
		n := transport.NewNetwork()
		clock := enginetest.NewClock()
		addrA2 := netip.MustParseAddr("192.0.2.11")
		ca, cb := baseConn(t, "conn", addrA, addrB), baseConn(t, "conn", addrB, addrA)
		ca.Mobike, cb.Mobike = mobike, mobike
		cb.RemoteAddrs = nil // B accepts A from any address
		p := &pair{t: t, net: n, clock: clock}
		p.a = newPeer(t, n, clock, addrA, 0xa000, ca, "secret", nil, addrA2)
		p.b = newPeer(t, n, clock, addrB, 0xb000, cb, "secret", nil)
		p.up()
		p.a.e.HandleDataplaneEvent(provider.Event{Kind: provider.AddressChange, Addr: addrA, AddrUp: false})
		p.flush()
		p.established(t, 1)
		sa, sb := p.a.e.Snapshot()[0], p.b.e.Snapshot()[0]
		out := p.a.dp.Outbound()[0]
		if !mobike {
			if sa.Local != "192.0.2.1:500" || out.Src != addrA {
				t.Fatalf("moved without MOBIKE: %s", sa.Local)
			}
			continue
		}
		if sa.Local != "192.0.2.11:500" || sb.Remote != "192.0.2.11:500" {
			t.Fatalf("IKE SA not moved: A %s, B remote %s", sa.Local, sb.Remote)
		}
		if out.Src != addrA2 || p.b.dp.Outbound()[0].Dst != addrA2 || sa.Children[0].LocalTS[0] != "192.0.2.11/32" {
			t.Fatalf("children not moved: %+v", sa.Children[0])
		}
	}
}
