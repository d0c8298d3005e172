package x509

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

func TestCRLFile(t *testing.T) {
	ca := newCA(t, "ca-p256", "Veil Test CA")
	key := testKey(t, "p256")
	revoked := ca.issue(t, leaf{key: key, dns: []string{"db2.example.com"}})
	good := ca.issue(t, leaf{key: key, dns: []string{"db2.example.com"}})
	crlPath := filepath.Join(t.TempDir(), "ca.crl")
	if err := os.WriteFile(crlPath, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: ca.crl(t, revoked)}), 0o644); err != nil {
		t.Fatal(err)
	}
	data, _, err := SignedAuthData(key, octets, HashSHA2_256)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, policy := range []string{"prefer", "require"} {
		p := configured(t, map[string]any{"revocation": policy, "crls": []string{crlPath}}, ca)
		wantErr(t, p.Verify(ctx, verifyReq(fqdn("db2.example.com"), 14, data, revoked)), "certificate for db2.example.com is revoked", "CRL file")
		if err := p.Verify(ctx, verifyReq(fqdn("db2.example.com"), 14, data, good)); err != nil {
			t.Errorf("%s: good certificate: %v", policy, err)
		}
	}
	off := configured(t, map[string]any{"revocation": "off", "crls": []string{crlPath}}, ca)
	if err := off.Verify(ctx, verifyReq(fqdn("db2.example.com"), 14, data, revoked)); err != nil {
		t.Errorf("revocation off: %v", err)
	}
	// Without any source, "require" refuses and "prefer" accepts.
	none := ca.issue(t, leaf{key: key, dns: []string{"db2.example.com"}})
	req := configured(t, map[string]any{"revocation": "require"}, ca)
	wantErr(t, req.Verify(ctx, verifyReq(fqdn("db2.example.com"), 14, data, none)), "unknown", "require")
	pref := configured(t, map[string]any{"revocation": "prefer"}, ca)
	if err := pref.Verify(ctx, verifyReq(fqdn("db2.example.com"), 14, data, none)); err != nil {
		t.Errorf("prefer, no source: %v", err)
	}
}

// TestCRLDistributionPoint serves the CRL over HTTP at the URL in the
// certificates' CRL DP extension and checks it is fetched once (cached
// until nextUpdate).
func TestCRLDistributionPoint(t *testing.T) {
	ca := newCA(t, "ca-p256", "Veil Test CA")
	key := testKey(t, "p256")
	var crlDER atomic.Value
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Write(crlDER.Load().([]byte))
	}))
	defer srv.Close()
	dp := []string{srv.URL + "/ca.crl"}
	revoked := ca.issue(t, leaf{key: key, dns: []string{"db2.example.com"}, crlDP: dp})
	good := ca.issue(t, leaf{key: key, dns: []string{"db2.example.com"}, crlDP: dp})
	crlDER.Store(ca.crl(t, revoked))
	data, _, err := SignedAuthData(key, octets, HashSHA2_256)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p := configured(t, map[string]any{"revocation": "require"}, ca)
	wantErr(t, p.Verify(ctx, verifyReq(fqdn("db2.example.com"), 14, data, revoked)), "is revoked", "CRL from "+dp[0])
	if err := p.Verify(ctx, verifyReq(fqdn("db2.example.com"), 14, data, good)); err != nil {
		t.Errorf("good certificate: %v", err)
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("CRL fetched %d times, want 1 (cached until nextUpdate)", n)
	}

	// A CRL signed by another CA is not trusted: unknown under "require".
	other := newCA(t, "ca2-p256", "Veil Test CA") // same name, other key
	crlDER.Store(other.crl(t))
	p2 := configured(t, map[string]any{"revocation": "require"}, ca)
	wantErr(t, p2.Verify(ctx, verifyReq(fqdn("db2.example.com"), 14, data, good)), "not signed by the certificate's issuer")
}

// ocspResponder is `openssl ocsp` acting as the responder for ca (its
// index.txt in a temp dir), behind an HTTP server on 127.0.0.1: each POST
// body goes to openssl as -reqin and its -respout comes back. (openssl's
// own -port listener binds every interface; this keeps the test on
// loopback.)
type ocspResponder struct {
	srv *httptest.Server
	url string
	dir string
}

