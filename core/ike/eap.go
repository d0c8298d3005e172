package ike

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// EAP is the EAP payload (§3.16): Data is the whole EAP message (RFC 3748
// header included), whose own length field must match. Code and Identifier
// mirror its header; a payload built with empty Data is just that header.
type EAP struct {
	Code, Identifier uint8
	Data             []byte
}

func (*EAP) Type() PayloadType { return PayloadEAP }
func (p *EAP) marshalBody(b *cryptobyte.Builder) {
	if len(p.Data) == 0 {
		b.AddUint8(p.Code)
		b.AddUint8(p.Identifier)
		b.AddUint16(4)
		return
	}
	if len(p.Data) < 4 || int(p.Data[2])<<8|int(p.Data[3]) != len(p.Data) ||
		p.Data[0] != p.Code || p.Data[1] != p.Identifier {
		b.SetError(errors.New("EAP data is not an EAP packet matching Code and Identifier"))
	}
	b.AddBytes(p.Data)
}

func parseEAP(s cryptobyte.String) (*EAP, error) {
	all := clone(s)
	p := &EAP{Data: all}
	var n uint16
	if !s.ReadUint8(&p.Code) || !s.ReadUint8(&p.Identifier) || !s.ReadUint16(&n) {
		return nil, ErrShort
	}
	if int(n) != len(all) {
		return nil, fmt.Errorf("EAP length %d in a %d-byte payload", n, len(all))
	}
	if p.Code < 1 || p.Code > 4 {
		return nil, fmt.Errorf("EAP code %d", p.Code)
	}
	return p, nil
}
