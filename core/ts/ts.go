// Package ts parses, prints and narrows IKEv2 traffic selectors
// (RFC 7296 §3.13.1 and §2.9).
//
// The text form follows strongSwan's swanctl.conf:
//
//	10.0.0.1/32[tcp/5432]     one address, TCP port 5432
//	10.0.0.1-10.0.0.9[udp]    an address range, UDP, any port
//	2001:db8::/64[udp/500]    IPv6
//	10.0.0.0/8[47]            protocol by number (GRE)
//	10.0.0.0/8[any/53]        any protocol, port 53
//	10.0.0.0/8[tcp/1000-2000] a port range
//	10.0.0.0/8                any protocol and port
//	dynamic[tcp/443]          the IKE address of the side, filled in later
//
// A selector whose Start is not valid is "dynamic": the engine replaces it
// with the SA's address (Resolve) before proposing or narrowing.
package ts

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/veil-ipsec/veil/core/provider"
)

// IP protocol numbers with names operators use (IANA "Assigned Internet
// Protocol Numbers"). Protocol 0 means any.
var protocolNames = []struct {
	name   string
	number uint8
}{
	{"icmp", 1},
	{"igmp", 2},
	{"ipencap", 4},
	{"tcp", 6},
	{"udp", 17},
	{"ipv6", 41},
	{"gre", 47},
	{"esp", 50},
	{"ah", 51},
	{"ipv6-icmp", 58},
	{"sctp", 132},
	{"udplite", 136},
}

// protocolAliases are other spellings accepted on input; Format prints the
// canonical name from protocolNames.
var protocolAliases = map[string]uint8{
	"icmpv6": 58,
	"icmp6":  58,
}

// ProtocolNumber returns the IP protocol number for a name ("tcp") or a
// decimal number ("47"); "any", "%any" and "" mean 0.
func ProtocolNumber(s string) (uint8, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch s {
	case "", "any", "%any":
		return 0, nil
	}
	for _, p := range protocolNames {
		if p.name == s {
			return p.number, nil
		}
	}
	if n, ok := protocolAliases[s]; ok {
		return n, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("unknown protocol %q (use a name such as tcp, udp, icmp, ipv6-icmp, any, or a number 0-255)", s)
	}
	return uint8(n), nil
}

// ProtocolName is the canonical name of an IP protocol number, or the
// number itself when it has no name here; 0 is "any".
func ProtocolName(n uint8) string {
	if n == 0 {
		return "any"
	}
	for _, p := range protocolNames {
		if p.number == n {
			return p.name
		}
	}
	return strconv.Itoa(int(n))
}

// Dynamic is the selector "dynamic": the side's own IKE address, any
// protocol and port.
func Dynamic() provider.TrafficSelector {
	return provider.TrafficSelector{EndPort: 65535}
}

// IsDynamic reports whether t still stands for the IKE address.
func IsDynamic(t provider.TrafficSelector) bool { return !t.Start.IsValid() }

// Parse reads one selector in the text form above.
func Parse(s string) (provider.TrafficSelector, error) {
	var t provider.TrafficSelector
	in := strings.TrimSpace(s)
	if in == "" {
		return t, errors.New("empty traffic selector")
	}
	addr, bracket := in, ""
	if i := strings.IndexByte(in, '['); i >= 0 {
		if !strings.HasSuffix(in, "]") {
			return t, fmt.Errorf("traffic selector %q: missing closing ]", s)
		}
		addr, bracket = strings.TrimSpace(in[:i]), in[i+1:len(in)-1]
		if strings.ContainsAny(bracket, "[]") {
			return t, fmt.Errorf("traffic selector %q: unbalanced brackets", s)
		}
	}
	if err := parseAddrs(&t, addr); err != nil {
		return t, fmt.Errorf("traffic selector %q: %w", s, err)
	}
	t.StartPort, t.EndPort = 0, 65535
	if i := strings.IndexByte(in, '['); i >= 0 {
		if err := parseProtoPorts(&t, bracket); err != nil {
			return t, fmt.Errorf("traffic selector %q: %w", s, err)
		}
	}
	return t, nil
}

// MustParse is Parse for tests and tables; it panics on error.
func MustParse(s string) provider.TrafficSelector {
	t, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return t
}

