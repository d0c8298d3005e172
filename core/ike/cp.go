package ike

import (
	"errors"

	"golang.org/x/crypto/cryptobyte"
)

// Configuration is the CP payload (§3.15).
type Configuration struct {
	CfgType    CfgType
	Attributes []CPAttribute
}

// CPAttribute is one configuration attribute; an empty Value in a request
// asks for any value.
type CPAttribute struct {
	Type  uint16
	Value []byte
}

func (*Configuration) Type() PayloadType { return PayloadCP }
func (p *Configuration) marshalBody(b *cryptobyte.Builder) {
	b.AddUint8(uint8(p.CfgType))
	b.AddBytes([]byte{0, 0, 0})
	for _, a := range p.Attributes {
		if len(a.Value) > 0xffff {
			b.SetError(errors.New("configuration attribute too long"))
		}
		b.AddUint16(a.Type & 0x7fff)
		b.AddUint16(uint16(len(a.Value)))
		b.AddBytes(a.Value)
	}
}

func parseCP(s cryptobyte.String) (*Configuration, error) {
	p := &Configuration{}
	var t uint8
	if !s.ReadUint8(&t) || !s.Skip(3) {
		return nil, ErrShort
	}
	p.CfgType = CfgType(t)
	for !s.Empty() {
		var a CPAttribute
		var n uint16
		var v []byte
		if !s.ReadUint16(&a.Type) || !s.ReadUint16(&n) || !s.ReadBytes(&v, int(n)) {
			return nil, ErrShort
		}
		a.Type &= 0x7fff
		a.Value = clone(v)
		if n == 0 {
			a.Value = nil
		}
		p.Attributes = append(p.Attributes, a)
	}
	return p, nil
}
