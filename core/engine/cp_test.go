package engine

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/veil-ipsec/veil/core/engine/enginetest"
	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/core/ts"
)

var addrC = netip.MustParseAddr("192.0.2.3")

// remoteAccess makes A a client asking for vips and B a gateway leasing
// from pools, with the client's traffic to 10.1.0.0/16 tunnelled.
func remoteAccess(t *testing.T, vips []netip.Addr, pools ...string) func(a, b *Connection) {
	return func(a, b *Connection) {
		a.VIPs = vips
		a.Children[0].Mode, b.Children[0].Mode = provider.Tunnel, provider.Tunnel
		a.Children[0].RemoteTS = []provider.TrafficSelector{ts.MustParse("10.1.0.0/16")}
		b.Children[0].LocalTS = []provider.TrafficSelector{ts.MustParse("10.1.0.0/16")}
		for _, p := range pools {
			b.Children[0].Pools = append(b.Children[0].Pools, netip.MustParsePrefix(p))
		}
		b.Children[0].DNS = []netip.Addr{netip.MustParseAddr("10.1.0.53")}
		b.RemoteAddrs = nil // a gateway: any client
	}
}

func TestCPAssignsVirtualIP(t *testing.T) {
	p := newPair(t, remoteAccess(t, []netip.Addr{netip.IPv4Unspecified()}, "10.99.0.0/24"))
	p.up()
	p.established(t, 1)
	a, b := p.a.e.Snapshot()[0], p.b.e.Snapshot()[0]
	if !slices.Equal(a.LocalVIPs, []string{"10.99.0.1"}) || !slices.Equal(a.DNS, []string{"10.1.0.53"}) || a.RemoteVIPs != nil {
		t.Fatalf("client: vips %v dns %v remote %v", a.LocalVIPs, a.DNS, a.RemoteVIPs)
	}
	if !slices.Equal(b.RemoteVIPs, []string{"10.99.0.1"}) || b.LocalVIPs != nil {
		t.Fatalf("gateway: leased %v, own %v", b.RemoteVIPs, b.LocalVIPs)
	}
	// The client's local selector narrowed to its address; the gateway's
	// dynamic remote selector is that address.
	if got := a.Children[0].LocalTS; !slices.Equal(got, []string{"10.99.0.1/32"}) {
		t.Fatalf("client local TS %v", got)
	}
	if got := b.Children[0].RemoteTS; !slices.Equal(got, []string{"10.99.0.1/32"}) {
		t.Fatalf("gateway remote TS %v", got)
	}
	out := p.a.dp.Outbound()[0]
	if len(out.LocalTS) != 1 || out.LocalTS[0].Start != netip.MustParseAddr("10.99.0.1") || out.Mode != provider.Tunnel || out.Src != addrA {
		t.Fatalf("client's outbound SA %+v", out)
	}
	// A child added later keeps the address; so does an IKE rekey.
	if err, _ := result(p.a.e.StartRekey("conn", "")); err != nil {
		t.Fatal(err)
	}
	p.flush()
	if s := p.b.e.Snapshot(); len(s) != 1 || !slices.Equal(s[0].RemoteVIPs, []string{"10.99.0.1"}) || !slices.Equal(p.a.e.Snapshot()[0].LocalVIPs, []string{"10.99.0.1"}) {
		t.Fatalf("after IKE rekey: %+v", s)
	}
	if err, _ := result(p.a.e.StartRekey("conn", "c1")); err != nil {
		t.Fatal(err)
	}
	p.flush()
	if got := p.a.e.Snapshot()[0].Children[0].LocalTS; !slices.Equal(got, []string{"10.99.0.1/32"}) {
		t.Fatalf("rekeyed child's local TS %v", got)
	}
	// Gone and back: the same address; the lease ends with the IKE SA.
	if _, err := p.a.e.StartTerminate("conn"); err != nil {
		t.Fatal(err)
	}
	p.flush()
	if n := p.b.e.env.Pools.Online(netip.MustParsePrefix("10.99.0.0/24")); n != 0 {
		t.Fatalf("%d leases after the IKE SA died", n)
	}
	p.up()
	if got := p.a.e.Snapshot()[0].LocalVIPs; !slices.Equal(got, []string{"10.99.0.1"}) {
		t.Fatalf("came back with %v", got)
	}
}

func TestCPIPv6AndSpecificAddress(t *testing.T) {
	p := newPair(t, func(a, b *Connection) {
		remoteAccess(t, []netip.Addr{netip.MustParseAddr("10.99.0.9"), netip.IPv6Unspecified()}, "10.99.0.0/24", "fd00:99::/120")(a, b)
		a.Children[0].RemoteTS = append(a.Children[0].RemoteTS, ts.MustParse("fd00:1::/64"))
		b.Children[0].LocalTS = append(b.Children[0].LocalTS, ts.MustParse("fd00:1::/64"))
	})
	p.up()
	a := p.a.e.Snapshot()[0]
	// A pool leases its own choice; the requested address is a hint.
	if !slices.Equal(a.LocalVIPs, []string{"10.99.0.1", "fd00:99::1"}) {
		t.Fatalf("vips %v", a.LocalVIPs)
	}
	if got := a.Children[0].LocalTS; !slices.Equal(got, []string{"10.99.0.1/32", "fd00:99::1/128"}) {
		t.Fatalf("local TS %v", got)
	}
}

