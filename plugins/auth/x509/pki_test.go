package x509

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Keys are generated once per test binary: RSA 3072 costs about a second.
var (
	keysOnce sync.Once
	keys     map[string]crypto.Signer
)

func testKey(t testing.TB, name string) crypto.Signer {
	t.Helper()
	keysOnce.Do(func() {
		keys = map[string]crypto.Signer{}
		for _, n := range []string{"p256", "p256b", "p384", "p521", "p224", "rsa2048", "rsa3072", "rsa1024", "ed25519", "ed25519b", "ca-p256", "ca2-p256", "ca-rsa2048"} {
			var k crypto.Signer
			var err error
			switch n {
			case "p256", "p256b", "ca-p256", "ca2-p256":
				k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			case "p384":
				k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
			case "p521":
				k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
			case "p224":
				k, err = ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
			case "rsa2048", "ca-rsa2048":
				k, err = rsa.GenerateKey(rand.Reader, 2048)
			case "rsa3072":
				k, err = rsa.GenerateKey(rand.Reader, 3072)
			case "rsa1024":
				k, err = rsa.GenerateKey(rand.Reader, 1024)
			case "ed25519", "ed25519b":
				_, k, err = ed25519.GenerateKey(rand.Reader)
			}
			if err != nil {
				panic(err)
			}
			keys[n] = k
		}
	})
	k, ok := keys[name]
	if !ok {
		t.Fatalf("no test key %q", name)
	}
	return k
}

var serial atomic.Int64

// testCA is a CA with its key, written to a PEM file for cacerts.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	path string // PEM certificate
}

func newCA(t testing.TB, keyName, cn string) *testCA {
	t.Helper()
	key := testKey(t, keyName)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Veil test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, path: path}
}

// leaf is a certificate template for an end entity.
type leaf struct {
	key        crypto.Signer
	dns        []string
	emails     []string
	ips        []net.IP
	cn         string
	notBefore  time.Time
	notAfter   time.Time
	keyUsage   x509.KeyUsage
	crlDP      []string
	ocsp       []string
	isCA       bool
	eku        []x509.ExtKeyUsage
	sigAlgoRSA x509.SignatureAlgorithm
}

func (ca *testCA) issue(t testing.TB, l leaf) *x509.Certificate {
	t.Helper()
	if l.notBefore.IsZero() {
		l.notBefore = time.Now().Add(-time.Hour)
	}
	if l.notAfter.IsZero() {
		l.notAfter = time.Now().Add(12 * time.Hour)
	}
	if l.keyUsage == 0 {
		l.keyUsage = x509.KeyUsageDigitalSignature
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: l.cn, Organization: []string{"Veil test"}},
		DNSNames:              l.dns,
		EmailAddresses:        l.emails,
		IPAddresses:           l.ips,
		NotBefore:             l.notBefore,
		NotAfter:              l.notAfter,
		KeyUsage:              l.keyUsage,
		CRLDistributionPoints: l.crlDP,
		OCSPServer:            l.ocsp,
		IsCA:                  l.isCA,
		ExtKeyUsage:           l.eku,
		BasicConstraintsValid: true,
		SignatureAlgorithm:    l.sigAlgoRSA,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, l.key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// revoke writes a CRL of ca listing certs and returns its DER.
func (ca *testCA) crl(t testing.TB, certs ...*x509.Certificate) []byte {
	t.Helper()
	var entries []x509.RevocationListEntry
	for _, c := range certs {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: time.Now().Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(serial.Add(1)),
		ThisUpdate:                time.Now().Add(-time.Minute),
		NextUpdate:                time.Now().Add(time.Hour),
		RevokedCertificateEntries: entries,
	}, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func configJSON(t testing.TB, cfg map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
