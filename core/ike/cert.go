package ike

import (
	"golang.org/x/crypto/cryptobyte"
)

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
