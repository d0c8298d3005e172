package pluginhost

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/plugins/auth/eap"
)

// The bundled EAP plugin runs as its own process, as under veild.
func init() { testBuiltins["auth/eap"] = func() any { return eap.New() } }

// startEAP runs auth/eap with user alice (password "correct horse") and
// two client connections: "good" knows alice's password, "bad" does not.
func startEAP(t *testing.T, h *Host) provider.EAPAuthenticator {
	t.Helper()
	if err := h.Start(context.Background(), "auth", "eap", ""); err != nil {
		t.Fatal(err)
	}
	good := "file:" + writeFile(t, "alice.pw", []byte("correct horse\n"))
	bad := "file:" + writeFile(t, "mallory.pw", []byte("battery staple\n"))
	// The daemon adds "connections" to the operator's block; so does this.
	js, _ := json.Marshal(map[string]any{
		"users": map[string]string{"alice": good},
		"connections": map[string]any{
			"good": map[string]string{"method": "eap-mschapv2", "eap_id": "alice", "secret": good},
			"bad":  map[string]string{"method": "eap-mschapv2", "eap_id": "alice", "secret": bad},
		},
	})
	ty, err := ctyjson.ImpliedType(js)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ctyjson.Unmarshal(js, ty)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Configure(context.Background(), "auth", "eap", v); err != nil {
		t.Fatal(err)
	}
	a, err := h.Authenticator("eap")
	if err != nil {
		t.Fatal(err)
	}
	ea, ok := a.(provider.EAPAuthenticator)
	if !ok {
		t.Fatalf("the host's authenticator %T is not a provider.EAPAuthenticator", a)
	}
	return ea
}

func eapRequest(conn string, server bool) *provider.EAPRequest {
	return &provider.EAPRequest{Connection: conn, Method: "eap-mschapv2", Server: server,
		LocalID: provider.Identity{Type: 2, Data: []byte("gw.lab.example")}, RemoteID: provider.Identity{Type: 2, Data: []byte("alice")}}
}

func startSession(t *testing.T, a provider.EAPAuthenticator, req *provider.EAPRequest) provider.EAPSession {
	t.Helper()
	s, err := a.StartEAP(context.Background(), req)
	if err != nil {
		t.Fatalf("StartEAP(%s, server %v): %v", req.Connection, req.Server, err)
	}
	t.Cleanup(s.Close)
	return s
}

// hostConverse runs a server and a client session against each other.
func hostConverse(t *testing.T, srv, cli provider.EAPSession) (s, c *provider.EAPStep) {
	t.Helper()
	ctx := context.Background()
	s, err := srv.Step(ctx, nil)
	if err != nil {
		t.Fatalf("server's first step: %v", err)
	}
	for range 20 {
		if c, err = cli.Step(ctx, s.Message); err != nil {
			t.Fatalf("client step: %v", err)
		}
		if c.Done {
			return s, c
		}
		if s, err = srv.Step(ctx, c.Message); err != nil {
			t.Fatalf("server step: %v", err)
		}
	}
	t.Fatal("conversation did not end in 20 rounds")
	return nil, nil
}

// TestEAPThroughHost: the engine's view of the bundled EAP plugin runs
// MSCHAPv2 between a server and a client session to equal MSKs, and to a
// Failure with a reason for a wrong password.
func TestEAPThroughHost(t *testing.T) {
	h, logs := newHost(t)
	a := startEAP(t, h)
	s, c := hostConverse(t, startSession(t, a, eapRequest("gw", true)), startSession(t, a, eapRequest("good", false)))
	if !s.Done || !s.Success || !c.Done || !c.Success {
		t.Fatalf("server %+v, client %+v: want success on both sides", s, c)
	}
	if len(s.MSK) != 64 || !bytes.Equal(s.MSK, c.MSK) {
		t.Errorf("MSKs differ or are not 64 bytes (server %d, client %d bytes)", len(s.MSK), len(c.MSK))
	}
	if string(s.Identity) != "alice" {
		t.Errorf("server learned EAP identity %q, want alice", s.Identity)
	}
	if strings.Contains(logs.String(), "correct horse") {
		t.Error("the password reached the host's log")
	}

	s, c = hostConverse(t, startSession(t, a, eapRequest("gw", true)), startSession(t, a, eapRequest("bad", false)))
	if !s.Done || s.Success || s.Reason == "" || len(s.MSK) != 0 {
		t.Errorf("server with a wrong password: done %v success %v reason %q, %d MSK bytes", s.Done, s.Success, s.Reason, len(s.MSK))
	}
	if !c.Done || c.Success {
		t.Errorf("client with a wrong password: done %v success %v", c.Done, c.Success)
	}
}

func TestEAPPluginWithoutEAP(t *testing.T) {
	h, _ := newHost(t)
	a := startPSK(t, h).(provider.EAPAuthenticator)
	_, err := a.StartEAP(context.Background(), eapRequest("gw", true))
	if err == nil || !strings.Contains(err.Error(), `auth plugin "psk" does not do EAP`) {
		t.Fatalf("StartEAP on the PSK plugin: %v", err)
	}
}

// TestEAPSessionAcrossRestart: a conversation dies with its plugin process
// and says so; the next conversation runs in the new process.
func TestEAPSessionAcrossRestart(t *testing.T) {
	h, _ := newHost(t)
	a := startEAP(t, h)
	srv := startSession(t, a, eapRequest("gw", true))
	cli := startSession(t, a, eapRequest("good", false))
	first, err := srv.Step(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	waitRestarted(t, h, "auth", "eap", killPlugin(t, h, "auth", "eap"))
	if _, err := cli.Step(context.Background(), first.Message); err == nil || !strings.Contains(err.Error(), `auth plugin "eap" exited or restarted during the EAP conversation`) {
		t.Fatalf("Step after the plugin restarted: %v", err)
	}
	srv.Close()
	srv.Close()

	s, c := hostConverse(t, startSession(t, a, eapRequest("gw", true)), startSession(t, a, eapRequest("good", false)))
	if !s.Success || !c.Success || !bytes.Equal(s.MSK, c.MSK) {
		t.Fatalf("conversation in the restarted plugin: server %v, client %v", s.Success, c.Success)
	}
}