func parseAddrs(t *provider.TrafficSelector, s string) error {
	switch {
	case s == "":
		return errors.New("missing address (use a CIDR such as 10.0.0.0/24, a range a-b, or dynamic)")
	case strings.EqualFold(s, "dynamic"):
		return nil
	case strings.Contains(s, "/"):
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("bad CIDR %q", s)
		}
		*t = FromPrefix(p)
		return nil
	case strings.Contains(s, "-"):
		a, b, _ := strings.Cut(s, "-")
		start, err := netip.ParseAddr(strings.TrimSpace(a))
		if err != nil {
			return fmt.Errorf("bad range start %q", a)
		}
		end, err := netip.ParseAddr(strings.TrimSpace(b))
		if err != nil {
			return fmt.Errorf("bad range end %q", b)
		}
		if start.Zone() != "" || end.Zone() != "" {
			return errors.New("addresses with a zone are not allowed")
		}
		if start.Is4() != end.Is4() {
			return fmt.Errorf("range %s mixes IPv4 and IPv6", s)
		}
		if end.Less(start) {
			return fmt.Errorf("range %s ends before it starts", s)
		}
		t.Start, t.End = start, end
		return nil
	default:
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("bad address %q", s)
		}
		if a.Zone() != "" {
			return errors.New("addresses with a zone are not allowed")
		}
		t.Start, t.End = a, a
		return nil
	}
}

func parseProtoPorts(t *provider.TrafficSelector, s string) error {
	proto, ports, hasPorts := strings.Cut(s, "/")
	n, err := ProtocolNumber(proto)
	if err != nil {
		return err
	}
	t.Protocol = n
	if !hasPorts {
		return nil
	}
	ports = strings.TrimSpace(ports)
	switch strings.ToLower(ports) {
	case "any", "%any", "":
		return nil
	}
	lo, hi, isRange := strings.Cut(ports, "-")
	start, err := parsePort(lo)
	if err != nil {
		return err
	}
	end := start
	if isRange {
		if end, err = parsePort(hi); err != nil {
			return err
		}
	}
	if end < start {
		return fmt.Errorf("port range %s ends before it starts", ports)
	}
	t.StartPort, t.EndPort = start, end
	return nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil {
		return 0, fmt.Errorf("bad port %q (use a number 0-65535, a range such as 1000-2000, or any)", s)
	}
	return uint16(n), nil
}

// Format prints t in the canonical form Parse reads back: a CIDR when the
// range is one, otherwise start-end; the bracket only when protocol or ports
// are limited.
func Format(t provider.TrafficSelector) string {
	var b strings.Builder
	if IsDynamic(t) {
		b.WriteString("dynamic")
	} else if p, ok := prefixOf(t.Start, t.End); ok {
		b.WriteString(p.String())
	} else {
		b.WriteString(t.Start.String())
		b.WriteByte('-')
		b.WriteString(t.End.String())
	}
	anyPort := t.StartPort == 0 && t.EndPort == 65535
	if t.Protocol == 0 && anyPort {
		return b.String()
	}
	b.WriteByte('[')
	b.WriteString(ProtocolName(t.Protocol))
	if !anyPort {
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(int(t.StartPort)))
		if t.EndPort != t.StartPort {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(int(t.EndPort)))
		}
	}
	b.WriteByte(']')
	return b.String()
}

// FormatList is Format for several selectors, comma separated.
func FormatList(ts []provider.TrafficSelector) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = Format(t)
	}
	return strings.Join(s, ", ")
}

// FromPrefix is the selector covering p with any protocol and port.
func FromPrefix(p netip.Prefix) provider.TrafficSelector {
	p = p.Masked()
	start := p.Addr()
	return provider.TrafficSelector{Start: start, End: lastAddr(start, p.Bits()), EndPort: 65535}
}

// FromAddr is the selector for one address with any protocol and port; an
// IPv4-mapped IPv6 address (from a dual-stack socket) becomes IPv4.
func FromAddr(a netip.Addr) provider.TrafficSelector {
	a = a.Unmap()
	return provider.TrafficSelector{Start: a, End: a, EndPort: 65535}
}

// Resolve replaces a dynamic selector's address with addr (IPv4-mapped
// addresses become IPv4), keeping its protocol and ports; other selectors
// are returned unchanged.
func Resolve(t provider.TrafficSelector, addr netip.Addr) provider.TrafficSelector {
	if !IsDynamic(t) {
		return t
	}
	t.Start, t.End = addr.Unmap(), addr.Unmap()
	return t
}

// Equal reports whether a and b select the same traffic.
func Equal(a, b provider.TrafficSelector) bool {
	return a.Start == b.Start && a.End == b.End && a.Protocol == b.Protocol &&
		a.StartPort == b.StartPort && a.EndPort == b.EndPort
}