// index writes the responder's index.txt: good and revoked certificates;
// any other is unknown to it.
func (r *ocspResponder) index(t *testing.T, good, revoked []*x509.Certificate) {
	t.Helper()
	var index strings.Builder
	for _, c := range good {
		index.WriteString(indexLine(c, false))
	}
	for _, c := range revoked {
		index.WriteString(indexLine(c, true))
	}
	if err := os.WriteFile(filepath.Join(r.dir, "index.txt"), []byte(index.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

func indexLine(c *x509.Certificate, revoked bool) string {
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

// startOCSP signs answers with signer's key and certificate (the CA
// itself, or a responder it delegated to).
func startOCSP(t *testing.T, ca, signer *testCA) *ocspResponder {
	t.Helper()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed (Debian package openssl)")
	}
	dir := t.TempDir()
	keyDER, err := x509.MarshalPKCS8PrivateKey(signer.key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/ocsp-request" {
			http.Error(w, "want a POSTed application/ocsp-request", http.StatusBadRequest)
			return
		}
		i := n.Add(1)
		reqPath, respPath := filepath.Join(dir, fmt.Sprintf("req%d.der", i)), filepath.Join(dir, fmt.Sprintf("resp%d.der", i))
		if err := os.WriteFile(reqPath, body, 0o600); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		out, err := exec.Command(openssl, "ocsp", "-index", filepath.Join(dir, "index.txt"),
			"-rsigner", signer.path, "-rkey", filepath.Join(dir, "ca.key"), "-CA", ca.path, "-nmin", "10",
			"-reqin", reqPath, "-respout", respPath).CombinedOutput()
		resp, rerr := os.ReadFile(respPath)
		if err != nil || rerr != nil {
			t.Errorf("openssl ocsp: %v %v: %s", err, rerr, out)
			http.Error(w, "responder failed", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/ocsp-response")
		w.Write(resp)
	}))
	t.Cleanup(srv.Close)
	return &ocspResponder{srv: srv, url: srv.URL, dir: dir}
}

func (r *ocspResponder) stop() { r.srv.Close() }

// TestOCSPOpenSSL asks a real `openssl ocsp` responder about a good, a
// revoked and an unknown certificate under each policy, checks the nonce
// is echoed and that answers are cached until nextUpdate.
func TestOCSPOpenSSL(t *testing.T) {
	ca := newCA(t, "ca-p256", "Veil Test CA")
	key := testKey(t, "p256")
	// The URL is known before the certificates carrying it are issued.
	resp := startOCSP(t, ca, ca)
	url := []string{resp.url}
	good := ca.issue(t, leaf{key: key, cn: "good", dns: []string{"db2.example.com"}, ocsp: url})
	revoked := ca.issue(t, leaf{key: key, cn: "revoked", dns: []string{"db2.example.com"}, ocsp: url})
	unknown := ca.issue(t, leaf{key: key, cn: "unknown", dns: []string{"db2.example.com"}, ocsp: url})
	resp.index(t, []*x509.Certificate{good}, []*x509.Certificate{revoked})
	data, _, err := SignedAuthData(key, octets, HashSHA2_256)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// The nonce goes out and comes back.
	p := configured(t, map[string]any{"revocation": "require"}, ca)
	r, err := p.queryOCSP(ctx, p.cfg, resp.url, good, ca.cert)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != ocsp.Good || responseNonce(r) == nil || r.NextUpdate.IsZero() {
		t.Fatalf("openssl answered status %d, nonce %x, nextUpdate %v", r.Status, responseNonce(r), r.NextUpdate)
	}
	if err := p.Verify(ctx, verifyReq(fqdn("db2.example.com"), 14, data, good)); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		policy                  string
		good, revoked, unknownC string // "" = accepted, else part of the error
	}{
		{"off", "", "", ""},
		{"prefer", "", "OCSP responder " + url[0] + " says revoked", ""},
		{"require", "", "OCSP responder " + url[0] + " says revoked", "does not know the certificate"},
	} {
		p := configured(t, map[string]any{"revocation": tc.policy, "ocsp_timeout": "2s"}, ca)
		for _, c := range []struct {
			cert *x509.Certificate
			want string
		}{{good, tc.good}, {revoked, tc.revoked}, {unknown, tc.unknownC}} {
			err := p.Verify(ctx, verifyReq(fqdn("db2.example.com"), 14, data, c.cert))
			if c.want == "" {
				if err != nil {
					t.Errorf("%s, %s: %v", tc.policy, c.cert.Subject.CommonName, err)
				}
				continue
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s, %s: err = %v, want %q", tc.policy, c.cert.Subject.CommonName, err, c.want)
			}
		}
	}

	// Answers are cached until nextUpdate: with the responder gone, the
	// plugin that already asked still knows; a fresh one does not.
	resp.stop()
	if err := p.Verify(ctx, verifyReq(fqdn("db2.example.com"), 14, data, good)); err != nil {
		t.Errorf("cached OCSP answer not used: %v", err)
	}
	fresh := configured(t, map[string]any{"revocation": "require", "ocsp_timeout": "1s"}, ca)
	wantErr(t, fresh.Verify(ctx, verifyReq(fqdn("db2.example.com"), 14, data, good)), "unknown", "OCSP "+url[0])
	prefer := configured(t, map[string]any{"revocation": "prefer", "ocsp_timeout": "1s"}, ca)
	if err := prefer.Verify(ctx, verifyReq(fqdn("db2.example.com"), 14, data, good)); err != nil {
		t.Errorf("prefer with the responder down: %v", err)
	}
}

// TestOCSPNonceMismatch: a response carrying another request's nonce is
// refused (a replayed answer).
func TestOCSPNonceMismatch(t *testing.T) {
	ca := newCA(t, "ca-p256", "Veil Test CA")
	key := testKey(t, "p256")
	nonce := []byte{0x04, 0x02, 0xde, 0xad}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, err := ocsp.ParseRequest(body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		var ext []pkix.Extension
		if nonce != nil {
			ext = []pkix.Extension{{Id: oidOCSPNonce, Value: nonce}}
		}
		der, err := ocsp.CreateResponse(ca.cert, ca.cert, ocsp.Response{
			Status: ocsp.Good, SerialNumber: req.SerialNumber, ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour),
			ExtraExtensions: ext,
		}, ca.key)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Write(der)
	}))
	defer srv.Close()
	p := configured(t, map[string]any{"revocation": "require"}, ca)
	cert := ca.issue(t, leaf{key: key, dns: []string{"db2.example.com"}, ocsp: []string{srv.URL}})
	_, err := p.queryOCSP(context.Background(), p.cfg, srv.URL, cert, ca.cert)
	wantErr(t, err, "nonce does not match")
	nonce = nil // a responder without nonces (pre-signed answers) is accepted
	if _, err := p.queryOCSP(context.Background(), p.cfg, srv.URL, cert, ca.cert); err != nil {
		t.Fatal(err)
	}
}

