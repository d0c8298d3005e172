package eap_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/plugins/auth/eap"
	"github.com/veil-ipsec/veil/sdk/auth"
	"github.com/veil-ipsec/veil/sdk/plugintest"
)

// TestEAPConformance runs the SDK's EAP suite on the bundled plugin over
// gRPC, one plugin playing server and client: MSCHAPv2 and MD5 with
// passwords, TLS with certificates from one CA (mallory's from another).
func TestEAPConformance(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := "file:" + write("alice.pw", "correct horse battery\n", 0o600)
	bad := "file:" + write("mallory.pw", "wrong horse\n", 0o600)
	ca, gwCert, gwKey, aliceCert, aliceKey := testPKI(t, write, "")
	_, _, _, malloryCert, malloryKey := testPKI(t, write, "other-")

	conns := map[string]eap.ConnConfig{
		"gw-tls":      {Method: "eap-tls", Certificate: gwCert, Key: gwKey, CACerts: []string{ca}},
		"alice-tls":   {Method: "eap-tls", EAPID: "alice", Certificate: aliceCert, Key: aliceKey, CACerts: []string{ca}},
		"mallory-tls": {Method: "eap-tls", EAPID: "alice", Certificate: malloryCert, Key: malloryKey, CACerts: []string{ca}},
	}
	for _, m := range []string{"eap-mschapv2", "eap-md5"} {
		short := strings.TrimPrefix(m, "eap-")
		conns["gw-"+short] = eap.ConnConfig{Method: m, EAPID: "%any"}
		conns["alice-"+short] = eap.ConnConfig{Method: m, EAPID: "alice", Secret: good}
		conns["mallory-"+short] = eap.ConnConfig{Method: m, EAPID: "alice", Secret: bad}
	}
	cfg, err := json.Marshal(eap.Config{Users: map[string]string{"alice": good}, AllowMD5: true, Connections: conns})
	if err != nil {
		t.Fatal(err)
	}
	var cases []plugintest.EAPCase
	for _, m := range []string{"eap-mschapv2", "eap-md5", "eap-tls"} {
		short := strings.TrimPrefix(m, "eap-")
		cases = append(cases, plugintest.EAPCase{
			Name:        m,
			Config:      cfg,
			Server:      &auth.EAPRequest{Connection: "gw-" + short, Method: m, Server: true},
			Client:      &auth.EAPRequest{Connection: "alice-" + short, Method: m},
			WrongClient: &auth.EAPRequest{Connection: "mallory-" + short, Method: m},
			Identity:    "alice",
			NoMSK:       m == "eap-md5",
		})
	}
	plugintest.RunEAPConformance(t, eap.New(), cases)
}

// testPKI makes a CA with a server certificate (gw.example.com) and a
// client certificate (alice), as files: CA, server cert, server key
// reference, client cert, client key reference.
func testPKI(t *testing.T, write func(name, data string, mode os.FileMode) string, prefix string) (ca, srvCert, srvKey, cliCert, cliKey string) {
	t.Helper()
	pemOf := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: prefix + "veil test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	ca = write(prefix+"ca.pem", pemOf("CERTIFICATE", caDER), 0o644)
	leaf := func(name string, eku x509.ExtKeyUsage, serial int64) (string, string) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{eku},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(prefix+name+".pem", pemOf("CERTIFICATE", der), 0o644),
			"file:" + write(prefix+name+".key", pemOf("PRIVATE KEY", kder), 0o600)
	}
	srvCert, srvKey = leaf("gw.example.com", x509.ExtKeyUsageServerAuth, 2)
	cliCert, cliKey = leaf("alice", x509.ExtKeyUsageClientAuth, 3)
	return ca, srvCert, srvKey, cliCert, cliKey
}
