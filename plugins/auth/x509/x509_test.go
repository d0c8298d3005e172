package x509

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/plugins/keystore/file"
	"github.com/veil-ipsec/veil/sdk/auth"
	"github.com/veil-ipsec/veil/sdk/keystore"
	"github.com/veil-ipsec/veil/sdk/plugintest"
)

var octets = []byte("IKE_SA_INIT request | Nr | prf(SK_pi, IDi')")

func fqdn(s string) auth.Identity { return auth.Identity{Type: 2, Data: []byte(s)} }

// configured returns a plugin trusting cas with revocation off unless cfg
// says otherwise.
func configured(t testing.TB, extra map[string]any, cas ...*testCA) *Plugin {
	t.Helper()
	cfg := map[string]any{"revocation": "off"}
	var paths []string
	for _, ca := range cas {
		paths = append(paths, ca.path)
	}
	cfg["cacerts"] = paths
	for k, v := range extra {
		cfg[k] = v
	}
	p := New()
	if err := p.Configure(context.Background(), configJSON(t, cfg)); err != nil {
		t.Fatal(err)
	}
	return p
}

func verifyReq(id auth.Identity, method uint8, data []byte, certs ...*x509.Certificate) *auth.Request {
	req := &auth.Request{Role: auth.Initiator, RemoteID: id, PRF: 5, SignedOctets: octets, Method: method, Data: data}
	for _, c := range certs {
		req.Certs = append(req.Certs, c.Raw)
	}
	return req
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want an error mentioning %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not mention %q", err, p)
		}
	}
}

// TestSignVerifyAlgorithms signs with SignedAuthData for each key type and
// hash and checks Verify accepts it, and refuses other octets or a
// signature by another key of the same type.
func TestSignVerifyAlgorithms(t *testing.T) {
	ca := newCA(t, "ca-p256", "Veil Test CA")
	p := configured(t, nil, ca)
	for _, tc := range []struct {
		key, other string
		hashes     []uint16
	}{
		{"p256", "p256b", []uint16{HashSHA2_256, HashSHA2_384, HashSHA2_512}},
		{"p384", "p256", []uint16{HashSHA2_384}},
		{"p521", "p256", []uint16{HashSHA2_512}},
		{"rsa2048", "rsa3072", []uint16{HashSHA2_256, HashSHA2_384, HashSHA2_512}},
		{"rsa3072", "rsa2048", []uint16{HashSHA2_256}},
		{"ed25519", "ed25519b", []uint16{HashIdentity}},
	} {
		key := testKey(t, tc.key)
		cert := ca.issue(t, leaf{key: key, dns: []string{"gw.example.com"}})
		for _, h := range tc.hashes {
			data, method, err := SignedAuthData(key, octets, h)
			if err != nil {
				t.Fatalf("%s hash %d: %v", tc.key, h, err)
			}
			if method != MethodDigSigned {
				t.Fatalf("method %d, want 14", method)
			}
			if err := p.Verify(context.Background(), verifyReq(fqdn("gw.example.com"), method, data, cert)); err != nil {
				t.Errorf("%s hash %d: Verify: %v", tc.key, h, err)
			}
			bad := verifyReq(fqdn("gw.example.com"), method, data, cert)
			bad.SignedOctets = []byte("other octets")
			wantErr(t, p.Verify(context.Background(), bad), "does not verify")

			otherData, _, err := SignedAuthData(testKey(t, tc.other), octets, h)
			if err != nil {
				t.Fatal(err)
			}
			err = p.Verify(context.Background(), verifyReq(fqdn("gw.example.com"), method, otherData, cert))
			if err == nil {
				t.Errorf("%s hash %d: a signature by key %s was accepted", tc.key, h, tc.other)
			}
		}
	}
}

