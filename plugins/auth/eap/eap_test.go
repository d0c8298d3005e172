package eap

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
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

	"github.com/veil-ipsec/veil/sdk/auth"
	"github.com/veil-ipsec/veil/sdk/plugintest"
)

// writeSecret stores a secret as the file keystore wants it (mode 0600)
// and returns its reference.
func writeSecret(t testing.TB, name, secret string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return "file:" + p
}

func configure(t *testing.T, cfg Config) *Plugin {
	t.Helper()
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := New()
	if err := p.Configure(context.Background(), js); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return p
}

// outcome is how a conversation ended on both sides.
type outcome struct {
	server, client *auth.EAPStep
	rounds         int
	fragments      bool // a packet carried the EAP-TLS M flag
}

// converse runs a conversation to its end, each side's packets going
// straight to the other.
func converse(t *testing.T, srv, cli auth.EAPSession) outcome {
	t.Helper()
	ctx := context.Background()
	var o outcome
	st, err := srv.Step(ctx, nil)
	if err != nil {
		t.Fatalf("server's first step: %v", err)
	}
	for o.rounds = 1; o.rounds < 300; o.rounds++ {
		if isFragment(st.Message) {
			o.fragments = true
		}
		c, err := cli.Step(ctx, st.Message)
		if err != nil {
			t.Fatalf("client step %d: %v", o.rounds, err)
		}
		if st.Done {
			o.server, o.client = st, c
			return o
		}
		if c.Done {
			o.client = c
			return o
		}
		if isFragment(c.Message) {
			o.fragments = true
		}
		if st, err = srv.Step(ctx, c.Message); err != nil {
			t.Fatalf("server step %d: %v", o.rounds, err)
		}
	}
	t.Fatal("the conversation does not end")
	return o
}

func isFragment(msg []byte) bool {
	pk, err := ParsePacket(msg)
	return err == nil && pk.Type == TypeTLS && len(pk.Data) > 0 && pk.Data[0]&tlsFlagMore != 0
}

func start(t *testing.T, p *Plugin, conn, method string, server bool) auth.EAPSession {
	t.Helper()
	s, err := p.StartEAP(context.Background(), &auth.EAPRequest{
		Connection: conn, Method: method, Server: server,
		LocalID: auth.Identity{Type: 3, Data: []byte("alice@example.com")},
	})
	if err != nil {
		t.Fatalf("StartEAP(%s, server %v): %v", method, server, err)
	}
	t.Cleanup(s.Close)
	return s
}

func wantSuccess(t *testing.T, o outcome, identity string, mskLen int) {
	t.Helper()
	if o.server == nil || !o.server.Success || o.client == nil || !o.client.Success {
		t.Fatalf("conversation failed: server %+v client %+v", o.server, o.client)
	}
	if string(o.server.Identity) != identity {
		t.Errorf("server learned identity %q, want %q", o.server.Identity, identity)
	}
	if len(o.server.MSK) != mskLen || !bytes.Equal(o.server.MSK, o.client.MSK) {
		t.Errorf("MSKs differ or have the wrong length (%d, want %d): server %x client %x", len(o.server.MSK), mskLen, o.server.MSK, o.client.MSK)
	}
	if mskLen > 0 && bytes.Equal(o.server.MSK, make([]byte, mskLen)) {
		t.Error("MSK is all zeros")
	}
	if o.client.Message != nil {
		t.Error("client answered EAP-Success")
	}
}

func wantFailure(t *testing.T, o outcome, serverReason string) {
	t.Helper()
	if o.client == nil || o.client.Success || !o.client.Done {
		t.Fatalf("client did not fail: %+v", o.client)
	}
	if o.client.MSK != nil {
		t.Error("failed client has an MSK")
	}
	if serverReason == "" {
		return
	}
	if o.server == nil || o.server.Success || !o.server.Done {
		t.Fatalf("server did not fail: %+v", o.server)
	}
	if o.server.MSK != nil {
		t.Error("failed server has an MSK")
	}
	if pk, err := ParsePacket(o.server.Message); err != nil || pk.Code != CodeFailure {
		t.Errorf("server's last message is not EAP-Failure: %x", o.server.Message)
	}
	if !strings.Contains(o.server.Reason, serverReason) {
		t.Errorf("server reason %q does not say %q", o.server.Reason, serverReason)
	}
}

