package ike

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/crypto/cryptobyte"
)

// TrafficSelectors is the TSi or TSr payload (§3.13).
type TrafficSelectors struct {
	Initiator bool
	Selectors []TrafficSelector
}

// TrafficSelector is one selector: an address range, an IP protocol (0 any)
// and a port range.
type TrafficSelector struct {
	Type               uint8 // TSIPv4AddrRange or TSIPv6AddrRange
	Protocol           uint8
	StartPort, EndPort uint16
	Start, End         netip.Addr
}

func (p *TrafficSelectors) Type() PayloadType {
	if p.Initiator {
		return PayloadTSi
	}
	return PayloadTSr
}

func (p *TrafficSelectors) marshalBody(b *cryptobyte.Builder) {
	if len(p.Selectors) == 0 || len(p.Selectors) > 255 {
		b.SetError(fmt.Errorf("%d traffic selectors (want 1-255)", len(p.Selectors)))
	}
	b.AddUint8(uint8(len(p.Selectors)))
	b.AddBytes([]byte{0, 0, 0})
	for _, ts := range p.Selectors {
		typ := ts.Type
		if typ == 0 {
			typ = TSIPv4AddrRange
			if ts.Start.Is6() {
				typ = TSIPv6AddrRange
			}
		}
		want4 := typ == TSIPv4AddrRange
		if (typ != TSIPv4AddrRange && typ != TSIPv6AddrRange) ||
			!ts.Start.IsValid() || !ts.End.IsValid() ||
			ts.Start.Is4() != want4 || ts.End.Is4() != want4 {
			b.SetError(fmt.Errorf("traffic selector type %d with addresses %v-%v", typ, ts.Start, ts.End))
			return
		}
		b.AddUint8(typ)
		b.AddUint8(ts.Protocol)
		start, end := ts.Start.AsSlice(), ts.End.AsSlice()
		b.AddUint16(uint16(8 + len(start) + len(end)))
		b.AddUint16(ts.StartPort)
		b.AddUint16(ts.EndPort)
		b.AddBytes(start)
		b.AddBytes(end)
	}
}

func parseTS(s cryptobyte.String, initiator bool) (*TrafficSelectors, error) {
	p := &TrafficSelectors{Initiator: initiator}
	var n uint8
	if !s.ReadUint8(&n) || !s.Skip(3) {
		return nil, ErrShort
	}
	if n == 0 {
		return nil, errors.New("no traffic selectors")
	}
	for i := 0; i < int(n); i++ {
		var ts TrafficSelector
		var length uint16
		if !s.ReadUint8(&ts.Type) || !s.ReadUint8(&ts.Protocol) || !s.ReadUint16(&length) ||
			!s.ReadUint16(&ts.StartPort) || !s.ReadUint16(&ts.EndPort) {
			return nil, ErrShort
		}
		alen := 0
		switch ts.Type {
		case TSIPv4AddrRange:
			alen = 4
		case TSIPv6AddrRange:
			alen = 16
		default:
			return nil, fmt.Errorf("traffic selector type %d", ts.Type)
		}
		if int(length) != 8+2*alen {
			return nil, fmt.Errorf("traffic selector length %d for type %d", length, ts.Type)
		}
		var a, b []byte
		if !s.ReadBytes(&a, alen) || !s.ReadBytes(&b, alen) {
			return nil, ErrShort
		}
		ts.Start, _ = netip.AddrFromSlice(a)
		ts.End, _ = netip.AddrFromSlice(b)
		p.Selectors = append(p.Selectors, ts)
	}
	if !s.Empty() {
		return nil, errTrailing
	}
	return p, nil
}
