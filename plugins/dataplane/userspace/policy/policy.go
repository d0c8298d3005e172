// Package policy matches IP packets against IPsec traffic selectors: it
// parses the 5-tuple of a packet (Flow) and tests it against
// provider.TrafficSelector ranges, and turns address ranges into prefixes
// for the kernel's policy routing rules.
package policy

import (
	"encoding/binary"
	"net/netip"

	"github.com/veil-ipsec/veil/core/provider"
)

// Flow is what selectors look at. Ports are zero for protocols without them
// and for non-first fragments.
type Flow struct {
	Src, Dst         netip.Addr
	Proto            uint8
	SrcPort, DstPort uint16
	HeaderLen        int  // IPv4 IHL*4 or 40 for IPv6 (plus skipped extension headers)
	DontFragment     bool // IPv4 DF; IPv6 routers never fragment
}

// Parse reads the flow of an IPv4 or IPv6 packet. It reports false for
// malformed packets.
func Parse(pkt []byte) (Flow, bool) {
	var f Flow
	if len(pkt) < 1 {
		return f, false
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return f, false
		}
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 || len(pkt) < ihl || int(binary.BigEndian.Uint16(pkt[2:])) > len(pkt) {
			return f, false
		}
		f.Src = netip.AddrFrom4([4]byte(pkt[12:16]))
		f.Dst = netip.AddrFrom4([4]byte(pkt[16:20]))
		f.Proto = pkt[9]
		f.HeaderLen = ihl
		frag := binary.BigEndian.Uint16(pkt[6:])
		f.DontFragment = frag&0x4000 != 0
		if frag&0x1fff == 0 {
			f.SrcPort, f.DstPort = ports(f.Proto, pkt[ihl:])
		}
		return f, true
	case 6:
		if len(pkt) < 40 {
			return f, false
		}
		f.Src = netip.AddrFrom16([16]byte(pkt[8:24]))
		f.Dst = netip.AddrFrom16([16]byte(pkt[24:40]))
		f.DontFragment = true
		nh, off := pkt[6], 40
		// Skip hop-by-hop, routing and destination options headers.
		for (nh == 0 || nh == 43 || nh == 60) && off+8 <= len(pkt) {
			nh, off = pkt[off], off+int(pkt[off+1])*8+8
		}
		if off > len(pkt) {
			return f, false
		}
		f.Proto, f.HeaderLen = nh, off
		if nh == 44 { // fragment header: ports only in the first fragment
			if off+8 > len(pkt) {
				return f, false
			}
			f.Proto = pkt[off]
			if binary.BigEndian.Uint16(pkt[off+2:])&0xfff8 == 0 {
				f.SrcPort, f.DstPort = ports(f.Proto, pkt[off+8:])
			}
			return f, true
		}
		f.SrcPort, f.DstPort = ports(nh, pkt[off:])
		return f, true
	}
	return f, false
}

func ports(proto uint8, l4 []byte) (uint16, uint16) {
	switch proto {
	case 6, 17, 132, 136: // TCP, UDP, SCTP, UDP-Lite
		if len(l4) >= 4 {
			return binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
		}
	}
	return 0, 0
}

// MatchAddr reports whether a lies in the selector's address range.
func MatchAddr(ts *provider.TrafficSelector, a netip.Addr) bool {
	if !ts.Start.IsValid() {
		return true
	}
	if a.Is4() != ts.Start.Is4() {
		return false
	}
	return ts.Start.Compare(a) <= 0 && a.Compare(ts.End) <= 0
}

// MatchProtoPort reports whether proto and port fit the selector. Port
// ranges only constrain protocols that carry ports; a full range matches
// everything, as in RFC 7296 §3.13.1.
func MatchProtoPort(ts *provider.TrafficSelector, proto uint8, port uint16) bool {
	if ts.Protocol != 0 && ts.Protocol != proto {
		return false
	}
	if ts.StartPort == 0 && (ts.EndPort == 0xffff || ts.EndPort == 0) {
		return true
	}
	return ts.StartPort <= port && port <= ts.EndPort
}

// Match tests a flow going from local to remote (outbound).
func Match(local, remote *provider.TrafficSelector, src, dst netip.Addr, proto uint8, sport, dport uint16) bool {
	return MatchAddr(local, src) && MatchAddr(remote, dst) &&
		MatchProtoPort(local, proto, sport) && MatchProtoPort(remote, proto, dport)
}

// Prefixes covers the range start-end with the fewest prefixes.
func Prefixes(start, end netip.Addr) []netip.Prefix {
	if !start.IsValid() || !end.IsValid() || start.Is4() != end.Is4() || end.Less(start) {
		return nil
	}
	var out []netip.Prefix
	bits := start.BitLen()
	for {
		// Largest prefix starting at start that does not pass end.
		l := bits
		for l > 0 {
			p := netip.PrefixFrom(start, l-1).Masked()
			if p.Addr() != start || lastAddr(p).Compare(end) > 0 {
				break
			}
			l--
		}
		p := netip.PrefixFrom(start, l)
		out = append(out, p)
		last := lastAddr(p)
		if last.Compare(end) >= 0 {
			return out
		}
		start = last.Next()
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
