package ike

import (
	"bytes"
	"errors"
	"fmt"

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

// Certificate is the CERT payload (§3.6).
type Certificate struct {
	Encoding CertEncoding
	Data     []byte
}

func (*Certificate) Type() PayloadType { return PayloadCERT }
func (p *Certificate) marshalBody(b *cryptobyte.Builder) {
	b.AddUint8(uint8(p.Encoding))
	b.AddBytes(p.Data)
}

func parseCert(s cryptobyte.String) (*Certificate, error) {
	var e uint8
	if !s.ReadUint8(&e) {
		return nil, ErrShort
	}
	return &Certificate{Encoding: CertEncoding(e), Data: clone(s)}, nil
}

// CertificateRequest is the CERTREQ payload (§3.7); for X.509 the data is a
// list of SHA-1 hashes of CA public keys.
type CertificateRequest struct {
	Encoding CertEncoding
	Data     []byte
}

func (*CertificateRequest) Type() PayloadType { return PayloadCERTREQ }
func (p *CertificateRequest) marshalBody(b *cryptobyte.Builder) {
	b.AddUint8(uint8(p.Encoding))
	b.AddBytes(p.Data)
}

func parseCertReq(s cryptobyte.String) (*CertificateRequest, error) {
	var e uint8
	if !s.ReadUint8(&e) {
		return nil, ErrShort
	}
	return &CertificateRequest{Encoding: CertEncoding(e), Data: clone(s)}, nil
}

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

// Nonce is the Ni/Nr payload (§3.9): 16 to 256 bytes.
type Nonce struct{ Data []byte }

func (*Nonce) Type() PayloadType { return PayloadNonce }
func (p *Nonce) marshalBody(b *cryptobyte.Builder) {
	if err := checkNonceLength(len(p.Data)); err != nil {
		b.SetError(err)
	}
	b.AddBytes(p.Data)
}

// Nonce lengths allowed by RFC 7296 §3.9.
const (
	MinNonceLen = 16
	MaxNonceLen = 256
)

func checkNonceLength(n int) error {
	if n < MinNonceLen || n > MaxNonceLen {
		return fmt.Errorf("nonce of %d bytes (want %d-%d)", n, MinNonceLen, MaxNonceLen)
	}
	return nil
}

func parseNonce(s cryptobyte.String) (*Nonce, error) {
	if err := checkNonceLength(len(s)); err != nil {
		return nil, err
	}
	return &Nonce{Data: clone(s)}, nil
}

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

// VendorID is the Vendor ID payload (§3.12).
type VendorID struct{ Data []byte }

func (*VendorID) Type() PayloadType                   { return PayloadVendor }
func (p *VendorID) marshalBody(b *cryptobyte.Builder) { b.AddBytes(p.Data) }

// UnknownPayload is a non-critical payload type we do not implement; it is
// skipped by the engine and kept for round trips.
type UnknownPayload struct {
	PayloadType PayloadType
	Critical    bool
	Body        []byte
}

func (p *UnknownPayload) Type() PayloadType                 { return p.PayloadType }
func (p *UnknownPayload) marshalBody(b *cryptobyte.Builder) { b.AddBytes(p.Body) }

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
