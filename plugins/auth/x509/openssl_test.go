package x509

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// openssl runs the openssl command line tool in dir.
func openssl(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed (Debian package openssl)")
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl %v: %v: %s", args, err, stderr.String())
	}
	return out
}

// opensslCases: how OpenSSL signs and verifies what RFC 7427 names, and the
// AlgorithmIdentifier (testdata/rfc7427.txt) a peer sends with it.
var opensslCases = []struct {
	key, vector string
	hash        uint16
	args        []string // openssl dgst / pkeyutl options
	pkeyutl     bool
}{
	{"rsa2048", "rsassa-pss-sha256", HashSHA2_256, []string{"-sha256", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"}, false},
	{"rsa3072", "rsassa-pss-sha512", HashSHA2_512, []string{"-sha512", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"}, false},
	{"p256", "ecdsa-with-sha256", HashSHA2_256, []string{"-sha256"}, false},
	{"p521", "ecdsa-with-sha512", HashSHA2_512, []string{"-sha512"}, false},
	{"ed25519", "ed25519", HashIdentity, []string{"-rawin"}, true},
}

// TestOpenSSLInterop: signatures made by OpenSSL verify here, and
// SignedAuthData's signatures verify with OpenSSL.
func TestOpenSSLInterop(t *testing.T) {
	vectors := readVectors(t)
	ca := newCA(t, "ca-p256", "Veil Test CA")
	p := configured(t, nil, ca)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "octets"), octets, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range opensslCases {
		t.Run(tc.key, func(t *testing.T) {
			key := testKey(t, tc.key)
			der, err := x509.MarshalPKCS8PrivateKey(key)
			if err != nil {
				t.Fatal(err)
			}
			pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
			if err != nil {
				t.Fatal(err)
			}
			keyPath, pubPath := filepath.Join(dir, tc.key+".key"), filepath.Join(dir, tc.key+".pub")
			os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
			os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600)
			cert := ca.issue(t, leaf{key: key, dns: []string{"gw.example.com"}})

			var sig []byte
			if tc.pkeyutl {
				sig = openssl(t, dir, append([]string{"pkeyutl", "-sign", "-inkey", keyPath, "-in", "octets"}, tc.args...)...)
			} else {
				sig = openssl(t, dir, append(append([]string{"dgst"}, tc.args...), "-sign", keyPath, "octets")...)
			}
			data := rfc7427Data(vectors[tc.vector], sig)
			if err := p.Verify(context.Background(), verifyReq(fqdn("gw.example.com"), 14, data, cert)); err != nil {
				t.Errorf("OpenSSL's signature: %v", err)
			}

			ours, _, err := SignedAuthData(key, octets, tc.hash)
			if err != nil {
				t.Fatal(err)
			}
			n := int(ours[0])
			if !bytes.Equal(ours[1:1+n], vectors[tc.vector]) {
				t.Errorf("AlgorithmIdentifier %x, want %x", ours[1:1+n], vectors[tc.vector])
			}
			if err := os.WriteFile(filepath.Join(dir, "sig"), ours[1+n:], 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.pkeyutl {
				openssl(t, dir, append([]string{"pkeyutl", "-verify", "-pubin", "-inkey", pubPath, "-in", "octets", "-sigfile", "sig"}, tc.args...)...)
			} else {
				openssl(t, dir, append(append([]string{"dgst"}, tc.args...), "-verify", pubPath, "-signature", "sig", "octets")...)
			}
		})
	}
}
