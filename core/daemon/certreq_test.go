package daemon

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/config"
)

// The CERTREQ a connection sends names each CA in its cacerts files by the
// SHA-1 hash of the CA's public key (RFC 7296 §3.7); a PSK peer gets none.
func TestCertReqFromCACerts(t *testing.T) {
	dir := t.TempDir()
	var want []byte
	var pems []byte
	for i := range 2 {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 1)), Subject: pkix.Name{CommonName: "CA"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		h := sha1.Sum(c.RawSubjectPublicKeyInfo)
		want = append(want, h[:]...)
		pems = append(pems, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	path := filepath.Join(dir, "cas.pem")
	os.WriteFile(path, pems, 0o600)
	c := &config.Connection{Name: "c", Local: config.Auth{Auth: "pubkey"}, Remote: config.Auth{Auth: "pubkey", CACerts: []string{path}}}
	ec, err := engineConnection(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ec.Remote.CertReq, want) {
		t.Errorf("CERTREQ data %x, want %x", ec.Remote.CertReq, want)
	}
	c.Remote = config.Auth{Auth: "psk", PSK: "file:/x"}
	if ec, err = engineConnection(c); err != nil || ec.Remote.CertReq != nil {
		t.Errorf("PSK peer: %x, %v", ec.Remote.CertReq, err)
	}
	c.Remote = config.Auth{Auth: "pubkey", CACerts: []string{filepath.Join(dir, "missing.pem")}}
	if _, err = engineConnection(c); err == nil {
		t.Error("a missing CA file was accepted")
	}
}
