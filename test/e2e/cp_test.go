package e2e

import (
	"slices"
	"testing"
)

// Remote access between two veild: the client asks for a virtual IP
// (vips), the gateway leases one from its pool with a DNS server, both
// children carry the address as the client's selector, and traffic from
// the address crosses the tunnel (the gateway has no other route to it).
func TestVirtualIPBetweenDaemons(t *testing.T) {
	p := newDirectPair(t)
	p.ca.Mode, p.cb.Mode = "tunnel", "tunnel"
	p.ca.Extra = `vips = ["0.0.0.0"]`
	p.ca.RemoteTS = p.bAddr + "/32"
	p.cb.LocalTS = p.bAddr + "/32"
	p.cb.ChildExtra = `pools = ["10.99.0.0/24"]
    dns   = ["10.70.0.53"]`
	p.start(t)
	p.da.waitEstablished()
	p.db.waitEstablished()
	a, b := p.da.sas().IKESAs[0], p.db.sas().IKESAs[0]
	if !slices.Equal(a.LocalVIPs, []string{"10.99.0.1"}) || !slices.Equal(a.DNS, []string{"10.70.0.53"}) {
		t.Fatalf("client: vips %v dns %v", a.LocalVIPs, a.DNS)
	}
	if !slices.Equal(b.RemoteVIPs, []string{"10.99.0.1"}) {
		t.Fatalf("gateway: leased %v", b.RemoteVIPs)
	}
	if got := a.Children[0].LocalTS; !slices.Equal(got, []string{"10.99.0.1/32"}) {
		t.Fatalf("client's local TS %v", got)
	}
	if got := b.Children[0].RemoteTS; !slices.Equal(got, []string{"10.99.0.1/32"}) {
		t.Fatalf("gateway's remote TS %v", got)
	}
	// veild does not put the address on an interface yet: the test does.
	if out, err := p.a.Output("ip", "addr", "add", "10.99.0.1/32", "dev", "lo"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := p.a.Output("ping", "-c", "3", "-i", "0.2", "-W", "2", "-I", "10.99.0.1", p.bAddr); err != nil {
		t.Fatalf("ping from the virtual IP: %v\n%s", err, out)
	}
}