// passwordPlugins are a server knowing alice's password and a client
// (connection "c") with the given password.
func passwordPlugins(t *testing.T, method, clientPassword string, allowMD5 bool) (srv, cli *Plugin) {
	srv = configure(t, Config{
		Users:       map[string]string{"alice": writeSecret(t, "alice", "correct horse battery")},
		AllowMD5:    allowMD5,
		Connections: map[string]ConnConfig{"s": {Method: method, EAPID: "%any"}},
	})
	cli = configure(t, Config{
		AllowMD5:    allowMD5,
		Connections: map[string]ConnConfig{"c": {Method: method, EAPID: "alice", Secret: writeSecret(t, "pw", clientPassword)}},
	})
	return srv, cli
}

func TestMSCHAPv2(t *testing.T) {
	srv, cli := passwordPlugins(t, "eap-mschapv2", "correct horse battery", false)
	wantSuccess(t, converse(t, start(t, srv, "s", "eap-mschapv2", true), start(t, cli, "c", "eap-mschapv2", false)), "alice", 64)

	srv, cli = passwordPlugins(t, "eap-mschapv2", "wrong horse", false)
	o := converse(t, start(t, srv, "s", "eap-mschapv2", true), start(t, cli, "c", "eap-mschapv2", false))
	wantFailure(t, o, "wrong password")
	if !strings.Contains(o.client.Reason, "refused the password") {
		t.Errorf("client reason %q", o.client.Reason)
	}
}

func TestUnknownUser(t *testing.T) {
	for _, m := range []string{"eap-mschapv2", "eap-md5"} {
		srv, _ := passwordPlugins(t, m, "x", true)
		cli := configure(t, Config{AllowMD5: true, Connections: map[string]ConnConfig{
			"c": {Method: m, EAPID: "mallory", Secret: writeSecret(t, "pw", "correct horse battery")}}})
		wantFailure(t, converse(t, start(t, srv, "s", m, true), start(t, cli, "c", m, false)), "unknown EAP identity")
	}
}

func TestExpectedIdentity(t *testing.T) {
	srv := configure(t, Config{
		Users:       map[string]string{"alice": writeSecret(t, "a", "pw-a"), "bob": writeSecret(t, "b", "pw-b")},
		Connections: map[string]ConnConfig{"s": {Method: "eap-mschapv2", EAPID: "alice"}},
	})
	cli := configure(t, Config{Connections: map[string]ConnConfig{"c": {Method: "eap-mschapv2", EAPID: "bob", Secret: writeSecret(t, "pw", "pw-b")}}})
	wantFailure(t, converse(t, start(t, srv, "s", "eap-mschapv2", true), start(t, cli, "c", "eap-mschapv2", false)), `not the expected "alice"`)
}

// Without eap_id the client's EAP identity is its IKE identity.
func TestIdentityFromIKE(t *testing.T) {
	srv := configure(t, Config{Users: map[string]string{"alice@example.com": writeSecret(t, "a", "pw-a")}})
	cli := configure(t, Config{Connections: map[string]ConnConfig{"c": {Method: "eap-mschapv2", Secret: writeSecret(t, "pw", "pw-a")}}})
	wantSuccess(t, converse(t, start(t, srv, "any", "eap-mschapv2", true), start(t, cli, "c", "eap-mschapv2", false)), "alice@example.com", 64)
}

