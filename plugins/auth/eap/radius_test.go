package eap

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/sdk/auth"
	"github.com/veil-ipsec/veil/test/freeradius"
)

// These tests run veil's EAP client methods through the RADIUS
// pass-through server session to a real FreeRADIUS on loopback.

// secretRef stores a secret as the file keystore wants it (mode 0600).
func secretRef(t *testing.T, secret string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return "file:" + p
}

func radiusPlugin(t *testing.T, cfg Config) *Plugin {
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

// gateway is an EAP server plugin relaying to addr with secret.
func gateway(t *testing.T, addr, secret, timeout string) *Plugin {
	return radiusPlugin(t, Config{RADIUSServer: addr, RADIUSSecret: secretRef(t, secret), RADIUSTimeout: timeout, AllowMD5: true})
}

// passwordClient is an EAP client plugin with a password.
func passwordClient(t *testing.T, method, identity, password string) *Plugin {
	return radiusPlugin(t, Config{AllowMD5: true, Connections: map[string]ConnConfig{
		"c": {Method: method, EAPID: identity, Secret: secretRef(t, password)}}})
}

func startSession(t *testing.T, p *Plugin, method string, server bool) auth.EAPSession {
	t.Helper()
	s, err := p.StartEAP(context.Background(), &auth.EAPRequest{Connection: "c", Method: method, Server: server})
	if err != nil {
		t.Fatalf("StartEAP(%s, server %v): %v", method, server, err)
	}
	t.Cleanup(s.Close)
	return s
}

// relay runs a conversation to its end; err is the server's error.
func relay(t *testing.T, srv, cli auth.EAPSession) (server, client *auth.EAPStep, err error) {
	t.Helper()
	ctx := context.Background()
	st, err := srv.Step(ctx, nil)
	if err != nil {
		t.Fatalf("server's first step: %v", err)
	}
	for range 300 {
		c, err := cli.Step(ctx, st.Message)
		if err != nil {
			t.Fatalf("client: %v", err)
		}
		if st.Done {
			return st, c, nil
		}
		if c.Done {
			return nil, c, nil
		}
		if st, err = srv.Step(ctx, c.Message); err != nil {
			return nil, c, err
		}
	}
	t.Fatal("the conversation does not end")
	return nil, nil, nil
}

func TestRADIUS(t *testing.T) {
	fr := freeradius.Start(t, freeradius.Config{})
	gw := gateway(t, fr.Addr, fr.Secret, "")
	alice := freeradius.DefaultUsers["alice"]

	success := func(t *testing.T, cli *Plugin, method string, mskLen int) {
		t.Helper()
		srv, c, err := relay(t, startSession(t, gw, method, true), startSession(t, cli, method, false))
		if err != nil || srv == nil || !srv.Success || !c.Success {
			t.Fatalf("conversation failed: error %v server %+v client %+v", err, srv, c)
		}
		if string(srv.Identity) != "alice" {
			t.Errorf("server learned identity %q, want alice", srv.Identity)
		}
		if len(srv.MSK) != mskLen || !bytes.Equal(srv.MSK, c.MSK) {
			t.Errorf("MSKs differ or have the wrong length (want %d): server %x client %x", mskLen, srv.MSK, c.MSK)
		}
		if pk, err := ParsePacket(srv.Message); err != nil || pk.Code != CodeSuccess {
			t.Errorf("server's last message %x is not EAP-Success", srv.Message)
		}
	}
	rejected := func(t *testing.T, cli *Plugin, method, identity string) {
		t.Helper()
		srv, c, err := relay(t, startSession(t, gw, method, true), startSession(t, cli, method, false))
		if err != nil || srv == nil || srv.Success || c.Success || !c.Done {
			t.Fatalf("want a rejection: error %v server %+v client %+v", err, srv, c)
		}
		want := `RADIUS server rejected "` + identity + `": ` + freeradius.RejectMessage
		if srv.Reason != want {
			t.Errorf("server reason %q, want %q", srv.Reason, want)
		}
		if srv.MSK != nil || c.MSK != nil {
			t.Error("a failed conversation has an MSK")
		}
		if pk, err := ParsePacket(srv.Message); err != nil || pk.Code != CodeFailure {
			t.Errorf("server's last message %x is not EAP-Failure", srv.Message)
		}
	}

	t.Run("MSCHAPv2", func(t *testing.T) {
		// FreeRADIUS starts with EAP-MD5 (its default_eap_type): the
		// client's Nak travels through too.
		success(t, passwordClient(t, "eap-mschapv2", "alice", alice), "eap-mschapv2", 64)
	})
	t.Run("TLS", func(t *testing.T) {
		cli := radiusPlugin(t, Config{Connections: map[string]ConnConfig{"c": {
			Method: "eap-tls", EAPID: "alice", Certificate: fr.ClientCert, Key: "file:" + fr.ClientKey, CACerts: []string{fr.CA}}}})
		success(t, cli, "eap-tls", 64)
	})
	t.Run("MD5", func(t *testing.T) {
		success(t, passwordClient(t, "eap-md5", "alice", alice), "eap-md5", 0)
	})
	t.Run("MSCHAPv2 wrong password", func(t *testing.T) {
		rejected(t, passwordClient(t, "eap-mschapv2", "alice", "not-"+alice), "eap-mschapv2", "alice")
	})
	t.Run("MD5 wrong password", func(t *testing.T) {
		rejected(t, passwordClient(t, "eap-md5", "alice", "not-"+alice), "eap-md5", "alice")
	})
	t.Run("unknown user", func(t *testing.T) {
		rejected(t, passwordClient(t, "eap-mschapv2", "mallory", "whatever"), "eap-mschapv2", "mallory")
	})
	t.Run("TLS client certificate from another CA", func(t *testing.T) {
		other := freeradius.NewPKI(t, "alice")
		cli := radiusPlugin(t, Config{Connections: map[string]ConnConfig{"c": {
			Method: "eap-tls", EAPID: "alice", Certificate: other.ClientCert, Key: "file:" + other.ClientKey, CACerts: []string{fr.CA}}}})
		srv, c, err := relay(t, startSession(t, gw, "eap-tls", true), startSession(t, cli, "eap-tls", false))
		if err != nil || (srv != nil && srv.Success) || c.Success {
			t.Fatalf("want a rejection: error %v server %+v client %+v", err, srv, c)
		}
	})
	t.Run("wrong RADIUS secret", func(t *testing.T) {
		gw := gateway(t, fr.Addr, "not-"+fr.Secret, "300ms")
		_, _, err := relay(t, startSession(t, gw, "eap-mschapv2", true), startSession(t, passwordClient(t, "eap-mschapv2", "alice", alice), "eap-mschapv2", false))
		if err == nil || !strings.Contains(err.Error(), "did not answer") || !strings.Contains(err.Error(), "radius_secret") {
			t.Errorf("error %v, want one saying the replies failed authentication", err)
		}
	})
}

func TestRADIUSServerDown(t *testing.T) {
	fr := freeradius.Start(t, freeradius.Config{})
	fr.Stop()
	gw := gateway(t, fr.Addr, fr.Secret, "300ms")
	srv := startSession(t, gw, "eap-mschapv2", true)
	cli := startSession(t, passwordClient(t, "eap-mschapv2", "alice", "x"), "eap-mschapv2", false)
	start := time.Now()
	_, _, err := relay(t, srv, cli)
	if err == nil || !strings.Contains(err.Error(), "did not answer within 300ms") {
		t.Fatalf("error %v, want a timeout naming radius_timeout", err)
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Errorf("gave up after %v, before radius_timeout", time.Since(start))
	}
}
