package ike

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// Delete is the Delete payload (§3.11). An IKE SA delete has no SPIs.
// SPISize is needed only when SPIs is empty (it is taken from the SPIs
// otherwise).
type Delete struct {
	Protocol ProtocolID
	SPISize  uint8
	SPIs     [][]byte
}

func (*Delete) Type() PayloadType { return PayloadDelete }
func (p *Delete) marshalBody(b *cryptobyte.Builder) {
	size := p.SPISize
	if size == 0 && len(p.SPIs) > 0 {
		size = uint8(len(p.SPIs[0]))
	}
	if len(p.SPIs) > 0xffff {
		b.SetError(errors.New("too many SPIs in a delete"))
	}
	if p.Protocol == ProtoIKE && (size != 0 || len(p.SPIs) != 0) {
		b.SetError(errors.New("IKE SA delete with SPIs"))
	}
	for _, spi := range p.SPIs {
		if len(spi) != int(size) {
			b.SetError(errors.New("delete SPIs of different sizes"))
		}
	}
	b.AddUint8(uint8(p.Protocol))
	b.AddUint8(size)
	b.AddUint16(uint16(len(p.SPIs)))
	for _, spi := range p.SPIs {
		b.AddBytes(spi)
	}
}

func parseDelete(s cryptobyte.String) (*Delete, error) {
	p := &Delete{}
	var proto uint8
	var n uint16
	if !s.ReadUint8(&proto) || !s.ReadUint8(&p.SPISize) || !s.ReadUint16(&n) {
		return nil, ErrShort
	}
	p.Protocol = ProtocolID(proto)
	if int(p.SPISize)*int(n) != len(s) {
		return nil, fmt.Errorf("%d SPIs of %d bytes in %d bytes", n, p.SPISize, len(s))
	}
	if p.Protocol == ProtoIKE && (p.SPISize != 0 || n != 0) {
		return nil, errors.New("IKE SA delete with SPIs")
	}
	for i := 0; i < int(n); i++ {
		var spi []byte
		s.ReadBytes(&spi, int(p.SPISize))
		p.SPIs = append(p.SPIs, clone(spi))
	}
	return p, nil
}
