package e2e

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/test/netns"
)

// Revocation checked over the network between two veild, both with
// revocation = "require" and no CRL files, so the only sources are the ones
// the certificates name: a real `openssl ocsp` responder in their AIA, or an
// HTTP CRL distribution point. The URL is on loopback and each namespace
// runs its own responder or CRL server there with the same data: the
// userspace dataplane steers everything addressed to the peer into the
// tunnel, so a PKI server on the peer's side of the link would answer
// through a child not yet up.
// A good certificate passes (with "require", only a definite "good" answer
// lets the IKE SA come up); a revoked one is refused and `veilctl status`
// says why.
func TestRevocationOverNetwork(t *testing.T) {
	for _, source := range []string{"ocsp", "crl-distribution-point"} {
		for _, revoked := range []bool{false, true} {
			name := source + "/good"
			if revoked {
				name = source + "/revoked"
			}
			t.Run(name, func(t *testing.T) {
				p := newDirectPair(t)
				dir := t.TempDir()
				ca := newTestCA(t, dir)
				const port = "8880"
				url := "http://" + net.JoinHostPort("127.0.0.1", port) + "/"
				if source == "ocsp" {
					ca.ocspURL = url
				} else {
					ca.crlURL = url + "ca.crl"
				}
				ac, ak := ca.issue(t, dir, "a", "a.test", "ecdsa-p256")
				bc, bk := ca.issue(t, dir, "b", "b.test", "ecdsa-p256")
				good, bad := []*x509.Certificate{readCert(t, ac)}, []*x509.Certificate(nil)
				if revoked {
					bad = append(bad, readCert(t, bc))
				} else {
					good = append(good, readCert(t, bc))
				}
				for _, ns := range []*netns.NS{p.a, p.b} {
					if source == "ocsp" {
						startOpenSSLOCSP(t, ns, ca, port, good, bad)
					} else {
						serveCRL(t, ns, net.JoinHostPort("127.0.0.1", port), "/ca.crl", ca.crl(t, bad...))
					}
				}

				p.db = startDaemonConfig(t, p.b, p.cb.Socket, requireRevocation(t, certConfig(p.cb.Socket, p.bAddr, p.aAddr, "b.test", "a.test", bc, bk, ca.path, "none")))
				p.da = startDaemonConfig(t, p.a, p.ca.Socket, requireRevocation(t, certConfig(p.ca.Socket, p.aAddr, p.bAddr, "a.test", "b.test", ac, ak, ca.path, "start")))
				if !revoked {
					p.da.waitEstablished()
					p.db.waitEstablished()
					ping(t, p.a, p.bAddr)
					return
				}
				// b checked a's good certificate and answered; a finds
				// b's revoked and refuses it.
				want := "OCSP responder " + url + " says revoked"
				if source != "ocsp" {
					want = "listed in CRL from " + ca.crlURL
				}
				var out string
				netns.WaitFor(t, "a refusing b's revoked certificate", 30*time.Second, func() bool {
					out = p.da.ctl("status", "lab")
					return strings.Contains(out, "revoked") && strings.Contains(out, want)
				})
				if n := len(p.da.sas().IKESAs); n != 0 {
					t.Errorf("a has %d IKE SAs with a revoked peer:\n%s", n, out)
				}
			})
		}
	}
}

// requireRevocation turns certConfig's remote revocation = "off" into
// "require".
func requireRevocation(t *testing.T, cfg string) string {
	t.Helper()
	const off = `revocation = "off"`
	if strings.Count(cfg, off) != 1 {
		t.Fatalf("configuration has no single %s:\n%s", off, cfg)
	}
	return strings.Replace(cfg, off, `revocation = "require"`, 1)
}

// startOpenSSLOCSP runs `openssl ocsp` as ca's responder (signing with the
// CA's own key) on port in ns, knowing the good and revoked certificates;
// it returns once it listens.
func startOpenSSLOCSP(t *testing.T, ns *netns.NS, ca *testCA, port string, good, revoked []*x509.Certificate) {
	t.Helper()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("needs openssl (Debian package openssl)")
	}
	dir := t.TempDir()
	var index strings.Builder
	for _, c := range good {
		index.WriteString(ocspIndexLine(c, false))
	}
	for _, c := range revoked {
		index.WriteString(ocspIndexLine(c, true))
	}
	indexPath := filepath.Join(dir, "index.txt")
	if err := os.WriteFile(indexPath, []byte(index.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	cmd := ns.Command(context.Background(), openssl, "ocsp", "-index", indexPath, "-port", port,
		"-rsigner", ca.path, "-rkey", ca.keyPath, "-CA", ca.path, "-nmin", "10", "-ignore_err")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("openssl ocsp:\n%s", log.String())
		}
	})
	// Watch the listening socket rather than connect: openssl serves one
	// connection at a time and would wait forever on a probe that sends
	// nothing.
	netns.WaitFor(t, "openssl ocsp listening", 10*time.Second, func() bool {
		out, _ := ns.Output("ss", "-Hltn", "sport = :"+port)
		return strings.Contains(out, "LISTEN")
	})
}

// ocspIndexLine is one line of an openssl CA database (index.txt): V for
// valid, R for revoked an hour ago.
func ocspIndexLine(c *x509.Certificate, revoked bool) string {
	serial := fmt.Sprintf("%X", c.SerialNumber)
	if len(serial)%2 == 1 {
		serial = "0" + serial
	}
	exp := c.NotAfter.UTC().Format("060102150405Z")
	if revoked {
		return fmt.Sprintf("R\t%s\t%s\t%s\tunknown\t/CN=%s\n", exp, time.Now().Add(-time.Hour).UTC().Format("060102150405Z"), serial, c.Subject.CommonName)
	}
	return fmt.Sprintf("V\t%s\t\t%s\tunknown\t/CN=%s\n", exp, serial, c.Subject.CommonName)
}

// serveCRL serves crl (DER) at path on addr, from a listener opened inside
// ns.
func serveCRL(t *testing.T, ns *netns.NS, addr, path string, crl []byte) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Write(crl)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}