// TestRFC4754Methods checks methods 9, 10, 11: raw r|s of fixed length.
func TestRFC4754Methods(t *testing.T) {
	ca := newCA(t, "ca-p256", "Veil Test CA")
	p := configured(t, nil, ca)
	for _, tc := range []struct {
		key    string
		method uint8
		hash   crypto.Hash
	}{{"p256", 9, crypto.SHA256}, {"p384", 10, crypto.SHA384}, {"p521", 11, crypto.SHA512}} {
		key := testKey(t, tc.key).(*ecdsa.PrivateKey)
		cert := ca.issue(t, leaf{key: key, dns: []string{"gw.example.com"}})
		h := tc.hash.New()
		h.Write(octets)
		r, s, err := ecdsa.Sign(rand.Reader, key, h.Sum(nil))
		if err != nil {
			t.Fatal(err)
		}
		n := (key.Curve.Params().BitSize + 7) / 8
		sig := make([]byte, 2*n)
		r.FillBytes(sig[:n])
		s.FillBytes(sig[n:])
		if err := p.Verify(context.Background(), verifyReq(fqdn("gw.example.com"), tc.method, sig, cert)); err != nil {
			t.Errorf("method %d: %v", tc.method, err)
		}
		wrong := map[uint8]uint8{9: 10, 10: 11, 11: 9}[tc.method] // another curve's method
		wantErr(t, p.Verify(context.Background(), verifyReq(fqdn("gw.example.com"), wrong, sig, cert)), "needs an ECDSA")
		sig[len(sig)-1] ^= 1
		wantErr(t, p.Verify(context.Background(), verifyReq(fqdn("gw.example.com"), tc.method, sig, cert)), "does not verify")
	}
}

// rfc7427Data builds method 14 AUTH data from an AlgorithmIdentifier and
// a signature, the way a peer would.
func rfc7427Data(ai, sig []byte) []byte {
	return append(append([]byte{byte(len(ai))}, ai...), sig...)
}

func hexBytes(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRSAPKCS1Fallback checks RFC 7427 sha256WithRSAEncryption is accepted.
func TestRSAPKCS1Fallback(t *testing.T) {
	ca := newCA(t, "ca-p256", "Veil Test CA")
	p := configured(t, nil, ca)
	key := testKey(t, "rsa2048").(*rsa.PrivateKey)
	cert := ca.issue(t, leaf{key: key, dns: []string{"gw.example.com"}})
	d := sha256.Sum256(octets)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	ai := hexBytes(t, "30 0d 06 09 2a 86 48 86 f7 0d 01 01 0b 05 00")
	if err := p.Verify(context.Background(), verifyReq(fqdn("gw.example.com"), 14, rfc7427Data(ai, sig), cert)); err != nil {
		t.Fatal(err)
	}
}

// TestSHA1Refused: method 1, sha1WithRSAEncryption and parameterless
// RSASSA-PSS (SHA-1 by default) are refused with a reason naming SHA-1.
func TestSHA1Refused(t *testing.T) {
	ca := newCA(t, "ca-p256", "Veil Test CA")
	p := configured(t, nil, ca)
	key := testKey(t, "rsa2048").(*rsa.PrivateKey)
	cert := ca.issue(t, leaf{key: key, dns: []string{"gw.example.com"}})
	d := sha1.Sum(octets)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA1, d[:])
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, p.Verify(context.Background(), verifyReq(fqdn("gw.example.com"), 1, sig, cert)), "SHA-1", "deprecated")
	sha1RSA := hexBytes(t, "30 0d 06 09 2a 86 48 86 f7 0d 01 01 05 05 00")
	wantErr(t, p.Verify(context.Background(), verifyReq(fqdn("gw.example.com"), 14, rfc7427Data(sha1RSA, sig), cert)), "SHA-1", "deprecated")
	pssDefault := hexBytes(t, "30 0b 06 09 2a 86 48 86 f7 0d 01 01 0a")
	wantErr(t, p.Verify(context.Background(), verifyReq(fqdn("gw.example.com"), 14, rfc7427Data(pssDefault, sig), cert)), "SHA-1")
}

// readVectors reads testdata/rfc7427.txt: name: hex DER.
func readVectors(t *testing.T) map[string][]byte {
	t.Helper()
	f, err := os.Open("testdata/rfc7427.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vectors := map[string][]byte{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, hexs, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("bad line %q", line)
		}
		vectors[strings.TrimSpace(name)] = hexBytes(t, hexs)
	}
	return vectors
}

