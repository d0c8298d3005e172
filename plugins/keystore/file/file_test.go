package file

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veil-ipsec/veil/sdk/keystore"
	"github.com/veil-ipsec/veil/sdk/plugintest"
)

func write(t *testing.T, dir, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return "file:" + p
}

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// keyFiles writes one key of each supported encoding.
func keyFiles(t *testing.T, dir string) []string {
	t.Helper()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(ec)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKCS8PrivateKey(edKey)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ec384DER, _ := x509.MarshalPKCS8PrivateKey(ec384)
	return []string{
		write(t, dir, "ec.pem", pemOf("EC PRIVATE KEY", ecDER), 0o600),
		write(t, dir, "rsa.pem", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), 0o600),
		write(t, dir, "ed.pem", pemOf("PRIVATE KEY", edDER), 0o600),
		write(t, dir, "ec384-pkcs8.pem", pemOf("PRIVATE KEY", ec384DER), 0o400),
	}
}

func TestConformance(t *testing.T) {
	dir := t.TempDir()
	secret := []byte("a secret of 32 bytes, no newline")
	plugintest.RunKeystoreConformance(t, New(), plugintest.KeystoreCase{
		SecretRef:  write(t, dir, "s.psk", append(secret, '\n'), 0o600),
		Secret:     secret,
		SignerRefs: keyFiles(t, dir),
		MissingRef: "file:" + filepath.Join(dir, "missing"),
	})
}

func TestPermissionsRefused(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o602} {
		ref := write(t, dir, "s", []byte("0123456789abcdef"), mode)
		_, err := New().Secret(context.Background(), ref)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: err = %v, want a refusal naming chmod 600", mode, err)
		}
	}
}

func TestReferences(t *testing.T) {
	s := New()
	for _, ref := range []string{"vault:x", "file:relative/path", "file:"} {
		if _, err := s.Secret(context.Background(), ref); err == nil {
			t.Errorf("Secret(%q) succeeded", ref)
		}
	}
	_, err := s.Secret(context.Background(), "file:/nonexistent/veil")
	if !errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("missing file: err = %v, want ErrNotFound", err)
	}
	dir := t.TempDir()
	if _, err := s.Secret(context.Background(), "file:"+dir); err == nil || !strings.Contains(err.Error(), "regular file") {
		t.Errorf("directory: err = %v", err)
	}
	crlf := write(t, dir, "crlf", []byte("0123456789abcdef\r\n"), 0o600)
	got, err := s.Secret(context.Background(), crlf)
	if err != nil || string(got) != "0123456789abcdef" {
		t.Errorf("CRLF file: %q, %v", got, err)
	}
}

func TestParsePrivateKeyErrors(t *testing.T) {
	for name, in := range map[string][]byte{
		"empty":     nil,
		"not pem":   []byte("hello"),
		"cert only": pemOf("CERTIFICATE", []byte{1, 2, 3}),
		"garbage":   pemOf("PRIVATE KEY", []byte{0x30, 0x03, 1, 2, 3}),
		"encrypted": pemOf("ENCRYPTED PRIVATE KEY", []byte{1}),
	} {
		if _, err := ParsePrivateKey(in); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}
