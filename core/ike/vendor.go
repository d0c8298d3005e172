package ike

import "golang.org/x/crypto/cryptobyte"

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