// TestAlgorithmIdentifiers compares what we send with testdata/rfc7427.txt
// and checks that each is parsed back to the same algorithm, including the
// RSASSA-PSS form with an explicit trailerField some peers send.
func TestAlgorithmIdentifiers(t *testing.T) {
	vectors := readVectors(t)
	for name, alg := range map[string]sigAlg{
		"ecdsa-with-sha256":  plainAlgs[0].alg,
		"ecdsa-with-sha384":  plainAlgs[1].alg,
		"ecdsa-with-sha512":  plainAlgs[2].alg,
		"ed25519":            plainAlgs[3].alg,
		"sha256WithRSA":      plainAlgs[4].alg,
		"sha384WithRSA":      plainAlgs[5].alg,
		"sha512WithRSA":      plainAlgs[6].alg,
		"rsassa-pss-sha256":  {"RSASSA-PSS with SHA-256", kindRSAPSS, crypto.SHA256, HashSHA2_256},
		"rsassa-pss-sha384":  {"RSASSA-PSS with SHA-384", kindRSAPSS, crypto.SHA384, HashSHA2_384},
		"rsassa-pss-sha512":  {"RSASSA-PSS with SHA-512", kindRSAPSS, crypto.SHA512, HashSHA2_512},
		"rsassa-pss-sha256t": {"RSASSA-PSS with SHA-256", kindRSAPSS, crypto.SHA256, HashSHA2_256},
	} {
		want, ok := vectors[name]
		if !ok {
			t.Fatalf("testdata has no %s", name)
		}
		if name != "rsassa-pss-sha256t" { // accepted, never sent
			if got := algorithmIdentifier(alg); hex.EncodeToString(got) != hex.EncodeToString(want) {
				t.Errorf("%s: we send %x, want %x", name, got, want)
			}
		}
		parsed, err := parseAlgorithm(want)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if parsed.sigAlg != alg {
			t.Errorf("%s parsed as %+v, want %+v", name, parsed.sigAlg, alg)
		}
		if alg.kind == kindRSAPSS && parsed.saltLength != alg.hash.Size() {
			t.Errorf("%s: salt %d", name, parsed.saltLength)
		}
	}
}

func TestCertificateChecks(t *testing.T) {
	ca := newCA(t, "ca-p256", "Veil Test CA")
	other := newCA(t, "ca2-p256", "Some Other CA")
	p := configured(t, nil, ca)
	key := testKey(t, "p256")
	sign := func(k crypto.Signer) []byte {
		d, _, err := SignedAuthData(k, octets, HashSHA2_256)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	data := sign(key)
	ctx := context.Background()

	expired := ca.issue(t, leaf{key: key, dns: []string{"db2.example.com"}, notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-24 * time.Hour)})
	wantErr(t, p.Verify(ctx, verifyReq(fqdn("db2.example.com"), 14, data, expired)), "certificate for db2.example.com expired on")

	future := ca.issue(t, leaf{key: key, dns: []string{"db2.example.com"}, notBefore: time.Now().Add(time.Hour)})
	wantErr(t, p.Verify(ctx, verifyReq(fqdn("db2.example.com"), 14, data, future)), "not valid before")

	unknown := other.issue(t, leaf{key: key, dns: []string{"db2.example.com"}})
	wantErr(t, p.Verify(ctx, verifyReq(fqdn("db2.example.com"), 14, data, unknown)), "chain does not lead to a configured CA", "Some Other CA")

	// No CAs (a gateway whose peers use EAP): every certificate refused.
	valid := ca.issue(t, leaf{key: key, dns: []string{"db2.example.com"}})
	if err := p.Verify(ctx, verifyReq(fqdn("db2.example.com"), 14, data, valid)); err != nil {
		t.Fatalf("good certificate refused: %v", err)
	}
	wantErr(t, configured(t, nil).Verify(ctx, verifyReq(fqdn("db2.example.com"), 14, data, valid)), "no CA is configured")

	good := ca.issue(t, leaf{key: key, dns: []string{"db2.example.com"}, emails: []string{"ops@example.com"}})
	wantErr(t, p.Verify(ctx, verifyReq(fqdn("db3.example.com"), 14, data, good)), "ID db3.example.com is not in the certificate's names [db2.example.com ops@example.com]")
	if err := p.Verify(ctx, verifyReq(auth.Identity{Type: 3, Data: []byte("ops@example.com")}, 14, data, good)); err != nil {
		t.Errorf("RFC822 ID: %v", err)
	}

	encOnly := ca.issue(t, leaf{key: key, dns: []string{"db2.example.com"}, keyUsage: x509.KeyUsageKeyEncipherment})
	wantErr(t, p.Verify(ctx, verifyReq(fqdn("db2.example.com"), 14, data, encOnly)), "does not allow digital signatures")

	rsa1024 := testKey(t, "rsa1024")
	weak := ca.issue(t, leaf{key: rsa1024, dns: []string{"db2.example.com"}})
	d := sha256.Sum256(octets)
	sig, err := rsa.SignPSS(rand.Reader, rsa1024.(*rsa.PrivateKey), crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: 32})
	if err != nil {
		t.Fatal(err)
	}
	pss := algorithmIdentifier(sigAlg{"RSASSA-PSS with SHA-256", kindRSAPSS, crypto.SHA256, HashSHA2_256})
	wantErr(t, p.Verify(ctx, verifyReq(fqdn("db2.example.com"), 14, rfc7427Data(pss, sig), weak)), "RSA key of 1024 bits is too weak (at least 2048 required)")
	if _, _, err := SignedAuthData(rsa1024, octets, HashSHA2_256); err == nil {
		t.Error("SignedAuthData signed with an RSA 1024 key")
	}

	p224 := ca.issue(t, leaf{key: testKey(t, "p224"), dns: []string{"db2.example.com"}})
	wantErr(t, p.Verify(ctx, verifyReq(fqdn("db2.example.com"), 14, data, p224)), "P-224", "too weak")

	// An intermediate CA sent by the peer completes the chain.
	interKey := testKey(t, "p384")
	inter := ca.issue(t, leaf{key: interKey, cn: "Veil Intermediate", isCA: true, keyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign})
	interCA := &testCA{cert: inter, key: interKey}
	viaInter := interCA.issue(t, leaf{key: key, dns: []string{"db2.example.com"}})
	if err := p.Verify(ctx, verifyReq(fqdn("db2.example.com"), 14, data, viaInter, inter)); err != nil {
		t.Errorf("chain with intermediate: %v", err)
	}
	wantErr(t, p.Verify(ctx, verifyReq(fqdn("db2.example.com"), 14, data, viaInter)), "chain does not lead to a configured CA")
}

