package ike

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// HeaderLen is the fixed IKE header length (RFC 7296 §3.1).
const HeaderLen = 28

// MaxMessageLen bounds what we accept: larger datagrams cannot be valid IKE
// over UDP, and the bound keeps parsers' work small.
const MaxMessageLen = 65535

// Header is the IKE header.
type Header struct {
	SPIi, SPIr   uint64
	NextPayload  PayloadType
	Major, Minor uint8
	Exchange     ExchangeType
	Flags        Flags
	MessageID    uint32
	Length       uint32
}

// IsResponse reports the Response flag.
func (h *Header) IsResponse() bool { return h.Flags&FlagResponse != 0 }

// IsInitiator reports the Initiator flag (set by the original initiator).
func (h *Header) IsInitiator() bool { return h.Flags&FlagInitiator != 0 }

// ErrShort means the input is shorter than its lengths claim.
var ErrShort = errors.New("ike: truncated message")

// ParseHeader reads the header without allocating and checks that the
// length field matches len(b).
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderLen {
		return h, ErrShort
	}
	h.SPIi = binary.BigEndian.Uint64(b[0:])
	h.SPIr = binary.BigEndian.Uint64(b[8:])
	h.NextPayload = PayloadType(b[16])
	h.Major, h.Minor = b[17]>>4, b[17]&0x0f
	h.Exchange = ExchangeType(b[18])
	h.Flags = Flags(b[19])
	h.MessageID = binary.BigEndian.Uint32(b[20:])
	h.Length = binary.BigEndian.Uint32(b[24:])
	if h.Major != 2 {
		return h, &InvalidMajorVersionError{Major: h.Major}
	}
	if int(h.Length) != len(b) {
		return h, fmt.Errorf("ike: header length %d but datagram is %d bytes", h.Length, len(b))
	}
	return h, nil
}

// InvalidMajorVersionError is answered with INVALID_MAJOR_VERSION.
type InvalidMajorVersionError struct{ Major uint8 }

func (e *InvalidMajorVersionError) Error() string {
	return fmt.Sprintf("ike: major version %d, want 2", e.Major)
}

// appendHeader writes h with the given length and first payload type.
func appendHeader(b []byte, h *Header) []byte {
	b = binary.BigEndian.AppendUint64(b, h.SPIi)
	b = binary.BigEndian.AppendUint64(b, h.SPIr)
	major := h.Major
	if major == 0 {
		major = 2
	}
	b = append(b, byte(h.NextPayload), major<<4|h.Minor&0x0f, byte(h.Exchange), byte(h.Flags))
	b = binary.BigEndian.AppendUint32(b, h.MessageID)
	return binary.BigEndian.AppendUint32(b, h.Length)
}
