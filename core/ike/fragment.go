package ike

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// EncryptedFragment is the SKF payload (RFC 7383 §2.5). NextPayload is set in
// fragment 1 only.
type EncryptedFragment struct {
	NextPayload   PayloadType
	Number, Total uint16
	Data          []byte
}

func (*EncryptedFragment) Type() PayloadType { return PayloadSKF }
func (p *EncryptedFragment) marshalBody(b *cryptobyte.Builder) {
	if p.Number == 0 || p.Number > p.Total || (p.Number != 1 && p.NextPayload != PayloadNone) {
		b.SetError(fmt.Errorf("fragment %d of %d with next payload %v", p.Number, p.Total, p.NextPayload))
	}
	b.AddUint16(p.Number)
	b.AddUint16(p.Total)
	b.AddBytes(p.Data)
}

func parseSKF(s cryptobyte.String, next PayloadType) (*EncryptedFragment, error) {
	p := &EncryptedFragment{NextPayload: next}
	if !s.ReadUint16(&p.Number) || !s.ReadUint16(&p.Total) {
		return nil, ErrShort
	}
	if p.Number == 0 || p.Total == 0 || p.Number > p.Total {
		return nil, fmt.Errorf("fragment %d of %d", p.Number, p.Total)
	}
	if p.Number != 1 && next != PayloadNone {
		return nil, errors.New("next payload set in a non-first fragment")
	}
	p.Data = clone(s)
	return p, nil
}

// SealFragments splits inner into SKF fragments (RFC 7383) so that each
// datagram is at most maxDatagram bytes (without IP/UDP headers and the
// non-ESP marker, which the caller subtracts).
func SealFragments(h Header, inner []Payload, c SKCipher, maxDatagram int) ([][]byte, error) {
	first, plain, err := MarshalPayloads(inner)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	const fragHdr = genericHeaderLen + 4
	room := maxDatagram - HeaderLen - fragHdr
	chunk := room
	for chunk > 0 && c.SealedLen(chunk) > room {
		chunk--
	}
	if chunk <= 0 {
		return nil, fmt.Errorf("ike: fragment size %d leaves no room for data", maxDatagram)
	}
	n := (len(plain) + chunk - 1) / chunk
	if n == 0 {
		n = 1
	}
	if n > MaxFragments {
		return nil, fmt.Errorf("ike: %d fragments exceed the limit of %d", n, MaxFragments)
	}
	out := make([][]byte, 0, n)
	for i := 0; i < n; i++ {
		part := plain[i*chunk : min((i+1)*chunk, len(plain))]
		sealed := c.SealedLen(len(part))
		total := HeaderLen + fragHdr + sealed
		fh := h
		fh.NextPayload, fh.Length = PayloadSKF, uint32(total)
		next := PayloadNone
		if i == 0 {
			next = first
		}
		d := appendHeader(make([]byte, 0, total), &fh)
		d = append(d, byte(next), 0, byte((fragHdr+sealed)>>8), byte(fragHdr+sealed),
			byte((i+1)>>8), byte(i+1), byte(n>>8), byte(n))
		d, err = c.Seal(d, d[:HeaderLen+fragHdr], part)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// Reassembly limits (RFC 7383 §2.6.2 asks for some): a message of at most
// MaxFragments fragments and MaxReassembled plaintext bytes.
const (
	MaxFragments   = 64
	MaxReassembled = 64 << 10
)

// Reassembler collects the SKF fragments of one message at a time for one
// direction of an IKE SA. Each fragment is authenticated before it is kept.
type Reassembler struct {
	msgID  uint32
	active bool
	done   bool // msgID was reassembled; later fragments of it are dropped
	total  uint16
	first  PayloadType
	parts  [][]byte
	got    []bool // by fragment number - 1; a fragment may be empty, so parts[i] == nil says nothing
	have   int
	bytes  int
}

// Add authenticates and stores fragment m (which holds one SKF payload). It
// returns the inner payloads once every fragment has arrived.
func (r *Reassembler) Add(m *Message, c SKCipher) (inner []Payload, done bool, err error) {
	if len(m.Payloads) == 0 {
		return nil, false, errors.New("ike: no SKF payload")
	}
	f, ok := m.Payloads[len(m.Payloads)-1].(*EncryptedFragment)
	if !ok {
		return nil, false, errors.New("ike: no SKF payload")
	}
	if f.Total > MaxFragments {
		return nil, false, fmt.Errorf("ike: %d fragments exceed the limit of %d", f.Total, MaxFragments)
	}
	id := m.Header.MessageID
	switch {
	case r.active && id < r.msgID:
		return nil, false, errors.New("ike: fragment of an older message")
	case r.active && id == r.msgID && r.done:
		return nil, false, nil // retransmitted fragment of a message already delivered
	case r.active && id == r.msgID && f.Total < r.total:
		return nil, false, errors.New("ike: fragment with a smaller total than seen before")
	}
	aad, err := sealedAAD(m, f.Data)
	if err != nil {
		return nil, false, err
	}
	plain, err := c.Open(nil, aad, f.Data)
	if err != nil {
		return nil, false, err
	}
	// A new message, or a larger total (the sender fragments smaller after a
	// PMTU problem): start over (RFC 7383 §2.6.1).
	if !r.active || id != r.msgID || f.Total > r.total {
		r.reset()
		r.active, r.msgID, r.total = true, id, f.Total
		r.parts = make([][]byte, f.Total)
		r.got = make([]bool, f.Total)
	}
	i := f.Number - 1
	if r.got[i] {
		clear(plain)
		return nil, false, nil // duplicate
	}
	if r.bytes+len(plain) > MaxReassembled {
		r.reset()
		return nil, false, fmt.Errorf("ike: reassembled message exceeds %d bytes", MaxReassembled)
	}
	r.parts[i], r.got[i], r.have, r.bytes = plain, true, r.have+1, r.bytes+len(plain)
	if f.Number == 1 {
		r.first = f.NextPayload
	}
	if r.have < int(r.total) {
		return nil, false, nil
	}
	all := make([]byte, 0, r.bytes)
	for _, p := range r.parts {
		all = append(all, p...)
	}
	first := r.first
	r.reset()
	r.active, r.done, r.msgID = true, true, id
	inner, err = parseInner(first, all)
	clear(all)
	return inner, err == nil, err
}

func (r *Reassembler) reset() {
	for _, p := range r.parts {
		clear(p)
	}
	*r = Reassembler{}
}