func TestIdentityTypes(t *testing.T) {
	ca := newCA(t, "ca-p256", "Veil Test CA")
	key := testKey(t, "p256")
	cert := ca.issue(t, leaf{key: key, cn: "gw1", dns: []string{"gw1.example.com"}, emails: []string{"gw1@example.com"},
		ips: []net.IP{net.ParseIP("192.0.2.7"), net.ParseIP("2001:db8::7")}})
	for _, tc := range []struct {
		id auth.Identity
		ok bool
	}{
		{auth.Identity{Type: 1, Data: []byte{192, 0, 2, 7}}, true},
		{auth.Identity{Type: 1, Data: []byte{192, 0, 2, 8}}, false},
		{auth.Identity{Type: 5, Data: net.ParseIP("2001:db8::7")}, true},
		{auth.Identity{Type: 5, Data: net.ParseIP("2001:db8::8")}, false},
		{auth.Identity{Type: 1, Data: []byte{1, 2}}, false},
		{fqdn("GW1.example.com"), true},
		{fqdn("gw2.example.com"), false},
		{auth.Identity{Type: 3, Data: []byte("gw1@example.com")}, true},
		{auth.Identity{Type: 3, Data: []byte("gw2@example.com")}, false},
		{auth.Identity{Type: 9, Data: cert.RawSubject}, true},
		{auth.Identity{Type: 9, Data: ca.cert.RawSubject}, false},
		{auth.Identity{Type: 9, Data: []byte{0x30, 0x05}}, false},
		{auth.Identity{Type: 11, Data: []byte("key-id")}, false},
	} {
		err := checkIdentity(cert, tc.id)
		if (err == nil) != tc.ok {
			t.Errorf("ID type %d %x: err = %v, want ok=%v", tc.id.Type, tc.id.Data, err, tc.ok)
		}
	}
}