func TestCPPoolExhausted(t *testing.T) {
	p := newPair(t, remoteAccess(t, []netip.Addr{netip.IPv4Unspecified()}, "10.99.0.7/32"))
	p.up()
	// A second client, another identity: the one address is taken.
	cc := baseConn(t, "conn", addrC, addrB)
	gw := baseConn(t, "conn", addrB, addrC)
	remoteAccess(t, []netip.Addr{netip.IPv4Unspecified()})(&cc, &gw)
	c := newPeer(t, p.net, p.clock, addrC, 0xc000, cc, "secret", nil)
	ch := c.e.StartInitiate("conn", "")
	p.flushWith(c)
	err, done := result(ch)
	if !done || err == nil || !strings.Contains(err.Error(), "FAILED_CP_REQUIRED") {
		t.Fatalf("second client: %v (done %v)", err, done)
	}
	if st := p.b.e.Status("conn"); !strings.Contains(st.LastFailure, "10.99.0.7/32 exhausted") {
		t.Fatalf("gateway's reason does not name the pool: %q", st.LastFailure)
	}
	// The first client's SA is untouched; when it leaves, the address is
	// free for the second.
	if s := p.a.e.Snapshot(); len(s) != 1 || len(s[0].Children) != 1 {
		t.Fatalf("first client: %+v", s)
	}
	if _, err := p.a.e.StartTerminate("conn"); err != nil {
		t.Fatal(err)
	}
	p.flush()
	if _, err := c.e.StartTerminate("conn"); err != nil {
		t.Fatal(err)
	}
	p.flush()
	ch = c.e.StartInitiate("conn", "")
	p.flushWith(c)
	if err, done := result(ch); !done || err != nil {
		t.Fatalf("second client after the first left: %v (done %v)", err, done)
	}
	if got := c.e.Snapshot()[0].LocalVIPs; !slices.Equal(got, []string{"10.99.0.7"}) {
		t.Fatalf("second client got %v", got)
	}
}

// A gateway without pools answers no CFG_REQUEST: the client's child
// comes up on its own address (its dynamic selector asked for any).
func TestCPNoPools(t *testing.T) {
	p := newPair(t, remoteAccess(t, []netip.Addr{netip.IPv4Unspecified()}))
	p.up()
	a := p.a.e.Snapshot()[0]
	if a.LocalVIPs != nil {
		t.Fatalf("vips %v without pools", a.LocalVIPs)
	}
}

// flushWith settles the network with a third peer x on it.
func (p *pair) flushWith(x *peer) {
	for i := 0; i < 10; i++ {
		p.flush()
		n := 0
		for {
			pk, ok := x.conn.TryReceive()
			if !ok {
				break
			}
			x.e.HandlePacket(pk)
			n++
		}
		x.e.offloads.Wait()
		if n == 0 {
			return
		}
	}
}

// The client's virtual IP goes on the host before its child installs and
// comes off with the IKE SA, not with an IKE rekey that keeps it.
func TestCPInstallsVirtualIP(t *testing.T) {
	var log []string
	p := newPair(t, remoteAccess(t, []netip.Addr{netip.IPv4Unspecified()}, "10.99.0.0/24"))
	// (Config.VirtualIPs ends up here.) It runs before the child's
	// policies are installed.
	var policiesAtAdd int
	p.a.e.env.VirtualIPs = func(add bool, addrs []netip.Addr) {
		if add {
			policiesAtAdd = p.a.dp.PolicyCount()
		}
		log = append(log, fmt.Sprint(add, addrs))
	}
	p.up()
	if !slices.Equal(log, []string{"true [10.99.0.1]"}) || policiesAtAdd != 0 {
		t.Fatalf("after up: %v (policies at add: %d)", log, policiesAtAdd)
	}
	if err, _ := result(p.b.e.StartRekey("conn", "")); err != nil {
		t.Fatal(err)
	}
	p.flush()
	if len(log) != 1 {
		t.Fatalf("after IKE rekey: %v", log)
	}
	if _, err := p.b.e.StartTerminate("conn"); err != nil {
		t.Fatal(err)
	}
	p.flush()
	if !slices.Equal(log, []string{"true [10.99.0.1]", "false [10.99.0.1]"}) {
		t.Fatalf("after delete: %v", log)
	}
}

// Remote access with EAP: the CFG_REQUEST rides the first IKE_AUTH
// request, the CFG_REPLY the last response after the EAP rounds.
func TestCPWithEAP(t *testing.T) {
	ma := &enginetest.EAP{Password: []byte("pw"), Rounds: 2}
	mb := &enginetest.EAP{Password: []byte("pw"), Rounds: 2}
	p := eapPair(t, ma, mb, remoteAccess(t, []netip.Addr{netip.IPv4Unspecified()}, "10.99.0.0/24"))
	p.up()
	p.established(t, 1)
	a, b := p.a.e.Snapshot()[0], p.b.e.Snapshot()[0]
	if !slices.Equal(a.LocalVIPs, []string{"10.99.0.1"}) || !slices.Equal(b.RemoteVIPs, []string{"10.99.0.1"}) ||
		!slices.Equal(a.Children[0].LocalTS, []string{"10.99.0.1/32"}) {
		t.Fatalf("client %+v gateway %+v", a, b)
	}
}
