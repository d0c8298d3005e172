package ike

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// Payload is one IKE payload. Each payload type is a struct in this package
// with a marshalBody method and a parse function registered in parseBody.
type Payload interface {
	Type() PayloadType
	marshalBody(b *cryptobyte.Builder)
}

// UnsupportedCriticalPayloadError is returned for an unknown payload with the
// critical bit set; the engine answers UNSUPPORTED_CRITICAL_PAYLOAD with Type
// as notification data (RFC 7296 §2.5).
type UnsupportedCriticalPayloadError struct{ Type PayloadType }

func (e *UnsupportedCriticalPayloadError) Error() string {
	return fmt.Sprintf("ike: unsupported critical payload %d", uint8(e.Type))
}

// genericHeaderLen is the length of each payload's generic header.
const genericHeaderLen = 4

// WalkPayloads calls fn for each payload of the chain in b starting with
// type first, without allocating. It checks every length. next is the
// payload's Next Payload field; for SK and SKF (always last) it names the
// first payload inside.
func WalkPayloads(first PayloadType, b []byte, fn func(t, next PayloadType, critical bool, body []byte) error) error {
	next := first
	for next != PayloadNone {
		if len(b) < genericHeaderLen {
			return fmt.Errorf("ike: %v payload header truncated", next)
		}
		n := int(binary.BigEndian.Uint16(b[2:]))
		if n < genericHeaderLen || n > len(b) {
			return fmt.Errorf("ike: %v payload length %d invalid (%d bytes left)", next, n, len(b))
		}
		t, critical := next, b[1]&0x80 != 0
		next = PayloadType(b[0])
		if err := fn(t, next, critical, b[genericHeaderLen:n]); err != nil {
			return err
		}
		b = b[n:]
		// An SK/SKF payload is last; its Next Payload names the first inner one.
		if t == PayloadSK || t == PayloadSKF {
			break
		}
	}
	if len(b) != 0 {
		return fmt.Errorf("ike: %d bytes after the last payload", len(b))
	}
	return nil
}

// ParsePayloads parses a payload chain (an unencrypted message body, or the
// plaintext of an SK payload).
func ParsePayloads(first PayloadType, b []byte) ([]Payload, error) {
	var ps []Payload
	err := WalkPayloads(first, b, func(t, next PayloadType, critical bool, body []byte) error {
		p, err := parseBody(t, critical, body, next)
		if err != nil {
			return err
		}
		ps = append(ps, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ps, nil
}

// parseBody is the one parse switch.
func parseBody(t PayloadType, critical bool, body []byte, skNext PayloadType) (Payload, error) {
	s := cryptobyte.String(body)
	var p Payload
	var err error
	switch t {
	case PayloadSA:
		p, err = parseSA(s)
	case PayloadKE:
		p, err = parseKE(s)
	case PayloadIDi, PayloadIDr:
		p, err = parseID(s, t == PayloadIDi)
	case PayloadCERT:
		p, err = parseCert(s)
	case PayloadCERTREQ:
		p, err = parseCertReq(s)
	case PayloadAUTH:
		p, err = parseAuth(s)
	case PayloadNonce:
		p, err = parseNonce(s)
	case PayloadNotify:
		p, err = parseNotify(s)
	case PayloadDelete:
		p, err = parseDelete(s)
	case PayloadVendor:
		p = &VendorID{Data: clone(body)}
	case PayloadTSi, PayloadTSr:
		p, err = parseTS(s, t == PayloadTSi)
	case PayloadSK:
		p = &Encrypted{NextPayload: skNext, Data: clone(body)}
	case PayloadSKF:
		p, err = parseSKF(s, skNext)
	case PayloadCP:
		p, err = parseCP(s)
	case PayloadEAP:
		p, err = parseEAP(s)
	default:
		if critical {
			return nil, &UnsupportedCriticalPayloadError{Type: t}
		}
		p = &UnknownPayload{PayloadType: t, Body: clone(body)}
	}
	if err != nil {
		return nil, fmt.Errorf("ike: %v payload: %w", t, err)
	}
	return p, nil
}

// MarshalPayloads writes the chain and returns the first payload's type.
func MarshalPayloads(ps []Payload) (PayloadType, []byte, error) {
	out, err := appendPayloads(make([]byte, 0, 256), ps)
	if err != nil {
		return 0, nil, err
	}
	if len(ps) == 0 {
		return PayloadNone, out, nil
	}
	return ps[0].Type(), out, nil
}

// appendPayloads appends the chain to dst. Each payload's body is built in
// place after its generic header, whose length is patched afterwards.
func appendPayloads(dst []byte, ps []Payload) ([]byte, error) {
	for i, p := range ps {
		next := PayloadNone
		switch sk := p.(type) {
		case *Encrypted:
			if i != len(ps)-1 {
				return nil, errors.New("ike: SK payload must be last")
			}
			next = sk.NextPayload
		case *EncryptedFragment:
			if i != len(ps)-1 {
				return nil, errors.New("ike: SKF payload must be last")
			}
			next = sk.NextPayload
		default:
			if i+1 < len(ps) {
				next = ps[i+1].Type()
			}
		}
		var flags byte
		if u, ok := p.(*UnknownPayload); ok && u.Critical {
			flags = 0x80
		}
		start := len(dst)
		b := cryptobyte.NewBuilder(append(dst, byte(next), flags, 0, 0))
		p.marshalBody(b)
		var err error
		if dst, err = b.Bytes(); err != nil {
			return nil, fmt.Errorf("ike: marshal %v: %w", p.Type(), err)
		}
		n := len(dst) - start
		if n > 0xffff {
			return nil, fmt.Errorf("ike: %v payload too long", p.Type())
		}
		binary.BigEndian.PutUint16(dst[start+2:], uint16(n))
	}
	return dst, nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

var errTrailing = errors.New("trailing bytes")
