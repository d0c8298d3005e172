package ike

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// SA is the Security Association payload (RFC 7296 §3.3).
type SA struct {
	Proposals []Proposal
}

// Proposal is one proposal substructure.
type Proposal struct {
	Number     uint8
	Protocol   ProtocolID
	SPI        []byte
	Transforms []Transform
}

// Transform is one transform substructure. KeyLength is the Key Length
// attribute in bits (0: absent). Any other attributes are kept in their
// wire encoding in OtherAttributes (a string so that Transform stays
// comparable); RFC 7296 §3.3.6 says such a transform must not be chosen.
type Transform struct {
	Type            TransformType
	ID              uint16
	KeyLength       uint16
	OtherAttributes string
}

const (
	attrKeyLength = 14
	attrTV        = 0x8000
	lastProposal  = 0
	moreProposals = 2
	lastTransform = 0
	moreTransform = 3
)

func (*SA) Type() PayloadType { return PayloadSA }

func (p *SA) marshalBody(b *cryptobyte.Builder) {
	if len(p.Proposals) == 0 {
		b.SetError(errors.New("SA without proposals"))
	}
	for i, prop := range p.Proposals {
		if len(prop.SPI) > 255 || len(prop.Transforms) > 255 {
			b.SetError(errors.New("proposal SPI or transform count over 255"))
		}
		more := uint8(moreProposals)
		if i == len(p.Proposals)-1 {
			more = lastProposal
		}
		b.AddUint8(more)
		b.AddUint8(0)
		addLen16Incl(b, 4, func(b *cryptobyte.Builder) {
			b.AddUint8(prop.Number)
			b.AddUint8(uint8(prop.Protocol))
			b.AddUint8(uint8(len(prop.SPI)))
			b.AddUint8(uint8(len(prop.Transforms)))
			b.AddBytes(prop.SPI)
			for j, t := range prop.Transforms {
				more := uint8(moreTransform)
				if j == len(prop.Transforms)-1 {
					more = lastTransform
				}
				b.AddUint8(more)
				b.AddUint8(0)
				addLen16Incl(b, 4, func(b *cryptobyte.Builder) {
					b.AddUint8(uint8(t.Type))
					b.AddUint8(0)
					b.AddUint16(t.ID)
					if t.KeyLength != 0 {
						b.AddUint16(attrTV | attrKeyLength)
						b.AddUint16(t.KeyLength)
					}
					b.AddBytes([]byte(t.OtherAttributes))
				})
			}
		})
	}
}

func parseSA(s cryptobyte.String) (*SA, error) {
	p := &SA{}
	if s.Empty() {
		return nil, errors.New("no proposals")
	}
	for !s.Empty() {
		var more, reserved uint8
		var length uint16
		if !s.ReadUint8(&more) || !s.ReadUint8(&reserved) || !s.ReadUint16(&length) || length < 8 {
			return nil, errors.New("bad proposal header")
		}
		var body cryptobyte.String
		if !s.ReadBytes((*[]byte)(&body), int(length)-4) {
			return nil, errors.New("proposal length exceeds payload")
		}
		prop, err := parseProposal(body)
		if err != nil {
			return nil, err
		}
		p.Proposals = append(p.Proposals, prop)
		if more == lastProposal {
			if !s.Empty() {
				return nil, errors.New("bytes after the last proposal")
			}
			break
		}
		if more != moreProposals {
			return nil, fmt.Errorf("proposal 'last substruc' %d", more)
		}
		if s.Empty() {
			return nil, errors.New("proposal says more follow, none do")
		}
	}
	return p, nil
}

func parseProposal(s cryptobyte.String) (Proposal, error) {
	var prop Proposal
	var proto, spiSize, n uint8
	if !s.ReadUint8(&prop.Number) || !s.ReadUint8(&proto) || !s.ReadUint8(&spiSize) || !s.ReadUint8(&n) {
		return prop, errors.New("proposal truncated")
	}
	prop.Protocol = ProtocolID(proto)
	var spi []byte
	if !s.ReadBytes(&spi, int(spiSize)) {
		return prop, errors.New("proposal SPI truncated")
	}
	prop.SPI = clone(spi)
	if spiSize == 0 {
		prop.SPI = nil
	}
	for i := 0; i < int(n); i++ {
		var more, reserved uint8
		var length uint16
		if !s.ReadUint8(&more) || !s.ReadUint8(&reserved) || !s.ReadUint16(&length) || length < 8 {
			return prop, errors.New("bad transform header")
		}
		var body cryptobyte.String
		if !s.ReadBytes((*[]byte)(&body), int(length)-4) {
			return prop, errors.New("transform length exceeds proposal")
		}
		t, err := parseTransform(body)
		if err != nil {
			return prop, err
		}
		prop.Transforms = append(prop.Transforms, t)
		last := i == int(n)-1
		if (last && more != lastTransform) || (!last && more != moreTransform) {
			return prop, errors.New("transform count disagrees with 'last substruc'")
		}
	}
	if !s.Empty() {
		return prop, errors.New("bytes after the last transform")
	}
	return prop, nil
}

func parseTransform(s cryptobyte.String) (Transform, error) {
	var t Transform
	var typ, reserved uint8
	if !s.ReadUint8(&typ) || !s.ReadUint8(&reserved) || !s.ReadUint16(&t.ID) {
		return t, errors.New("transform truncated")
	}
	t.Type = TransformType(typ)
	for !s.Empty() {
		start := []byte(s)
		var at, v uint16
		if !s.ReadUint16(&at) {
			return t, errors.New("attribute truncated")
		}
		if at&attrTV != 0 {
			if !s.ReadUint16(&v) {
				return t, errors.New("attribute truncated")
			}
			if at&^attrTV == attrKeyLength && t.KeyLength == 0 {
				t.KeyLength = v
				continue
			}
		} else {
			var val []byte
			if !s.ReadUint16(&v) || !s.ReadBytes(&val, int(v)) {
				return t, errors.New("attribute truncated")
			}
		}
		t.OtherAttributes += string(start[:len(start)-len(s)])
	}
	return t, nil
}

// addLen16Incl writes a 16-bit length that includes `extra` bytes already
// written before it (substructure headers count themselves).
func addLen16Incl(b *cryptobyte.Builder, extra int, f func(*cryptobyte.Builder)) {
	inner := cryptobyte.NewBuilder(nil)
	f(inner)
	body, err := inner.Bytes()
	if err != nil {
		b.SetError(err)
		return
	}
	if len(body)+extra > 0xffff {
		b.SetError(errors.New("ike: substructure too long"))
		return
	}
	b.AddUint16(uint16(len(body) + extra))
	b.AddBytes(body)
}
