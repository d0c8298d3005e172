package ike

import (
	"bytes"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// Identification is the IDi or IDr payload (§3.5). Body is the exact payload
// body (type, reserved, data) that prf(SK_p, ID') covers.
type Identification struct {
	Initiator bool
	IDType    IDType
	Data      []byte
	Body      []byte
}

func (p *Identification) Type() PayloadType {
	if p.Initiator {
		return PayloadIDi
	}
	return PayloadIDr
}

func (p *Identification) marshalBody(b *cryptobyte.Builder) {
	if err := checkIDLength(p.IDType, p.Data); err != nil {
		b.SetError(err)
	}
	// A received ID is sent on (e.g. by a test peer or a proxy) exactly as
	// it came, reserved bytes included, when it still matches the fields.
	if len(p.Body) >= 4 && p.Body[0] == byte(p.IDType) && bytes.Equal(p.Body[4:], p.Data) {
		b.AddBytes(p.Body)
		return
	}
	b.AddUint8(uint8(p.IDType))
	b.AddBytes([]byte{0, 0, 0})
	b.AddBytes(p.Data)
}

// SignedBody returns the body AUTH covers: the received bytes when parsed,
// otherwise the canonical encoding.
func (p *Identification) SignedBody() []byte {
	if p.Body != nil {
		return p.Body
	}
	return append([]byte{byte(p.IDType), 0, 0, 0}, p.Data...)
}

func parseID(s cryptobyte.String, initiator bool) (*Identification, error) {
	p := &Identification{Initiator: initiator, Body: clone(s)}
	var t uint8
	if !s.ReadUint8(&t) || !s.Skip(3) {
		return nil, ErrShort
	}
	p.IDType = IDType(t)
	p.Data = clone(s)
	if err := checkIDLength(p.IDType, p.Data); err != nil {
		return nil, err
	}
	return p, nil
}

func checkIDLength(t IDType, data []byte) error {
	switch {
	case t == IDIPv4 && len(data) != 4:
		return fmt.Errorf("ID_IPV4_ADDR of %d bytes", len(data))
	case t == IDIPv6 && len(data) != 16:
		return fmt.Errorf("ID_IPV6_ADDR of %d bytes", len(data))
	}
	return nil
}
