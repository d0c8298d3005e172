package ike

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

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
