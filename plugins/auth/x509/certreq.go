package x509

import (
	"crypto/sha1"
	"crypto/x509"
)

// CertReqAuthorities returns the Certification Authority field of a
// CERTREQ payload (RFC 7296 §3.7, encoding 4) for cas: the SHA-1 hashes of
// their SubjectPublicKeyInfo, concatenated. SHA-1 here is an identifier
// the RFC fixes, not a signature.
func CertReqAuthorities(cas []*x509.Certificate) []byte {
	out := make([]byte, 0, len(cas)*sha1.Size)
	for _, c := range cas {
		h := sha1.Sum(c.RawSubjectPublicKeyInfo)
		out = append(out, h[:]...)
	}
	return out
}

// ReadCertificates reads the PEM (one or more certificates) or DER file
// at path, as the cacerts setting does.
func ReadCertificates(path string) ([]*x509.Certificate, error) { return readCerts(path) }

// CACertificates returns the configured CA certificates.
func (p *Plugin) CACertificates() []*x509.Certificate {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.cfg.cas
}
