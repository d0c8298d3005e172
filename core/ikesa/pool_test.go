package ikesa

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/veil-ipsec/veil/core/provider"
)

func TestAddressPools(t *testing.T) {
	id := func(s string) provider.Identity { return provider.Identity{Type: 2, Data: []byte(s)} }
	ps := NewAddressPools()
	p := netip.MustParsePrefix("10.0.0.0/30") // .1 and .2: no network or broadcast address
	acquire := func(who, want string) {
		t.Helper()
		a, err := ps.Acquire(p, id(who))
		if want == "" {
			if err == nil || !strings.Contains(err.Error(), "10.0.0.0/30 exhausted") {
				t.Fatalf("%s: got %v, %v; want the pool named as exhausted", who, a, err)
			}
			return
		}
		if err != nil || a.String() != want {
			t.Fatalf("%s: got %v, %v; want %s", who, a, err, want)
		}
	}
	acquire("a", "10.0.0.1")
	acquire("b", "10.0.0.2")
	acquire("c", "")
	acquire("a", "10.0.0.1") // a second SA of the same identity shares it
	ps.Release(p, netip.MustParseAddr("10.0.0.1"))
	acquire("c", "") // a still holds one lease
	ps.Release(p, netip.MustParseAddr("10.0.0.1"))
	ps.Release(p, netip.MustParseAddr("10.0.0.2"))
	acquire("b", "10.0.0.2") // back: its own address
	acquire("c", "10.0.0.1") // a is offline: its address goes to c
	ps.Release(p, netip.MustParseAddr("10.0.0.1"))
	acquire("a", "10.0.0.1") // c left; a gets it again
	if ps.Online(p) != 2 {
		t.Fatalf("online %d", ps.Online(p))
	}
	for _, tc := range []struct{ prefix, first, last string }{
		{"10.0.0.0/24", "10.0.0.1", "10.0.0.254"},
		{"10.0.0.4/31", "10.0.0.4", "10.0.0.5"},
		{"10.0.0.7/32", "10.0.0.7", "10.0.0.7"},
		{"fd00::/120", "fd00::1", "fd00::ff"},
	} {
		f, l := poolBounds(netip.MustParsePrefix(tc.prefix))
		if f.String() != tc.first || l.String() != tc.last {
			t.Errorf("%s: %s-%s, want %s-%s", tc.prefix, f, l, tc.first, tc.last)
		}
	}
}
