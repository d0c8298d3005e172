package x509

import (
	"bytes"
	"context"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// pki runs strongSwan's pki tool in dir; with stdin from the file in.
func pki(t *testing.T, dir, in string, args ...string) []byte {
	t.Helper()
	path, err := exec.LookPath("pki")
	if err != nil {
		t.Skip("strongSwan's pki is not installed (Debian package strongswan-pki)")
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	if in != "" {
		f, err := os.Open(filepath.Join(dir, in))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.Stdin = f
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pki %v: %v: %s", args, err, stderr.String())
	}
	return out
}

// TestStrongSwanPKI checks certificates and CRLs made by strongSwan's pki
// (an RSA CA signing with RSASSA-PSS, an ECDSA P-384 gateway certificate
// with a CRL distribution point) the way a strongSwan peer's would arrive.
func TestStrongSwanPKI(t *testing.T) {
	dir := t.TempDir()
	var crl atomic.Value
	crl.Store([]byte{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(crl.Load().([]byte))
	}))
	defer srv.Close()

	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.key", pki(t, dir, "", "--gen", "--type", "rsa", "--size", "3072"))
	write("ca.der", pki(t, dir, "", "--self", "--ca", "--in", "ca.key", "--dn", "C=CH, O=Veil, CN=Veil strongSwan CA", "--rsa-padding", "pss"))
	write("gw.key", pki(t, dir, "", "--gen", "--type", "ecdsa", "--size", "384"))
	write("gw.pub", pki(t, dir, "gw.key", "--pub", "--type", "ecdsa"))
	write("gw.der", pki(t, dir, "gw.pub", "--issue", "--cacert", "ca.der", "--cakey", "ca.key",
		"--dn", "C=CH, O=Veil, CN=gw.example.com", "--san", "gw.example.com", "--san", "192.0.2.1",
		"--flag", "serverAuth", "--rsa-padding", "pss", "--crl", srv.URL+"/ca.crl"))
	crl.Store(pki(t, dir, "", "--signcrl", "--cacert", "ca.der", "--cakey", "ca.key", "--rsa-padding", "pss"))

	keyDER, _ := os.ReadFile(filepath.Join(dir, "gw.key"))
	key, err := x509.ParseECPrivateKey(keyDER)
	if err != nil {
		t.Fatal(err)
	}
	certDER, _ := os.ReadFile(filepath.Join(dir, "gw.der"))
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		t.Fatal(err)
	}
	p := New()
	cfg := configJSON(t, map[string]any{"cacerts": []string{filepath.Join(dir, "ca.der")}, "revocation": "require"})
	if err := p.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	data, method, err := SignedAuthData(key, octets, HashSHA2_384)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(context.Background(), verifyReq(fqdn("gw.example.com"), method, data, cert)); err != nil {
		t.Fatalf("strongSwan certificate, empty CRL: %v", err)
	}
	if err := p.Verify(context.Background(), verifyReq(auth4(192, 0, 2, 1), method, data, cert)); err != nil {
		t.Fatalf("IPv4 ID: %v", err)
	}

	crl.Store(pki(t, dir, "", "--signcrl", "--cacert", "ca.der", "--cakey", "ca.key", "--rsa-padding", "pss",
		"--reason", "key-compromise", "--cert", "gw.der"))
	fresh := New()
	if err := fresh.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	wantErr(t, fresh.Verify(context.Background(), verifyReq(fqdn("gw.example.com"), method, data, cert)),
		"certificate for gw.example.com is revoked", srv.URL+"/ca.crl")
}
