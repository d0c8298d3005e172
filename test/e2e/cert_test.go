package e2e

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/test/netns"
)

// testCA issues certificates for the tests' hosts.
type testCA struct {
	cert    *x509.Certificate
	key     crypto.Signer
	path    string // the CA certificate (PEM)
	keyPath string // its key (PKCS#8 PEM), for `openssl ocsp`

	// Where certificates issued from now on send their verifiers for
	// revocation status: an OCSP responder (AIA) and a CRL distribution
	// point, both HTTP URLs; empty for none.
	ocspURL, crlURL string
}

func newTestCA(t *testing.T, dir string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "veil test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	path, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	pk, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600)
	return &testCA{cert: cert, key: key, path: path, keyPath: keyPath}
}

// issue writes NAME.pem and NAME.key (PKCS#8, mode 0600) for a host whose
// certificate names dnsName, with a key of the given kind.
func (ca *testCA) issue(t *testing.T, dir, name, dnsName, kind string) (certPath, keyPath string) {
	t.Helper()
	var key crypto.Signer
	switch kind {
	case "ecdsa-p256":
		key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ecdsa-p384":
		key, _ = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ed25519":
		_, key, _ = ed25519.GenerateKey(rand.Reader)
	case "rsa":
		key, _ = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("key kind %s", kind)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: dnsName}, DNSNames: []string{dnsName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature}
	if ca.ocspURL != "" {
		tmpl.OCSPServer = []string{ca.ocspURL}
	}
	if ca.crlURL != "" {
		tmpl.CRLDistributionPoints = []string{ca.crlURL}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := x509.MarshalPKCS8PrivateKey(key)
	certPath, keyPath = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600)
	return certPath, keyPath
}

// revoke writes a CRL (PEM) from ca that revokes the certificate in certPath.
func (ca *testCA) revoke(t *testing.T, dir, certPath string) string {
	t.Helper()
	path := filepath.Join(dir, "ca.crl")
	os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: ca.crl(t, readCert(t, certPath))}), 0o644)
	return path
}

// crl returns a CRL (DER) from ca that revokes the certificates given (none
// for an empty one).
func (ca *testCA) crl(t *testing.T, revoked ...*x509.Certificate) []byte {
	t.Helper()
	var entries []x509.RevocationListEntry
	for _, c := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: time.Now().Add(-time.Minute)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(time.Hour),
		RevokedCertificateEntries: entries,
	}, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func certConfig(sock, local, remote, lid, rid, cert, key, ca, start string) string {
	return daemonBlock(sock, local) + certConnection("lab", local, remote, lid, rid, cert, "file:"+key, ca, start)
}

// daemonBlock is the daemon block of a test veild (control socket, the
// addresses it listens on, debug logging) with the userspace dataplane.
func daemonBlock(sock string, listen ...string) string {
	quoted := make([]string, len(listen))
	for i, a := range listen {
		quoted[i] = strconv.Quote(a)
	}
	return fmt.Sprintf(`
daemon {
  control_socket = %q
  listen         = [%s]
  log_level      = "debug"
}
plugin "dataplane" "userspace" {}
`, sock, strings.Join(quoted, ", "))
}

// certConnection is a transport-mode connection that authenticates both
// ways with certificates: ours (cert, and keyRef for its private key) and
// the peer's, checked against ca without revocation checks.
func certConnection(name, local, remote, lid, rid, cert, keyRef, ca, start string) string {
	return fmt.Sprintf(`
connection %q {
  local_addrs  = [%q]
  remote_addrs = [%q]
  local {
    auth        = "pubkey"
    id          = %q
    certificate = %q
    key         = %q
  }
  remote {
    auth       = "pubkey"
    id         = %q
    cacerts    = [%q]
    revocation = "off"
  }
  child "all" {
    mode         = "transport"
    start_action = %q
  }
}
`, name, local, remote, lid, cert, keyRef, rid, ca, start)
}

