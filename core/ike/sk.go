package ike

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// SKCipher protects SK and SKF payloads for one direction of an IKE SA.
// core/transform implements it for AES-GCM, ChaCha20-Poly1305 and
// AES-CBC+HMAC-SHA2.
type SKCipher interface {
	// SealedLen is len(IV|ciphertext(plaintext|padding|padlen)|ICV) for n
	// plaintext bytes.
	SealedLen(n int) int
	// Seal appends IV|ciphertext|ICV to dst. aad is everything from the IKE
	// header through the SK (or SKF) payload header; for CBC+HMAC the ICV
	// covers aad|IV|ciphertext, i.e. the whole message.
	Seal(dst, aad, plaintext []byte) ([]byte, error)
	// Open reverses Seal and returns the plaintext without padding.
	Open(dst, aad, sealed []byte) ([]byte, error)
}

// Encrypted is the SK payload (§3.14): Data is IV|ciphertext|ICV and
// NextPayload the type of the first payload inside.
type Encrypted struct {
	NextPayload PayloadType
	Data        []byte
}

func (*Encrypted) Type() PayloadType                   { return PayloadSK }
func (p *Encrypted) marshalBody(b *cryptobyte.Builder) { b.AddBytes(p.Data) }

// SealMessage builds a whole datagram: header h, then an SK payload holding
// inner encrypted with c. h's Length and NextPayload are set here.
func SealMessage(h Header, inner []Payload, c SKCipher) ([]byte, error) {
	first, plain, err := MarshalPayloads(inner)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	sealed := c.SealedLen(len(plain))
	total := HeaderLen + genericHeaderLen + sealed
	if total > MaxMessageLen {
		return nil, errors.New("ike: message too long")
	}
	h.NextPayload, h.Length = PayloadSK, uint32(total)
	out := appendHeader(make([]byte, 0, total), &h)
	out = append(out, byte(first), 0, byte((genericHeaderLen+sealed)>>8), byte(genericHeaderLen+sealed))
	out, err = c.Seal(out, out[:HeaderLen+genericHeaderLen], plain)
	if err != nil {
		return nil, err
	}
	if len(out) != total {
		return nil, fmt.Errorf("ike: cipher sealed %d bytes, announced %d", len(out)-HeaderLen-genericHeaderLen, sealed)
	}
	return out, nil
}

// OpenMessage authenticates and decrypts m's SK payload and returns the
// payloads inside. m must have come from ParseMessage (its Raw is used).
func OpenMessage(m *Message, c SKCipher) ([]Payload, error) {
	if len(m.Payloads) == 0 {
		return nil, errors.New("ike: no SK payload")
	}
	sk, ok := m.Payloads[len(m.Payloads)-1].(*Encrypted)
	if !ok {
		return nil, errors.New("ike: no SK payload")
	}
	aad, err := sealedAAD(m, sk.Data)
	if err != nil {
		return nil, err
	}
	plain, err := c.Open(nil, aad, sk.Data)
	if err != nil {
		return nil, err
	}
	ps, err := parseInner(sk.NextPayload, plain)
	clear(plain)
	return ps, err
}

// parseInner parses decrypted payloads; another SK or SKF among them is a
// syntax error (RFC 7296 §3.14, RFC 7383 §2.5), not something to open again.
func parseInner(first PayloadType, plain []byte) ([]Payload, error) {
	ps, err := ParsePayloads(first, plain)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if t := p.Type(); t == PayloadSK || t == PayloadSKF {
			return nil, fmt.Errorf("ike: %v payload inside an encrypted payload", t)
		}
	}
	return ps, nil
}

// sealedAAD returns the bytes of m before its SK/SKF payload's data: the
// IKE header through the SK/SKF payload header, as received.
func sealedAAD(m *Message, data []byte) ([]byte, error) {
	if len(m.Raw) < HeaderLen+len(data) {
		return nil, errors.New("ike: message has no raw bytes to authenticate (not from ParseMessage)")
	}
	return m.Raw[:len(m.Raw)-len(data)], nil
}
