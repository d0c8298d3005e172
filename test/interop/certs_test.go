package interop

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
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// certs are the files of certificate authentication on both sides: each
// side's certificate and key, and the CA it trusts for its peer.
type certs struct {
	VeilCert, VeilKey, VeilCA       string
	CharonCert, CharonKey, CharonCA string
}

// pkiCA is a test certificate authority (ECDSA P-256) writing PEM files.
type pkiCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	path string
}

func newPKICA(t *testing.T, dir, name string) *pkiCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &pkiCA{cert: cert, key: key, path: filepath.Join(dir, name+".pem")}
	writePEM(t, ca.path, "CERTIFICATE", der)
	return ca
}

// issue writes NAME.pem and NAME.key (PKCS#8) for the FQDN id, with a key
// of the given kind: "ecdsa-p256", "rsa" (2048 bits) or "ed25519".
func (ca *pkiCA) issue(t *testing.T, dir, name, id, kind string) (certPath, keyPath string) {
	t.Helper()
	var key crypto.Signer
	var err error
	switch kind {
	case "ecdsa-p256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ed25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: id}, DNSNames: []string{id},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	writePEM(t, certPath, "CERTIFICATE", der)
	writePEM(t, keyPath, "PRIVATE KEY", pk)
	return certPath, keyPath
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// sameCA issues both sides' certificates (keys of kind) from one CA that
// both trust.
func sameCA(t *testing.T, kind string) *certs {
	c, _ := sameCAWith(t, kind)
	return c
}

// sameCAWith is sameCA, also returning the CA to issue more.
func sameCAWith(t *testing.T, kind string) (*certs, *pkiCA) {
	dir := t.TempDir()
	ca := newPKICA(t, dir, "ca")
	c := &certs{VeilCA: ca.path, CharonCA: ca.path}
	c.VeilCert, c.VeilKey = ca.issue(t, dir, "veil", veilID, kind)
	c.CharonCert, c.CharonKey = ca.issue(t, dir, "charon", charonID, kind)
	return c, ca
}

var certKinds = []struct {
	kind       string
	charonAuth string // charon's auth constraint, both rounds
	scheme     string // the RFC 7427 signature scheme as charon logs it (a pattern)
}{
	// veil signs with the strongest SHA-2 both announce, charon with the
	// one matching its key's strength.
	{"ecdsa-p256", "pubkey", `ECDSA_WITH_SHA(256|384|512)_DER`},
	// charon signs RSA with PKCS#1 v1.5 unless told otherwise; ike:rsa/pss
	// makes it sign with RSASSA-PSS and demand it from veil (veil always
	// signs RSA with PSS).
	{"rsa-pss", "ike:rsa/pss-sha256-sha384-sha512", `RSA_EMSA_PSS_SHA2_(256_SALT_32|384_SALT_48|512_SALT_64)`},
	{"ed25519", "pubkey", `ED25519`},
}

// Certificate authentication with charon, each key type, each side
// initiating: the IKE SA is up on both sides, charon verified veil's
// signature and made its own with the expected scheme (veil verified
// charon's, or it would not be up), and traffic goes through the child.
func TestCertificatesWithCharon(t *testing.T) {
	for _, k := range certKinds {
		for _, veilStarts := range []bool{true, false} {
			name := k.kind + "/charon-initiated"
			if veilStarts {
				name = k.kind + "/veil-initiated"
			}
			t.Run(name, func(t *testing.T) {
				kind := strings.TrimSuffix(k.kind, "-pss")
				l := newLab(t, setup{Mode: "tunnel", IKEProposal: "aes256gcm16-prfsha256-x25519", ESPProposal: "aes256gcm16",
					VeilStarts: veilStarts, Certs: sameCA(t, kind), CharonAuth: k.charonAuth})
				if !veilStarts {
					l.charonInitiate()
				}
				l.waitPaired("IKE SA with certificates established on both sides", nil)
				log := l.charon.log()
				for _, want := range []string{
					`authentication of '` + regexp.QuoteMeta(veilID) + `' with ` + k.scheme + ` successful`,
					`authentication of '` + regexp.QuoteMeta(charonID) + `' \(myself\) with ` + k.scheme + ` successful`,
				} {
					if !regexp.MustCompile(want).MatchString(log) {
						t.Errorf("charon's log does not match %q", want)
					}
				}
				l.ping()
			})
		}
	}
}

// charon's certificate comes from a CA veil does not trust: veil refuses
// it, whichever side initiates, and says why in veilctl status.
func TestUntrustedCAWithCharon(t *testing.T) {
	for _, veilStarts := range []bool{true, false} {
		name := "charon-initiated"
		if veilStarts {
			name = "veil-initiated"
		}
		t.Run(name, func(t *testing.T) {
			c := sameCA(t, "ecdsa-p256")
			dir := t.TempDir()
			other := newPKICA(t, dir, "other")
			c.CharonCert, c.CharonKey = other.issue(t, dir, "charon", charonID, "ecdsa-p256")
			c.CharonCA = c.VeilCA // charon trusts veil's CA; veil not charon's
			l := newLab(t, setup{Mode: "tunnel", IKEProposal: "aes256gcm16-prfsha256-x25519", ESPProposal: "aes256gcm16",
				VeilStarts: veilStarts, Certs: c})
			if !veilStarts {
				if out, err := l.charon.swanctlErr("--initiate", "--child", "net", "--timeout", "10"); err == nil {
					t.Fatalf("charon's initiate succeeded:\n%s", out)
				}
			}
			want := regexp.MustCompile(`does not lead to a configured CA.*issued by "CN=other"`)
			var out string
			for deadline := time.Now().Add(20 * time.Second); !want.MatchString(out); time.Sleep(100 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("veilctl status never said charon's CA is not trusted:\n%s", out)
				}
				out = l.veil.ctl("status", "interop")
			}
			if n := len(l.veil.sas()); n != 0 {
				t.Errorf("veil has %d IKE SAs with an untrusted peer", n)
			}
		})
	}
	// The other way round: veil's certificate from a CA charon does not
	// trust. charon refuses it and veil names the peer's refusal.
	t.Run("charon-refuses-veil", func(t *testing.T) {
		c := sameCA(t, "ecdsa-p256")
		dir := t.TempDir()
		other := newPKICA(t, dir, "other")
		c.VeilCert, c.VeilKey = other.issue(t, dir, "veil", veilID, "ecdsa-p256")
		l := newLab(t, setup{Mode: "tunnel", IKEProposal: "aes256gcm16-prfsha256-x25519", ESPProposal: "aes256gcm16",
			VeilStarts: true, Certs: c})
		var out string
		for deadline := time.Now().Add(20 * time.Second); !strings.Contains(out, "AUTHENTICATION_FAILED"); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("veilctl status never said charon refused veil's authentication:\n%s", out)
			}
			out = l.veil.ctl("status", "interop")
		}
		if log := l.charon.log(); !strings.Contains(log, "no trusted") {
			t.Errorf("charon's log does not say it found no trusted key for veil")
		}
		if n := len(l.veil.sas()) + len(l.charon.sas()); n != 0 {
			t.Errorf("%d IKE SAs left after a refused certificate", n)
		}
	})
}
