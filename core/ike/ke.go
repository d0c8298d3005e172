package ike

import (
	"errors"

	"golang.org/x/crypto/cryptobyte"
)

// KeyExchange is the KE payload (§3.4).
type KeyExchange struct {
	Group uint16
	Data  []byte
}

func (*KeyExchange) Type() PayloadType { return PayloadKE }
func (p *KeyExchange) marshalBody(b *cryptobyte.Builder) {
	if len(p.Data) == 0 {
		b.SetError(errors.New("empty key exchange data"))
	}
	b.AddUint16(p.Group)
	b.AddUint16(0)
	b.AddBytes(p.Data)
}

func parseKE(s cryptobyte.String) (*KeyExchange, error) {
	p := &KeyExchange{}
	var reserved uint16
	if !s.ReadUint16(&p.Group) || !s.ReadUint16(&reserved) {
		return nil, ErrShort
	}
	if s.Empty() {
		return nil, errors.New("empty key exchange data")
	}
	p.Data = clone(s)
	return p, nil
}