// TestOCSPDelegatedResponder: answers signed by a responder certificate
// the CA issued with id-kp-OCSPSigning are accepted; answers signed by any
// other certificate of the same CA are not.
func TestOCSPDelegatedResponder(t *testing.T) {
	ca := newCA(t, "ca-p256", "Veil Test CA")
	key := testKey(t, "p256")
	for _, tc := range []struct {
		eku  []x509.ExtKeyUsage
		want string
	}{
		{[]x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}, ""},
		{[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, "not authorised for OCSP signing"},
	} {
		rkey := testKey(t, "p384")
		rcert := ca.issue(t, leaf{key: rkey, cn: "Veil OCSP responder", eku: tc.eku})
		rpath := filepath.Join(t.TempDir(), "responder.pem")
		if err := os.WriteFile(rpath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rcert.Raw}), 0o644); err != nil {
			t.Fatal(err)
		}
		resp := startOCSP(t, ca, &testCA{cert: rcert, key: rkey, path: rpath})
		cert := ca.issue(t, leaf{key: key, cn: "gw", dns: []string{"db2.example.com"}, ocsp: []string{resp.url}})
		resp.index(t, []*x509.Certificate{cert}, nil)
		data, _, err := SignedAuthData(key, octets, HashSHA2_256)
		if err != nil {
			t.Fatal(err)
		}
		p := configured(t, map[string]any{"revocation": "require"}, ca)
		err = p.Verify(context.Background(), verifyReq(fqdn("db2.example.com"), 14, data, cert))
		if tc.want == "" {
			if err != nil {
				t.Errorf("EKU %v: %v", tc.eku, err)
			}
			continue
		}
		wantErr(t, err, tc.want)
	}
}