func TestConfigure(t *testing.T) {
	ca := newCA(t, "ca-p256", "Veil Test CA")
	leafCert := ca.issue(t, leaf{key: testKey(t, "p256"), dns: []string{"x.example"}})
	leafPath := filepath.Join(t.TempDir(), "leaf.pem")
	if err := os.WriteFile(leafPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafCert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg     map[string]any
		wantErr string
	}{
		{map[string]any{}, ""}, // signing only: Verify refuses (TestCertificateChecks)
		{map[string]any{"cacerts": []string{"/nonexistent/ca.pem"}}, "no such file"},
		{map[string]any{"cacerts": []string{leafPath}}, "not a CA certificate"},
		{map[string]any{"cacerts": []string{ca.path}, "revocation": "maybe"}, `"maybe" is not`},
		{map[string]any{"cacerts": []string{ca.path}, "ocsp_timeout": "soon"}, "ocsp_timeout"},
		{map[string]any{"cacerts": []string{ca.path}, "crls": []string{ca.path}}, "crls"},
		{map[string]any{"cacerts": []string{ca.path}, "revocation": "require", "ocsp_timeout": "2s"}, ""},
	} {
		err := New().Configure(context.Background(), configJSON(t, tc.cfg))
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("%v: %v", tc.cfg, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%v: err = %v, want %q", tc.cfg, err, tc.wantErr)
		}
	}
}

// TestMakeWithoutSigner: the plain plugin never signs.
func TestMakeWithoutSigner(t *testing.T) {
	_, err := New().Make(context.Background(), &auth.Request{SignedOctets: octets})
	wantErr(t, err, "keystore")
}

