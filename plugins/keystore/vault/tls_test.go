package vault

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/sdk/keystore"
	vaulttest "github.com/veil-ipsec/veil/test/vault"
)

// tlsFiles writes a CA certificate and a server certificate for 127.0.0.1
// with its key; it returns their paths.
func tlsFiles(t *testing.T) (caFile, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vault test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "vault"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "vault.pem"), filepath.Join(dir, "vault.key")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	return caFile, certFile, keyFile
}

// TestTLS: Vault over HTTPS, verified with ca_cert; without it (and with
// VAULT_SKIP_VERIFY in the environment, which is ignored) the connection is
// refused for the unknown CA.
func TestTLS(t *testing.T) {
	caFile, certFile, keyFile := tlsFiles(t)
	srv := vaulttest.StartTLS(t, certFile, keyFile, caFile)
	if !strings.HasPrefix(srv.Addr, "https://") {
		t.Fatalf("address %s", srv.Addr)
	}
	srv.Mount(t, "transit", "transit", nil)
	srv.Write(t, "transit/keys/ec", map[string]any{"type": "ecdsa-p256"})
	tokenFile := writeFile(t, "token", srv.Token)
	s := configured(t, map[string]any{"address": srv.Addr, "token_file": tokenFile, "ca_cert": caFile})
	ctx := context.Background()
	pub, err := s.Public(ctx, "vault:transit/ec")
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("m"))
	sig, err := s.Sign(ctx, "vault:transit/ec", d[:], keystore.SignOptions{Hash: crypto.SHA256})
	if err != nil || !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), d[:], sig) {
		t.Fatalf("Sign over HTTPS: %v", err)
	}

	t.Setenv("VAULT_SKIP_VERIFY", "true")
	t.Setenv("VAULT_CACERT", caFile)
	err = New().Configure(ctx, configJSON(t, map[string]any{"address": srv.Addr, "token_file": tokenFile}))
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Configure without ca_cert: err = %v, want a certificate error", err)
	}
}
