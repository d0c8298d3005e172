package eap

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// EAP codes (RFC 3748 §4).
const (
	CodeRequest  = 1
	CodeResponse = 2
	CodeSuccess  = 3
	CodeFailure  = 4
)

// EAP method types (RFC 3748 §5, IANA "Method Types").
const (
	TypeIdentity     = 1
	TypeNotification = 2
	TypeNak          = 3
	TypeMD5          = 4
	TypeTLS          = 13
	TypeMSCHAPv2     = 26
	TypeExpanded     = 254
)

// Packet is one EAP packet. Requests and responses carry Type and Data
// (the type-data after the type octet); Success and Failure carry neither.
type Packet struct {
	Code uint8
	ID   uint8
	Type uint8
	Data []byte
}

// ParsePacket parses b strictly: the length field must fit in b (octets
// after Length are link padding and ignored, RFC 3748 §4.1), requests and
// responses need a type, Success and Failure carry no data.
func ParsePacket(b []byte) (*Packet, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("EAP packet of %d bytes is shorter than its 4-byte header", len(b))
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n < 4 || n > len(b) {
		return nil, fmt.Errorf("EAP length field %d does not fit the %d bytes received", n, len(b))
	}
	p := &Packet{Code: b[0], ID: b[1]}
	switch p.Code {
	case CodeRequest, CodeResponse:
		if n < 5 {
			return nil, errors.New("EAP request or response without a type")
		}
		p.Type = b[4]
		p.Data = append([]byte(nil), b[5:n]...)
	case CodeSuccess, CodeFailure:
		if n != 4 {
			return nil, fmt.Errorf("EAP Success/Failure with %d bytes of data", n-4)
		}
	default:
		return nil, fmt.Errorf("unknown EAP code %d", p.Code)
	}
	return p, nil
}

// Marshal encodes p.
func (p *Packet) Marshal() []byte {
	if p.Code == CodeSuccess || p.Code == CodeFailure {
		return []byte{p.Code, p.ID, 0, 4}
	}
	b := make([]byte, 5, 5+len(p.Data))
	b[0], b[1], b[4] = p.Code, p.ID, p.Type
	b = append(b, p.Data...)
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
	return b
}

// typeName names a method type for messages.
func typeName(t uint8) string {
	switch t {
	case TypeIdentity:
		return "Identity"
	case TypeNotification:
		return "Notification"
	case TypeNak:
		return "Nak"
	case TypeMD5:
		return "EAP-MD5"
	case TypeTLS:
		return "EAP-TLS"
	case TypeMSCHAPv2:
		return "EAP-MSCHAPv2"
	case TypeExpanded:
		return "expanded type"
	}
	return fmt.Sprintf("EAP type %d", t)
}
