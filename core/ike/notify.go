package ike

import (
	"errors"

	"golang.org/x/crypto/cryptobyte"
)

// Notify is the Notify payload (§3.10).
type Notify struct {
	Protocol   ProtocolID
	SPI        []byte
	NotifyType NotifyType
	Data       []byte
}

func (*Notify) Type() PayloadType { return PayloadNotify }
func (p *Notify) marshalBody(b *cryptobyte.Builder) {
	if len(p.SPI) > 255 {
		b.SetError(errors.New("notify SPI longer than 255 bytes"))
	}
	b.AddUint8(uint8(p.Protocol))
	b.AddUint8(uint8(len(p.SPI)))
	b.AddUint16(uint16(p.NotifyType))
	b.AddBytes(p.SPI)
	b.AddBytes(p.Data)
}

func parseNotify(s cryptobyte.String) (*Notify, error) {
	p := &Notify{}
	var proto, spiSize uint8
	var t uint16
	var spi []byte
	if !s.ReadUint8(&proto) || !s.ReadUint8(&spiSize) || !s.ReadUint16(&t) || !s.ReadBytes(&spi, int(spiSize)) {
		return nil, ErrShort
	}
	p.Protocol, p.NotifyType = ProtocolID(proto), NotifyType(t)
	if spiSize > 0 {
		p.SPI = clone(spi)
	}
	if !s.Empty() {
		p.Data = clone(s)
	}
	return p, nil
}
