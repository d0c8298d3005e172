package ike

import (
	"encoding/binary"
	"errors"
)

// Message is a parsed IKE message. Raw holds the exact datagram it was
// parsed from (AUTH signs the IKE_SA_INIT messages as sent and received).
type Message struct {
	Header   Header
	Payloads []Payload
	Raw      []byte
}

// ParseMessage parses a whole IKE message (without the non-ESP marker).
// SK/SKF payloads are kept encrypted; OpenMessage decrypts them. The result
// shares no memory with b, so the caller may reuse its receive buffer.
func ParseMessage(b []byte) (*Message, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	ps, err := ParsePayloads(h.NextPayload, b[HeaderLen:])
	if err != nil {
		return nil, err
	}
	return &Message{Header: h, Payloads: ps, Raw: clone(b)}, nil
}

// Marshal encodes the message, setting the header's Next Payload and
// Length, and stores the result in Raw.
func (m *Message) Marshal() ([]byte, error) {
	out, err := appendPayloads(appendHeader(make([]byte, 0, 512), &m.Header), m.Payloads)
	if err != nil {
		return nil, err
	}
	if len(out) > MaxMessageLen {
		return nil, errors.New("ike: message too long")
	}
	m.Header.NextPayload = PayloadNone
	if len(m.Payloads) > 0 {
		m.Header.NextPayload = m.Payloads[0].Type()
	}
	m.Header.Length = uint32(len(out))
	out[16] = byte(m.Header.NextPayload)
	binary.BigEndian.PutUint32(out[24:], m.Header.Length)
	m.Raw = out
	return out, nil
}

// Get returns the first payload of type T, or nil.
func Get[T Payload](ps []Payload) T {
	var zero T
	for _, p := range ps {
		if v, ok := p.(T); ok {
			return v
		}
	}
	return zero
}

// FindNotify returns the first Notify of type t in ps, or nil.
func FindNotify(ps []Payload, t NotifyType) *Notify {
	for _, p := range ps {
		if n, ok := p.(*Notify); ok && n.NotifyType == t {
			return n
		}
	}
	return nil
}

// Notify returns the message's first Notify of type t, or nil.
func (m *Message) Notify(t NotifyType) *Notify { return FindNotify(m.Payloads, t) }

// GetID returns the IDi or IDr payload (nil if absent).
func GetID(ps []Payload, initiator bool) *Identification {
	for _, p := range ps {
		if id, ok := p.(*Identification); ok && id.Initiator == initiator {
			return id
		}
	}
	return nil
}

// GetTS returns the TSi or TSr payload (nil if absent).
func GetTS(ps []Payload, initiator bool) *TrafficSelectors {
	for _, p := range ps {
		if ts, ok := p.(*TrafficSelectors); ok && ts.Initiator == initiator {
			return ts
		}
	}
	return nil
}

// StripNonESPMarker tells IKE from ESP on UDP port 4500 (RFC 3948 §2.2):
// IKE messages there start with four zero bytes.
func StripNonESPMarker(b []byte) (ike []byte, isIKE bool) {
	if len(b) >= 4 && b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 0 {
		return b[4:], true
	}
	return nil, false
}
