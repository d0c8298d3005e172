package policy

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/veil-ipsec/veil/core/provider"
)

func TestPrefixes(t *testing.T) {
	a := netip.MustParseAddr
	cases := []struct {
		s, e string
		want []string
	}{
		{"10.0.0.1", "10.0.0.1", []string{"10.0.0.1/32"}},
		{"10.0.0.0", "10.0.0.255", []string{"10.0.0.0/24"}},
		{"10.0.0.1", "10.0.0.9", []string{"10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/30", "10.0.0.8/31"}},
		{"0.0.0.0", "255.255.255.255", []string{"0.0.0.0/0"}},
		{"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", []string{"::/0"}},
		{"fd00::1", "fd00::2", []string{"fd00::1/128", "fd00::2/128"}},
	}
	for _, c := range cases {
		var got []string
		for _, p := range Prefixes(a(c.s), a(c.e)) {
			got = append(got, p.String())
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s-%s: %v, want %v", c.s, c.e, got, c.want)
		}
	}
	if Prefixes(a("10.0.0.2"), a("10.0.0.1")) != nil || Prefixes(a("10.0.0.1"), a("::1")) != nil {
		t.Fatal("bad range accepted")
	}
}

func TestParseAndMatch(t *testing.T) {
	v4 := []byte{0x45, 0, 0, 24, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0x15, 0xb3}
	f, ok := Parse(v4)
	if !ok || f.Src != netip.MustParseAddr("10.0.0.1") || f.Dst != netip.MustParseAddr("10.0.0.2") ||
		f.Proto != 6 || f.SrcPort != 12345 || f.DstPort != 5555 || !f.DontFragment || f.HeaderLen != 20 {
		t.Fatalf("%+v", f)
	}
	local := provider.TrafficSelector{Start: netip.MustParseAddr("10.0.0.1"), End: netip.MustParseAddr("10.0.0.1"), EndPort: 0xffff}
	remote := provider.TrafficSelector{Start: netip.MustParseAddr("10.0.0.2"), End: netip.MustParseAddr("10.0.0.2"), Protocol: 6, StartPort: 5555, EndPort: 5555}
	if !Match(&local, &remote, f.Src, f.Dst, f.Proto, f.SrcPort, f.DstPort) {
		t.Fatal("no match")
	}
	if Match(&local, &remote, f.Src, f.Dst, 17, f.SrcPort, f.DstPort) || Match(&local, &remote, f.Src, f.Dst, 6, f.SrcPort, 5556) {
		t.Fatal("wrong proto/port matched")
	}
	v6 := make([]byte, 44)
	v6[0], v6[6] = 0x60, 17
	v6[23], v6[39] = 1, 2
	v6[40], v6[41], v6[42], v6[43] = 0, 53, 0x12, 0x34
	f, ok = Parse(v6)
	if !ok || f.Proto != 17 || f.SrcPort != 53 || f.DstPort != 0x1234 || f.Src != netip.MustParseAddr("::1") {
		t.Fatalf("%+v", f)
	}
	for _, bad := range [][]byte{nil, {0x45}, {0x46, 0, 0, 20}, v4[:10], {0x60, 0, 0}, {0x10}} {
		if _, ok := Parse(bad); ok {
			t.Fatalf("%x parsed", bad)
		}
	}
}