func TestMD5(t *testing.T) {
	// Refused unless allowed, on either side.
	srv, _ := passwordPlugins(t, "eap", "x", false)
	if _, err := srv.StartEAP(context.Background(), &auth.EAPRequest{Connection: "s", Method: "eap-md5", Server: true}); err == nil || !strings.Contains(err.Error(), "allow_md5") {
		t.Errorf("EAP-MD5 server without allow_md5: %v", err)
	}
	js, _ := json.Marshal(Config{Connections: map[string]ConnConfig{"c": {Method: "eap-md5", Secret: writeSecret(t, "pw", "x")}}})
	if err := New().Configure(context.Background(), js); err == nil || !strings.Contains(err.Error(), "allow_md5") {
		t.Errorf("EAP-MD5 client connection without allow_md5: %v", err)
	}
	// A client that may not use MD5 refuses it with a Nak.
	srv, _ = passwordPlugins(t, "eap-md5", "x", true)
	cli := configure(t, Config{Connections: map[string]ConnConfig{"c": {Method: "eap", EAPID: "alice", Secret: writeSecret(t, "pw", "correct horse battery")}}})
	wantFailure(t, converse(t, start(t, srv, "s", "eap-md5", true), start(t, cli, "c", "eap", false)), "wants none we offer")

	srv, cli = passwordPlugins(t, "eap-md5", "correct horse battery", true)
	wantSuccess(t, converse(t, start(t, srv, "s", "eap-md5", true), start(t, cli, "c", "eap-md5", false)), "alice", 0)
	srv, cli = passwordPlugins(t, "eap-md5", "wrong", true)
	wantFailure(t, converse(t, start(t, srv, "s", "eap-md5", true), start(t, cli, "c", "eap-md5", false)), "wrong password")
}

// A server offering EAP-TLS first falls back to MSCHAPv2 when the client
// has only a password and says so with a Nak.
func TestNakToMSCHAPv2(t *testing.T) {
	pki := newPKI(t, false)
	srv := configure(t, Config{
		Users:       map[string]string{"alice": writeSecret(t, "a", "pw-a")},
		Connections: map[string]ConnConfig{"s": {Method: "eap", Certificate: pki.serverCert, Key: pki.serverKey, CACerts: []string{pki.ca}}},
	})
	cli := configure(t, Config{Connections: map[string]ConnConfig{"c": {Method: "eap", EAPID: "alice", Secret: writeSecret(t, "pw", "pw-a")}}})
	wantSuccess(t, converse(t, start(t, srv, "s", "eap", true), start(t, cli, "c", "eap", false)), "alice", 64)
}

func TestTLS(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version uint16
		rsa     bool
	}{{"TLS 1.3", 0, false}, {"TLS 1.2", tls.VersionTLS12, false}, {"TLS 1.3 RSA fragmented", 0, true}, {"TLS 1.2 RSA fragmented", tls.VersionTLS12, true}} {
		t.Run(tc.name, func(t *testing.T) {
			tlsMaxVersion = tc.version
			t.Cleanup(func() { tlsMaxVersion = 0 })
			pki := newPKI(t, tc.rsa)
			srv, cli := pki.plugins(t, pki.ca, pki.clientCert, pki.clientKey)
			o := converse(t, start(t, srv, "s", "eap-tls", true), start(t, cli, "c", "eap-tls", false))
			wantSuccess(t, o, "alice", 64)
			if tc.rsa && !o.fragments {
				t.Error("RSA certificates did not need fragments")
			}
		})
	}
	t.Run("server certificate from another CA", func(t *testing.T) {
		pki := newPKI(t, false)
		other := newPKI(t, false)
		srv, cli := pki.plugins(t, other.ca, pki.clientCert, pki.clientKey)
		o := converse(t, start(t, srv, "s", "eap-tls", true), start(t, cli, "c", "eap-tls", false))
		wantFailure(t, o, "")
		if !strings.Contains(o.client.Reason, "certificate") {
			t.Errorf("client reason %q does not name the certificate", o.client.Reason)
		}
	})
	t.Run("client certificate from another CA", func(t *testing.T) {
		pki := newPKI(t, false)
		other := newPKI(t, false)
		srv, cli := pki.plugins(t, pki.ca, other.clientCert, other.clientKey)
		o := converse(t, start(t, srv, "s", "eap-tls", true), start(t, cli, "c", "eap-tls", false))
		wantFailure(t, o, "certificate")
		if o.client.Reason != "the EAP server refused authentication during EAP-TLS" {
			t.Errorf("client reason %q", o.client.Reason)
		}
	})
	t.Run("client certificate naming another identity", func(t *testing.T) {
		pki := newPKI(t, false)
		srv, _ := pki.plugins(t, pki.ca, pki.clientCert, pki.clientKey)
		cli := configure(t, Config{Connections: map[string]ConnConfig{"c": {
			Method: "eap-tls", EAPID: "bob", Certificate: pki.clientCert, Key: pki.clientKey, CACerts: []string{pki.ca}}}})
		wantFailure(t, converse(t, start(t, srv, "s", "eap-tls", true), start(t, cli, "c", "eap-tls", false)), `"bob" is not named in the client certificate`)
	})
	t.Run("no server credentials", func(t *testing.T) {
		srv := configure(t, Config{})
		for _, m := range []string{"eap-tls", "eap-mschapv2", "eap"} {
			if _, err := srv.StartEAP(context.Background(), &auth.EAPRequest{Connection: "s", Method: m, Server: true}); err == nil {
				t.Errorf("%s server without credentials or users started", m)
			}
		}
	})
	t.Run("no client credentials", func(t *testing.T) {
		cli := configure(t, Config{Connections: map[string]ConnConfig{"c": {Method: "eap-tls", EAPID: "alice"}}})
		if _, err := cli.StartEAP(context.Background(), &auth.EAPRequest{Connection: "c", Method: "eap-tls"}); err == nil {
			t.Error("EAP-TLS client without a certificate started")
		}
	})
}