// Contains reports whether every packet inner selects is also selected by
// outer. Dynamic selectors contain nothing and are contained by nothing.
func Contains(outer, inner provider.TrafficSelector) bool {
	if IsDynamic(outer) || IsDynamic(inner) || outer.Start.Is4() != inner.Start.Is4() {
		return false
	}
	if inner.Start.Less(outer.Start) || outer.End.Less(inner.End) {
		return false
	}
	if outer.Protocol != 0 && outer.Protocol != inner.Protocol {
		return false
	}
	return inner.StartPort >= outer.StartPort && inner.EndPort <= outer.EndPort
}

// ContainsAddr reports whether a falls in t's address range.
func ContainsAddr(t provider.TrafficSelector, a netip.Addr) bool {
	if IsDynamic(t) || t.Start.Is4() != a.Is4() {
		return false
	}
	return !a.Less(t.Start) && !t.End.Less(a)
}

// Intersect is the traffic both a and b select; ok is false when there is
// none (different families, disjoint ranges, different protocols or ports).
func Intersect(a, b provider.TrafficSelector) (provider.TrafficSelector, bool) {
	var t provider.TrafficSelector
	if IsDynamic(a) || IsDynamic(b) || a.Start.Is4() != b.Start.Is4() {
		return t, false
	}
	t.Start = maxAddr(a.Start, b.Start)
	t.End = minAddr(a.End, b.End)
	if t.End.Less(t.Start) {
		return t, false
	}
	switch {
	case a.Protocol == 0:
		t.Protocol = b.Protocol
	case b.Protocol == 0 || a.Protocol == b.Protocol:
		t.Protocol = a.Protocol
	default:
		return t, false
	}
	t.StartPort = max(a.StartPort, b.StartPort)
	t.EndPort = min(a.EndPort, b.EndPort)
	if t.EndPort < t.StartPort {
		return t, false
	}
	return t, true
}

// Narrow is the responder's narrowing of RFC 7296 §2.9: each selector the
// peer proposed (theirs, in its order, so a first packet-specific selector
// keeps its place) is cut down to what our policy (ours) allows. The result
// holds every non-empty intersection without duplicates; an empty result
// means the peer's proposal is unacceptable (TS_UNACCEPTABLE).
func Narrow(ours, theirs []provider.TrafficSelector) []provider.TrafficSelector {
	var out []provider.TrafficSelector
	for _, t := range theirs {
		for _, o := range ours {
			n, ok := Intersect(o, t)
			if !ok || containedIn(out, n) {
				continue
			}
			out = append(out, n)
		}
	}
	return out
}

func containedIn(list []provider.TrafficSelector, t provider.TrafficSelector) bool {
	for _, l := range list {
		if Contains(l, t) {
			return true
		}
	}
	return false
}

func maxAddr(a, b netip.Addr) netip.Addr {
	if a.Less(b) {
		return b
	}
	return a
}

func minAddr(a, b netip.Addr) netip.Addr {
	if a.Less(b) {
		return a
	}
	return b
}

// lastAddr is the highest address of the prefix start/bits.
func lastAddr(start netip.Addr, bits int) netip.Addr {
	if start.Is4() {
		b := start.As4()
		setHostBits(b[:], bits)
		return netip.AddrFrom4(b)
	}
	b := start.As16()
	setHostBits(b[:], bits)
	return netip.AddrFrom16(b)
}

func setHostBits(b []byte, bits int) {
	for i := range b {
		switch {
		case bits >= 8:
			bits -= 8
		case bits <= 0:
			b[i] = 0xff
		default:
			b[i] |= 0xff >> bits
			bits = 0
		}
	}
}

// prefixOf returns the prefix whose range is exactly start-end, if any.
func prefixOf(start, end netip.Addr) (netip.Prefix, bool) {
	for bits := 0; bits <= start.BitLen(); bits++ {
		p := netip.PrefixFrom(start, bits)
		if p.Masked().Addr() != start {
			continue
		}
		if lastAddr(start, bits) == end {
			return p, true
		}
		if end.Less(lastAddr(start, bits)) {
			continue
		}
		return netip.Prefix{}, false
	}
	return netip.Prefix{}, false
}

// ResolveAll is Resolve over a list: what a child's local_ts or remote_ts
// means once the SA's addresses are known.
func ResolveAll(list []provider.TrafficSelector, addr netip.Addr) []provider.TrafficSelector {
	out := make([]provider.TrafficSelector, len(list))
	for i, t := range list {
		out[i] = Resolve(t, addr)
	}
	return out
}

// Covered reports whether each selector of inner lies within one selector
// of outer: the initiator's check that the responder only narrowed what it
// proposed (RFC 7296 §2.9). A selector covered only by the union of
// several outer selectors counts as not covered (conservative).
func Covered(inner, outer []provider.TrafficSelector) bool {
	for _, t := range inner {
		if !containedIn(outer, t) {
			return false
		}
	}
	return true
}