// Certificate authentication (RFC 7427 signatures made through the
// keystore, chains checked by the x509 plugin) for each key type, with
// traffic through the SA; a certificate that does not name the peer's ID is
// refused with the reason in veilctl status.
func TestCertificateAuth(t *testing.T) {
	for _, kind := range []string{"ecdsa-p256", "ecdsa-p384", "ed25519", "rsa"} {
		t.Run(kind, func(t *testing.T) {
			p := newDirectPair(t)
			dir := t.TempDir()
			ca := newTestCA(t, dir)
			ac, ak := ca.issue(t, dir, "a", "a.test", kind)
			bc, bk := ca.issue(t, dir, "b", "b.test", kind)
			p.db = startDaemonConfig(t, p.b, p.cb.Socket, certConfig(p.cb.Socket, p.bAddr, p.aAddr, "b.test", "a.test", bc, bk, ca.path, "none"))
			p.da = startDaemonConfig(t, p.a, p.ca.Socket, certConfig(p.ca.Socket, p.aAddr, p.bAddr, "a.test", "b.test", ac, ak, ca.path, "start"))
			p.da.waitEstablished()
			p.db.waitEstablished()
			ping(t, p.a, p.bAddr)
		})
	}
	t.Run("revoked by CRL", func(t *testing.T) {
		p := newDirectPair(t)
		dir := t.TempDir()
		ca := newTestCA(t, dir)
		ac, ak := ca.issue(t, dir, "a", "a.test", "ecdsa-p256")
		bc, bk := ca.issue(t, dir, "b", "b.test", "ecdsa-p256")
		crl := ca.revoke(t, dir, bc)
		p.db = startDaemonConfig(t, p.b, p.cb.Socket, certConfig(p.cb.Socket, p.bAddr, p.aAddr, "b.test", "a.test", bc, bk, ca.path, "none"))
		// a requires revocation status and has a CRL that revokes b.
		aCfg := certConfig(p.ca.Socket, p.aAddr, p.bAddr, "a.test", "b.test", ac, ak, ca.path, "start") + fmt.Sprintf(`
plugin "auth" "x509" {
  config {
    cacerts    = [%q]
    revocation = "require"
    crls       = [%q]
  }
}
`, ca.path, crl)
		p.da = startDaemonConfig(t, p.a, p.ca.Socket, aCfg)
		netns.WaitFor(t, "a refuses b's revoked certificate", 30*time.Second, func() bool {
			return strings.Contains(p.da.ctl("status", "lab"), "revoked")
		})
		if len(p.da.sas().IKESAs) != 0 {
			t.Error("an IKE SA with a revoked peer exists")
		}
	})
	t.Run("wrong identity", func(t *testing.T) {
		p := newDirectPair(t)
		dir := t.TempDir()
		ca := newTestCA(t, dir)
		ac, ak := ca.issue(t, dir, "a", "mallory.test", "ecdsa-p256") // a claims a.test
		bc, bk := ca.issue(t, dir, "b", "b.test", "ecdsa-p256")
		p.db = startDaemonConfig(t, p.b, p.cb.Socket, certConfig(p.cb.Socket, p.bAddr, p.aAddr, "b.test", "a.test", bc, bk, ca.path, "none"))
		p.da = startDaemonConfig(t, p.a, p.ca.Socket, certConfig(p.ca.Socket, p.aAddr, p.bAddr, "a.test", "b.test", ac, ak, ca.path, "start"))
		netns.WaitFor(t, "b's identity failure", 30*time.Second, func() bool {
			out := p.db.ctl("status", "lab")
			return strings.Contains(out, "a.test") && strings.Contains(out, "mallory.test")
		})
	})
}

// startDaemonConfig starts veild in ns with the configuration text given.
func startDaemonConfig(t *testing.T, ns *netns.NS, socket, cfg string) *daemon {
	t.Helper()
	dir := filepath.Dir(socket)
	os.MkdirAll(dir, 0o700)
	path := filepath.Join(dir, "veil.hcl")
	os.WriteFile(path, []byte(cfg), 0o600)
	return startDaemonPath(t, ns, peerConfig{Dir: dir, Socket: socket}, path)
}