// pki is a CA with a server and a client certificate, as files.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func (p *pki) plugins(t *testing.T, clientCA, clientCert, clientKey string) (srv, cli *Plugin) {
	srv = configure(t, Config{Connections: map[string]ConnConfig{"s": {
		Method: "eap-tls", Certificate: p.serverCert, Key: p.serverKey, CACerts: []string{p.ca}}}})
	cli = configure(t, Config{Connections: map[string]ConnConfig{"c": {
		Method: "eap-tls", EAPID: "alice", Certificate: clientCert, Key: clientKey, CACerts: []string{clientCA}}}})
	return srv, cli
}

func newPKI(t testing.TB, useRSA bool) *pki {
	t.Helper()
	dir := t.TempDir()
	newKey := func() any {
		if useRSA {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				t.Fatal(err)
			}
			return k
		}
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	pub := func(k any) any {
		if r, ok := k.(*rsa.PrivateKey); ok {
			return &r.PublicKey
		}
		return &k.(*ecdsa.PrivateKey).PublicKey
	}
	write := func(name, typ string, der []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "veil test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, pub(caKey), caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	p := &pki{ca: write("ca.pem", "CERTIFICATE", caDER, 0o644)}
	leaf := func(name string, eku x509.ExtKeyUsage, serial int64) (string, string) {
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			DNSNames:  []string{name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{eku},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, pub(k), caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", der, 0o644), "file:" + write(name+".key", "PRIVATE KEY", kder, 0o600)
	}
	p.serverCert, p.serverKey = leaf("gw.example.com", x509.ExtKeyUsageServerAuth, 2)
	p.clientCert, p.clientKey = leaf("alice", x509.ExtKeyUsageClientAuth, 3)
	return p
}

func TestConfigureErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  Config
		want string
	}{
		"unresolved vault":      {Config{Users: map[string]string{"a": "vault:secret/a"}}, `"vault:secret/a": not a file: reference and not resolved`},
		"missing file":          {Config{Users: map[string]string{"a": "file:/nonexistent/veil-eap"}}, "/nonexistent/veil-eap"},
		"secret without server": {Config{RADIUSSecret: "file:/x"}, "need radius_server"},
		"server without secret": {Config{RADIUSServer: "127.0.0.1:1812"}, "radius_secret"},
		"bad method":            {Config{Connections: map[string]ConnConfig{"c": {Method: "eap-ttls"}}}, "eap-ttls"},
		"cert without key":      {Config{Connections: map[string]ConnConfig{"c": {Method: "eap-tls", Certificate: "/x.pem"}}}, "both certificate and key"},
	} {
		js, _ := json.Marshal(tc.cfg)
		err := New().Configure(context.Background(), js)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Configure error %v, want one naming %q", name, err, tc.want)
		}
	}
	if err := New().Configure(context.Background(), []byte("{")); err == nil {
		t.Error("Configure accepted broken JSON")
	}
	p := New()
	if _, err := p.Make(context.Background(), &auth.Request{}); err == nil {
		t.Error("Make did not refuse")
	}
	if err := p.Verify(context.Background(), &auth.Request{}); err == nil {
		t.Error("Verify did not refuse")
	}
}