func TestChooseHash(t *testing.T) {
	for _, tc := range []struct {
		key  string
		peer []uint16
		want uint16
	}{
		{"p256", []uint16{2, 3, 4, 5}, HashSHA2_512},
		{"p256", []uint16{2}, HashSHA2_256},
		{"p256", nil, HashSHA2_256},
		{"rsa2048", []uint16{3, 1}, HashSHA2_384},
		{"ed25519", []uint16{2, 5}, HashIdentity},
		{"ed25519", []uint16{2}, 0},
		{"p256", []uint16{1}, 0},
	} {
		got, err := ChooseHash(testKey(t, tc.key).Public(), tc.peer)
		if tc.want == 0 {
			if err == nil {
				t.Errorf("%s %v: got %d, want an error", tc.key, tc.peer, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s %v: got %d, %v; want %d", tc.key, tc.peer, got, err, tc.want)
		}
	}
}

// TestConformance runs the SDK's auth suite over gRPC: Make signs through
// a signer source (standing in for the keystore), Verify checks it as the
// peer would, with the certificate and the signer's identity.
func TestConformance(t *testing.T) {
	ca := newCA(t, "ca-p256", "Veil Test CA")
	key := testKey(t, "p384")
	cert := ca.issue(t, leaf{key: key, dns: []string{"a.lab.example"}})
	p := NewWithSigner(func(context.Context, *auth.Request) (crypto.Signer, [][]byte, error) {
		return key, [][]byte{cert.Raw}, nil
	})
	plugintest.RunAuthConformance(t, p, plugintest.AuthCase{
		Config: configJSON(t, map[string]any{"cacerts": []string{ca.path}, "revocation": "off"}),
		Request: &auth.Request{
			Connection: "lab", Role: auth.Initiator, PRF: 5,
			LocalID: fqdn("a.lab.example"), RemoteID: fqdn("b.lab.example"),
			SignedOctets:    octets,
			SignatureHashes: []uint16{2, 3, 4, 5},
		},
		Peer: func(req *auth.Request, res *auth.Result) *auth.Request {
			v := *req
			v.LocalID, v.RemoteID = req.RemoteID, req.LocalID
			v.Method, v.Data, v.Certs = res.Method, res.Data, res.Certs
			return &v
		},
	})
}

// keystoreSigner is a crypto.Signer whose key lives in a keystore plugin,
// reached over gRPC as the engine reaches it (core/pluginhost does the same).
type keystoreSigner struct {
	c   *keystore.Client
	ref string
	pub crypto.PublicKey
}

func (s *keystoreSigner) Public() crypto.PublicKey { return s.pub }

func (s *keystoreSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.c.Sign(context.Background(), s.ref, digest, keystore.OptionsFrom(opts))
}

// TestSignedAuthDataThroughKeystore signs with keys held by the bundled
// file keystore plugin, so RSASSA-PSS options, ECDSA digests and Ed25519's
// whole-message signing survive the keystore protocol.
func TestSignedAuthDataThroughKeystore(t *testing.T) {
	ca := newCA(t, "ca-p256", "Veil Test CA")
	p := configured(t, nil, ca)
	c := plugintest.KeystoreClient(t, file.New())
	if err := c.Configure(context.Background(), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"rsa2048", "p384", "ed25519"} {
		key := testKey(t, name)
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), name+".key")
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		pub, err := c.Public(context.Background(), "file:"+path)
		if err != nil {
			t.Fatal(err)
		}
		signer := &keystoreSigner{c: c, ref: "file:" + path, pub: pub}
		hash, err := ChooseHash(pub, Announced)
		if err != nil {
			t.Fatal(err)
		}
		data, method, err := SignedAuthData(signer, octets, hash)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cert := ca.issue(t, leaf{key: key, dns: []string{"gw.example.com"}})
		if err := p.Verify(context.Background(), verifyReq(fqdn("gw.example.com"), method, data, cert)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestRSAPSSChain: a chain whose certificates are signed with RSASSA-PSS
// by an RSA CA is accepted.
func TestRSAPSSChain(t *testing.T) {
	ca := newCA(t, "ca-rsa2048", "Veil RSA CA")
	p := configured(t, nil, ca)
	key := testKey(t, "rsa3072")
	cert := ca.issue(t, leaf{key: key, dns: []string{"gw.example.com"}, sigAlgoRSA: x509.SHA384WithRSAPSS})
	if cert.SignatureAlgorithm != x509.SHA384WithRSAPSS {
		t.Fatalf("certificate signed with %v", cert.SignatureAlgorithm)
	}
	data, method, err := SignedAuthData(key, octets, HashSHA2_384)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(context.Background(), verifyReq(fqdn("gw.example.com"), method, data, cert)); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkVerify is one peer AUTH check (ECDSA P-256, chain of one, no
// revocation), in process.
func BenchmarkVerify(b *testing.B) {
	ca := newCA(b, "ca-p256", "Veil Test CA")
	p := configured(b, nil, ca)
	key := testKey(b, "p256")
	cert := ca.issue(b, leaf{key: key, dns: []string{"gw.example.com"}})
	data, method, err := SignedAuthData(key, octets, HashSHA2_256)
	if err != nil {
		b.Fatal(err)
	}
	req := verifyReq(fqdn("gw.example.com"), method, data, cert)
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Verify(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParseAuth: any AUTH data is answered with an algorithm or an error,
// never a panic.
func FuzzParseAuth(f *testing.F) {
	for _, v := range []string{
		"300a06082a8648ce3d040302",
		"300506032b6570",
		"30410609" + "2a864886f70d01010a" + "3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120",
		"300b06092a864886f70d01010a",
	} {
		ai, _ := hex.DecodeString(v)
		f.Add(uint8(14), rfc7427Data(ai, []byte{1, 2, 3}))
	}
	f.Add(uint8(9), make([]byte, 64))
	f.Fuzz(func(t *testing.T, method uint8, data []byte) {
		if len(data) == 0 {
			return // Verify refuses empty data before parsing
		}
		alg, sig, _, err := parseAuth(method, data)
		if err == nil && (alg.kind == 0 || sig == nil) {
			t.Fatalf("method %d %x: accepted without algorithm or signature", method, data)
		}
	})
}

// TestCertReqAuthorities checks the CERTREQ hash against OpenSSL's SHA-1 of
// the CA's DER public key (RFC 7296 §3.7).
func TestCertReqAuthorities(t *testing.T) {
	ca := newCA(t, "ca-p256", "Veil Test CA")
	ca2 := newCA(t, "ca-rsa2048", "Veil RSA CA")
	p := configured(t, nil, ca, ca2)
	got := CertReqAuthorities(p.CACertificates())
	if len(got) != 40 {
		t.Fatalf("%d bytes for two CAs, want 40", len(got))
	}
	dir := t.TempDir()
	pub := openssl(t, dir, "x509", "-in", ca.path, "-noout", "-pubkey")
	if err := os.WriteFile(filepath.Join(dir, "pub.pem"), pub, 0o600); err != nil {
		t.Fatal(err)
	}
	der := openssl(t, dir, "pkey", "-pubin", "-in", "pub.pem", "-outform", "DER")
	want := sha1.Sum(der)
	if hex.EncodeToString(got[:20]) != hex.EncodeToString(want[:]) {
		t.Errorf("CERTREQ hash %x, want %x", got[:20], want)
	}
}

func auth4(a, b, c, d byte) auth.Identity { return auth.Identity{Type: 1, Data: []byte{a, b, c, d}} }
