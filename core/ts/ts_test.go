package ts

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/veil-ipsec/veil/core/provider"
)

func sel(start, end string, proto uint8, sp, ep uint16) provider.TrafficSelector {
	return provider.TrafficSelector{
		Start: netip.MustParseAddr(start), End: netip.MustParseAddr(end),
		Protocol: proto, StartPort: sp, EndPort: ep,
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in        string
		want      provider.TrafficSelector
		canonical string
	}{
		{"10.0.0.1/32[tcp/5432]", sel("10.0.0.1", "10.0.0.1", 6, 5432, 5432), "10.0.0.1/32[tcp/5432]"},
		{"10.0.0.2/32[tcp]", sel("10.0.0.2", "10.0.0.2", 6, 0, 65535), "10.0.0.2/32[tcp]"},
		{"10.0.0.0/24", sel("10.0.0.0", "10.0.0.255", 0, 0, 65535), "10.0.0.0/24"},
		{"10.0.0.7/24", sel("10.0.0.0", "10.0.0.255", 0, 0, 65535), "10.0.0.0/24"},
		{"10.0.0.1", sel("10.0.0.1", "10.0.0.1", 0, 0, 65535), "10.0.0.1/32"},
		{"10.0.0.1-10.0.0.9", sel("10.0.0.1", "10.0.0.9", 0, 0, 65535), "10.0.0.1-10.0.0.9"},
		{"10.0.0.0-10.0.0.255[udp]", sel("10.0.0.0", "10.0.0.255", 17, 0, 65535), "10.0.0.0/24[udp]"},
		{"10.0.0.1-10.0.0.9[udp]", sel("10.0.0.1", "10.0.0.9", 17, 0, 65535), "10.0.0.1-10.0.0.9[udp]"},
		{"2001:db8::/64[udp/500]", sel("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff", 17, 500, 500), "2001:db8::/64[udp/500]"},
		{"::/0", sel("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0, 0, 65535), "::/0"},
		{"0.0.0.0/0", sel("0.0.0.0", "255.255.255.255", 0, 0, 65535), "0.0.0.0/0"},
		{"10.0.0.0/8[47]", sel("10.0.0.0", "10.255.255.255", 47, 0, 65535), "10.0.0.0/8[gre]"},
		{"10.0.0.0/8[200]", sel("10.0.0.0", "10.255.255.255", 200, 0, 65535), "10.0.0.0/8[200]"},
		{"10.0.0.0/8[icmp]", sel("10.0.0.0", "10.255.255.255", 1, 0, 65535), "10.0.0.0/8[icmp]"},
		{"::/0[ipv6-icmp]", sel("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 58, 0, 65535), "::/0[ipv6-icmp]"},
		{"::/0[ICMPv6]", sel("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 58, 0, 65535), "::/0[ipv6-icmp]"},
		{"10.0.0.0/8[any]", sel("10.0.0.0", "10.255.255.255", 0, 0, 65535), "10.0.0.0/8"},
		{"10.0.0.0/8[%any/%any]", sel("10.0.0.0", "10.255.255.255", 0, 0, 65535), "10.0.0.0/8"},
		{"10.0.0.0/8[any/53]", sel("10.0.0.0", "10.255.255.255", 0, 53, 53), "10.0.0.0/8[any/53]"},
		{"10.0.0.0/8[tcp/any]", sel("10.0.0.0", "10.255.255.255", 6, 0, 65535), "10.0.0.0/8[tcp]"},
		{"10.0.0.0/8[tcp/1000-2000]", sel("10.0.0.0", "10.255.255.255", 6, 1000, 2000), "10.0.0.0/8[tcp/1000-2000]"},
		{"10.0.0.0/8[tcp/0-65535]", sel("10.0.0.0", "10.255.255.255", 6, 0, 65535), "10.0.0.0/8[tcp]"},
		{" 10.0.0.1/32 [ tcp / 5432 ] ", sel("10.0.0.1", "10.0.0.1", 6, 5432, 5432), "10.0.0.1/32[tcp/5432]"},
		{"dynamic", Dynamic(), "dynamic"},
		{"dynamic[tcp/443]", provider.TrafficSelector{Protocol: 6, StartPort: 443, EndPort: 443}, "dynamic[tcp/443]"},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if !Equal(got, tt.want) {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if s := Format(got); s != tt.canonical {
			t.Errorf("Format(Parse(%q)) = %q, want %q", tt.in, s, tt.canonical)
		}
		back, err := Parse(Format(got))
		if err != nil || !Equal(back, got) {
			t.Errorf("round trip of %q: %+v, %v", tt.in, back, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ in, wantErr string }{
		{"", "empty"},
		{"[tcp]", "missing address"},
		{"10.0.0.1/33", "bad CIDR"},
		{"10.0.0.300", "bad address"},
		{"10.0.0.9-10.0.0.1", "ends before it starts"},
		{"10.0.0.1-::1", "mixes IPv4 and IPv6"},
		{"10.0.0.1-", "bad range end"},
		{"10.0.0.1/32[tcp", "missing closing ]"},
		{"10.0.0.1/32[tcp]]", "unbalanced"},
		{"10.0.0.1/32[tcpx]", "unknown protocol"},
		{"10.0.0.1/32[256]", "unknown protocol"},
		{"10.0.0.1/32[tcp/70000]", "bad port"},
		{"10.0.0.1/32[tcp/2000-1000]", "ends before it starts"},
		{"10.0.0.1/32[tcp/x]", "bad port"},
		{"fe80::1%eth0", "zone"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Parse(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestFormatNonPrefixRanges(t *testing.T) {
	// 10.0.0.0-10.0.1.0 is not a prefix; 10.0.0.0-10.0.1.255 is /23.
	if s := Format(sel("10.0.0.0", "10.0.1.0", 0, 0, 65535)); s != "10.0.0.0-10.0.1.0" {
		t.Errorf("got %q", s)
	}
	if s := Format(sel("10.0.0.0", "10.0.1.255", 0, 0, 65535)); s != "10.0.0.0/23" {
		t.Errorf("got %q", s)
	}
	if s := Format(sel("10.0.0.1", "10.0.1.255", 0, 0, 65535)); s != "10.0.0.1-10.0.1.255" {
		t.Errorf("got %q", s)
	}
}

func TestContainsEqual(t *testing.T) {
	p := MustParse
	tests := []struct {
		outer, inner string
		want         bool
	}{
		{"10.0.0.0/8", "10.1.2.3/32[tcp/80]", true},
		{"10.0.0.0/8[tcp]", "10.1.2.3/32[tcp/80]", true},
		{"10.0.0.0/8[udp]", "10.1.2.3/32[tcp/80]", false},
		{"10.0.0.0/8[tcp/80]", "10.1.2.3/32[tcp]", false},
		{"10.0.0.0/8[tcp/80]", "10.1.2.3/32", false},
		{"10.0.0.0/24", "10.0.0.0-10.0.1.0", false},
		{"10.0.0.0/8", "::/0", false},
		{"::/0", "2001:db8::1", true},
		{"dynamic", "dynamic", false},
	}
	for _, tt := range tests {
		if got := Contains(p(tt.outer), p(tt.inner)); got != tt.want {
			t.Errorf("Contains(%s, %s) = %v, want %v", tt.outer, tt.inner, got, tt.want)
		}
	}
	if !Equal(p("10.0.0.0/24"), p("10.0.0.0-10.0.0.255[any/any]")) {
		t.Error("equal selectors differ")
	}
	if Equal(p("10.0.0.0/24"), p("10.0.0.0/24[tcp]")) {
		t.Error("different protocols compare equal")
	}
	if !ContainsAddr(p("10.0.0.0/24"), netip.MustParseAddr("10.0.0.200")) || ContainsAddr(p("10.0.0.0/24"), netip.MustParseAddr("10.0.1.0")) {
		t.Error("ContainsAddr wrong")
	}
}

func TestFromPrefixResolve(t *testing.T) {
	got := FromPrefix(netip.MustParsePrefix("192.0.2.77/28"))
	if Format(got) != "192.0.2.64/28" {
		t.Errorf("FromPrefix = %s", Format(got))
	}
	r := Resolve(MustParse("dynamic[tcp/443]"), netip.MustParseAddr("::ffff:192.0.2.1"))
	if Format(r) != "192.0.2.1/32[tcp/443]" {
		t.Errorf("Resolve = %s", Format(r))
	}
	if Format(Resolve(MustParse("10.0.0.0/8"), netip.MustParseAddr("192.0.2.1"))) != "10.0.0.0/8" {
		t.Error("Resolve changed a non-dynamic selector")
	}
	if Format(FromAddr(netip.MustParseAddr("2001:db8::1"))) != "2001:db8::1/128" {
		t.Error("FromAddr wrong")
	}
}

func TestNarrow(t *testing.T) {
	list := func(ss ...string) []provider.TrafficSelector {
		var out []provider.TrafficSelector
		for _, s := range ss {
			out = append(out, MustParse(s))
		}
		return out
	}
	tests := []struct {
		name         string
		ours, theirs []provider.TrafficSelector
		want         string
	}{
		{"identical", list("10.0.0.1/32[tcp/5432]"), list("10.0.0.1/32[tcp/5432]"), "10.0.0.1/32[tcp/5432]"},
		{"their wider proposal cut to our policy", list("10.0.0.0/24[tcp/5432]"), list("10.0.0.0/8"), "10.0.0.0/24[tcp/5432]"},
		{"our wider policy keeps their narrow one", list("0.0.0.0/0"), list("10.0.0.1/32[udp/53]"), "10.0.0.1/32[udp/53]"},
		{"protocol any meets tcp", list("10.0.0.0/24[any/80]"), list("10.0.0.5/32[tcp]"), "10.0.0.5/32[tcp/80]"},
		{"different protocols", list("10.0.0.0/24[udp]"), list("10.0.0.0/24[tcp]"), ""},
		{"disjoint ports", list("10.0.0.0/24[tcp/1-100]"), list("10.0.0.0/24[tcp/200-300]"), ""},
		{"overlapping ports", list("10.0.0.0/24[tcp/1-250]"), list("10.0.0.0/24[tcp/200-300]"), "10.0.0.0/24[tcp/200-250]"},
		{"disjoint addresses", list("10.0.0.0/24"), list("10.0.1.0/24"), ""},
		{"families never mix", list("::/0"), list("10.0.0.0/8"), ""},
		{"overlapping ranges", list("10.0.0.1-10.0.0.9"), list("10.0.0.5-10.0.0.20"), "10.0.0.5-10.0.0.9"},
		// RFC 7296 §2.9: the initiator's first selector is the packet that
		// triggered the request; it keeps its place at the front.
		{"packet-specific first", list("10.0.0.0/24", "10.0.1.0/24"),
			list("10.0.1.7/32[tcp/443]", "10.0.0.0/16"), "10.0.1.7/32[tcp/443], 10.0.0.0/24, 10.0.1.0/24"},
		{"several of ours", list("10.0.0.0/24[tcp/22]", "10.0.0.0/24[udp/53]"), list("10.0.0.0/8"),
			"10.0.0.0/24[tcp/22], 10.0.0.0/24[udp/53]"},
		{"dual stack", list("10.0.0.0/8", "2001:db8::/32"), list("0.0.0.0/0", "::/0"), "10.0.0.0/8, 2001:db8::/32"},
		{"nothing proposed", list("10.0.0.0/8"), nil, ""},
		{"dynamic unresolved never matches", list("dynamic"), list("10.0.0.0/8"), ""},
	}
	for _, tt := range tests {
		if got := FormatList(Narrow(tt.ours, tt.theirs)); got != tt.want {
			t.Errorf("%s: Narrow = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestProtocolNames(t *testing.T) {
	for _, p := range protocolNames {
		n, err := ProtocolNumber(p.name)
		if err != nil || n != p.number || ProtocolName(n) != p.name {
			t.Errorf("%s: %d %v %s", p.name, n, err, ProtocolName(n))
		}
	}
	if n, _ := ProtocolNumber("%any"); n != 0 || ProtocolName(0) != "any" {
		t.Error("any")
	}
}

// FuzzParse: Parse never panics, and whatever it accepts prints to a form
// that parses back to the same selector and prints identically.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"10.0.0.1/32[tcp/5432]", "10.0.0.1-10.0.0.9[udp]", "2001:db8::/64[udp/500]", "dynamic[tcp/443]", "::/0", "10.0.0.0/8[47/1-2]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Parse(s)
		if err != nil {
			return
		}
		out := Format(got)
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Format(Parse(%q))) = %q: %v", s, out, err)
		}
		if !Equal(back, got) || Format(back) != out {
			t.Fatalf("round trip of %q: %+v != %+v", s, back, got)
		}
		if !IsDynamic(got) && (!Contains(got, got) || FormatList(Narrow([]provider.TrafficSelector{got}, []provider.TrafficSelector{got})) != out) {
			t.Fatalf("%q does not narrow to itself", s)
		}
	})
}

func TestCoveredResolveAll(t *testing.T) {
	p := MustParse
	proposed := []provider.TrafficSelector{p("10.0.0.0/24"), p("10.0.1.0/24[tcp]")}
	if !Covered([]provider.TrafficSelector{p("10.0.0.5/32[udp/53]"), p("10.0.1.0/24[tcp/80]")}, proposed) {
		t.Error("narrowed selectors not covered")
	}
	if Covered([]provider.TrafficSelector{p("10.0.1.0/24[udp]")}, proposed) {
		t.Error("a widened protocol is covered")
	}
	if Covered([]provider.TrafficSelector{p("10.0.0.0/23")}, proposed) {
		t.Error("a selector spanning two proposed ones counts as covered")
	}
	if !Covered(nil, proposed) {
		t.Error("nothing is covered by anything")
	}
	r := ResolveAll([]provider.TrafficSelector{p("dynamic[tcp/5432]"), p("10.0.0.0/8")}, netip.MustParseAddr("192.0.2.1"))
	if FormatList(r) != "192.0.2.1/32[tcp/5432], 10.0.0.0/8" {
		t.Errorf("ResolveAll = %s", FormatList(r))
	}
}

// Narrowing runs once per CREATE_CHILD_SA / IKE_AUTH, never per packet.
func BenchmarkNarrow(b *testing.B) {
	ours := []provider.TrafficSelector{MustParse("10.0.0.0/24[tcp/5432]"), MustParse("10.0.1.0/24"), MustParse("2001:db8::/64[udp]")}
	theirs := []provider.TrafficSelector{MustParse("10.0.0.7/32[tcp/5432]"), MustParse("10.0.0.0/16"), MustParse("::/0")}
	b.ReportAllocs()
	for b.Loop() {
		if len(Narrow(ours, theirs)) == 0 {
			b.Fatal("empty")
		}
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("2001:db8::/64[udp/500-600]"); err != nil {
			b.Fatal(err)
		}
	}
}
