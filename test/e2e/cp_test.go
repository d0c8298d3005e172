package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/test/netns"
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
	// veild put the address on lo; an unbound socket picks it as the
	// source towards the gateway's selector, and only the tunnel leads
	// back to it.
	if out, _ := p.a.Output("ip", "-4", "addr", "show", "dev", "lo"); !strings.Contains(string(out), "10.99.0.1/32") {
		t.Fatalf("virtual IP not on lo:\n%s", out)
	}
	if out, err := p.a.Output("ping", "-c", "3", "-i", "0.2", "-W", "2", p.bAddr); err != nil {
		t.Fatalf("ping through the tunnel: %v\n%s", err, out)
	}
	if b := p.db.sas().IKESAs[0].Children[0]; b.PacketsIn < 3 || b.PacketsOut < 3 {
		t.Fatalf("gateway's child counted in %d, out %d packets", b.PacketsIn, b.PacketsOut)
	}
	// Gone with the IKE SA.
	p.da.ctl("terminate", "lab")
	netns.WaitFor(t, "virtual IP removed", 10*time.Second, func() bool {
		out, _ := p.a.Output("ip", "-4", "addr", "show", "dev", "lo")
		return !strings.Contains(string(out), "10.99.0.1")
	})
}