// A gateway runs many conversations at once, and a reload (Configure)
// during them leaves them intact.
func TestConcurrentConversations(t *testing.T) {
	pki := newPKI(t, false)
	users := map[string]string{"alice": writeSecret(t, "a", "pw-a")}
	srvCfg := Config{Users: users, Connections: map[string]ConnConfig{"s": {
		Method: "eap", Certificate: pki.serverCert, Key: pki.serverKey, CACerts: []string{pki.ca}}}}
	srv := configure(t, srvCfg)
	pwCli := configure(t, Config{Connections: map[string]ConnConfig{"c": {Method: "eap-mschapv2", EAPID: "alice", Secret: writeSecret(t, "pw", "pw-a")}}})
	_, tlsCli := pki.plugins(t, pki.ca, pki.clientCert, pki.clientKey)
	js, _ := json.Marshal(srvCfg)
	errs := make(chan string, 40)
	for i := 0; i < 40; i++ {
		go func() {
			cli, method := pwCli, "eap-mschapv2"
			if i%2 == 1 {
				cli, method = tlsCli, "eap-tls"
			}
			if i%10 == 0 {
				if err := srv.Configure(context.Background(), js); err != nil {
					errs <- err.Error()
					return
				}
			}
			ctx := context.Background()
			s, err := srv.StartEAP(ctx, &auth.EAPRequest{Connection: "s", Method: "eap", Server: true})
			if err != nil {
				errs <- err.Error()
				return
			}
			defer s.Close()
			c, err := cli.StartEAP(ctx, &auth.EAPRequest{Connection: "c", Method: method})
			if err != nil {
				errs <- err.Error()
				return
			}
			defer c.Close()
			st, err := s.Step(ctx, nil)
			for n := 0; err == nil && !st.Done && n < 50; n++ {
				var cs *auth.EAPStep
				if cs, err = c.Step(ctx, st.Message); err == nil {
					st, err = s.Step(ctx, cs.Message)
				}
			}
			switch {
			case err != nil:
				errs <- method + ": " + err.Error()
			case !st.Success:
				errs <- method + ": " + st.Reason
			default:
				errs <- ""
			}
		}()
	}
	for i := 0; i < 40; i++ {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
}

// The plugin as veild runs it: behind the SDK's gRPC server, reached
// through the SDK client, in both roles.
func TestOverPluginProtocol(t *testing.T) {
	pki := newPKI(t, false)
	srv := plugintest.AuthClient(t, configure(t, Config{
		Users: map[string]string{"alice": writeSecret(t, "a", "pw-a")},
		Connections: map[string]ConnConfig{"s": {
			Method: "eap", Certificate: pki.serverCert, Key: pki.serverKey, CACerts: []string{pki.ca}}},
	}))
	_, tlsCli := pki.plugins(t, pki.ca, pki.clientCert, pki.clientKey)
	pwCli := configure(t, Config{Connections: map[string]ConnConfig{"c": {Method: "eap-mschapv2", EAPID: "alice", Secret: writeSecret(t, "pw", "pw-a")}}})
	ctx := context.Background()
	for method, cli := range map[string]*auth.Client{"eap-tls": plugintest.AuthClient(t, tlsCli), "eap-mschapv2": plugintest.AuthClient(t, pwCli)} {
		s, err := srv.StartEAP(ctx, &auth.EAPRequest{Connection: "s", Method: "eap", Server: true})
		if err != nil {
			t.Fatal(err)
		}
		c, err := cli.StartEAP(ctx, &auth.EAPRequest{Connection: "c", Method: method})
		if err != nil {
			t.Fatal(err)
		}
		wantSuccess(t, converse(t, s, c), "alice", 64)
		s.Close()
		c.Close()
	}
}

// A Nak must name another method we offer: asking again for the refused
// one, or for none, ends the conversation; a second Nak too.
func TestNakRules(t *testing.T) {
	pki := newPKI(t, false)
	srv := configure(t, Config{
		Users: map[string]string{"alice": writeSecret(t, "a", "pw-a")},
		Connections: map[string]ConnConfig{"s": {
			Method: "eap", Certificate: pki.serverCert, Key: pki.serverKey, CACerts: []string{pki.ca}}},
	})
	ctx := context.Background()
	for name, naks := range map[string][][]byte{
		"same method":  {{TypeTLS}},
		"none":         {{0}},
		"unknown":      {{99}},
		"a second Nak": {{TypeMSCHAPv2}, {TypeTLS}},
	} {
		s := start(t, srv, "s", "eap", true)
		st, _ := s.Step(ctx, nil)
		st, err := s.Step(ctx, (&Packet{Code: CodeResponse, ID: st.Message[1], Type: TypeIdentity, Data: []byte("alice")}).Marshal())
		if err != nil {
			t.Fatal(err)
		}
		for _, nak := range naks {
			if st, err = s.Step(ctx, (&Packet{Code: CodeResponse, ID: st.Message[1], Type: TypeNak, Data: nak}).Marshal()); err != nil {
				t.Fatal(err)
			}
		}
		if !st.Done || st.Success {
			t.Errorf("%s: conversation goes on: %+v", name, st)
		}
	}
}

// Close zeroes what the methods held: password hashes, passwords, MSKs.
func TestCloseZeroesSecrets(t *testing.T) {
	for _, m := range []string{"eap-mschapv2", "eap-md5"} {
		srv, cli := passwordPlugins(t, m, "correct horse battery", true)
		s := start(t, srv, "s", m, true)
		c := start(t, cli, "c", m, false)
		wantSuccess(t, converse(t, s, c), "alice", map[string]int{"eap-mschapv2": 64, "eap-md5": 0}[m])
		var held [][]byte
		switch sm := s.(*server).m.(type) {
		case *mschapServer:
			held = append(held, sm.pwHash, sm.msk)
		case *md5Server:
			held = append(held, sm.password)
		}
		cl := c.(*client)
		held = append(held, cl.password)
		switch cm := cl.m.(type) {
		case *mschapClient:
			held = append(held, cm.pwHash, cm.msk)
		case *md5Client:
			held = append(held, cm.password)
		}
		s.Close()
		c.Close()
		for i, b := range held {
			if len(b) == 0 || !isZero(b) {
				t.Errorf("%s: secret %d not zeroed after Close: %x", m, i, b)
			}
		}
	}
	pki := newPKI(t, false)
	srv, cli := pki.plugins(t, pki.ca, pki.clientCert, pki.clientKey)
	s := start(t, srv, "s", "eap-tls", true)
	c := start(t, cli, "c", "eap-tls", false)
	wantSuccess(t, converse(t, s, c), "alice", 64)
	held := [][]byte{s.(*server).m.(*tlsServer).msk, c.(*client).m.(*tlsClient).msk}
	s.Close()
	c.Close()
	for i, b := range held {
		if len(b) != 64 || !isZero(b) {
			t.Errorf("EAP-TLS MSK %d not zeroed after Close: %x", i, b)
		}
	}
}

// A connection's certificate, key and CAs serve its IKE authentication
// too: a password method ignores them, "eap" leaves EAP-TLS out when it
// cannot use them, and DER CA files are read as well as PEM.
func TestTLSMaterialOnlyWhenNeeded(t *testing.T) {
	pki := newPKI(t, false)
	garbage := filepath.Join(t.TempDir(), "not-a-cert")
	os.WriteFile(garbage, []byte("junk"), 0o644)
	pw := writeSecret(t, "pw", "pw-a")
	p := configure(t, Config{
		Users: map[string]string{"alice": pw},
		Connections: map[string]ConnConfig{
			"mschap": {Method: "eap-mschapv2", Secret: pw, Certificate: pki.serverCert, Key: "pkcs11:token/key", CACerts: []string{garbage}},
			"eap":    {Method: "eap", Certificate: pki.serverCert, Key: "vault:transit/gw"},
		},
	})
	s, err := p.StartEAP(context.Background(), &auth.EAPRequest{Connection: "eap", Method: "eap", Server: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if got := s.(*server).offer; len(got) != 1 || got[0] != TypeMSCHAPv2 {
		t.Errorf("offer %v, want MSCHAPv2 only", got)
	}
	noUsers := configure(t, Config{Connections: map[string]ConnConfig{"eap": {Method: "eap", Certificate: pki.serverCert, Key: "vault:transit/gw"}}})
	if _, err := noUsers.StartEAP(context.Background(), &auth.EAPRequest{Connection: "eap", Method: "eap", Server: true}); err == nil || !strings.Contains(err.Error(), "vault:transit/gw") {
		t.Errorf("StartEAP without any method: %v (want the key reference named)", err)
	}

	block, _ := pem.Decode(must(os.ReadFile(pki.ca)))
	der := filepath.Join(t.TempDir(), "ca.der")
	os.WriteFile(der, block.Bytes, 0o644)
	srv, _ := pki.plugins(t, pki.ca, pki.clientCert, pki.clientKey)
	cli := configure(t, Config{Connections: map[string]ConnConfig{"c": {
		Method: "eap-tls", EAPID: "alice", Certificate: pki.clientCert, Key: pki.clientKey, CACerts: []string{der}}}})
	wantSuccess(t, converse(t, start(t, srv, "s", "eap-tls", true), start(t, cli, "c", "eap-tls", false)), "alice", 64)
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestResolvedPasswords: passwords veild resolved through a keystore
// plugin (the users map on the server, the connection's password on the
// client) run MSCHAPv2 like file passwords; a keystore reference veild
// did not resolve is refused naming it.
func TestResolvedPasswords(t *testing.T) {
	const userRef, cliRef = "vault:secret/users#alice", "pkcs11:token=veil;object=alice"
	srv := configure(t, Config{
		Users:       map[string]string{"alice": userRef},
		Connections: map[string]ConnConfig{"s": {Method: "eap-mschapv2", EAPID: "%any"}},
		Resolved:    map[string][]byte{userRef: []byte("correct horse battery")},
	})
	cli := configure(t, Config{
		Connections: map[string]ConnConfig{"c": {Method: "eap-mschapv2", EAPID: "alice", Secret: cliRef}},
		Resolved:    map[string][]byte{cliRef: []byte("correct horse battery")},
	})
	wantSuccess(t, converse(t, start(t, srv, "s", "eap-mschapv2", true), start(t, cli, "c", "eap-mschapv2", false)), "alice", 64)

	for _, cfg := range []Config{
		{Users: map[string]string{"alice": userRef}},
		{Connections: map[string]ConnConfig{"c": {Method: "eap-mschapv2", Secret: cliRef}}},
		{Users: map[string]string{"alice": userRef}, Resolved: map[string][]byte{userRef: {}}},
	} {
		js, _ := json.Marshal(cfg)
		err := New().Configure(context.Background(), js)
		if err == nil || !(strings.Contains(err.Error(), userRef) || strings.Contains(err.Error(), cliRef)) {
			t.Errorf("Configure(%s) = %v, want an error naming the reference", js, err)
		}
	}
}
