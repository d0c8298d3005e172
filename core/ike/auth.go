package ike

import (
	"errors"

	"golang.org/x/crypto/cryptobyte"
)

// Authentication is the AUTH payload (§3.8).
type Authentication struct {
	Method AuthMethod
	Data   []byte
}

func (*Authentication) Type() PayloadType { return PayloadAUTH }
func (p *Authentication) marshalBody(b *cryptobyte.Builder) {
	if len(p.Data) == 0 {
		b.SetError(errors.New("empty authentication data"))
	}
	b.AddUint8(uint8(p.Method))
	b.AddBytes([]byte{0, 0, 0})
	b.AddBytes(p.Data)
}

func parseAuth(s cryptobyte.String) (*Authentication, error) {
	var m uint8
	if !s.ReadUint8(&m) || !s.Skip(3) {
		return nil, ErrShort
	}
	if s.Empty() {
		return nil, errors.New("empty authentication data")
	}
	return &Authentication{Method: AuthMethod(m), Data: clone(s)}, nil
}
