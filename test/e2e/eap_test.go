package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/test/netns"
)

// eapSetup is a remote-access pair: b is the gateway (a certificate, EAP
// server), a the client (EAP client, trusts the gateway's CA).
type eapSetup struct {
	method       string // eap-mschapv2, eap-tls, eap-md5
	clientSecret string // the client's password; "" for EAP-TLS
	serverPlugin string // the body of b's plugin "auth" "eap" config block
	clientPlugin string // the same for a, if any
	// EAP-TLS with a client certificate from elsewhere (FreeRADIUS's CA,
	// which clientCA names for the client's trust in the EAP server);
	// otherwise the test CA issues one naming the EAP identity.
	clientCert, clientKey, clientCA string
}

func eapConfigs(t *testing.T, p *pair, s eapSetup) (clientCfg, serverCfg string) {
	t.Helper()
	dir := t.TempDir()
	ca := newTestCA(t, dir)
	gwCert, gwKey := ca.issue(t, dir, "gw", "gw.test", "ecdsa-p256")
	clientAuth, eapID, clientCAs := "", "alice", fmt.Sprintf("%q", ca.path)
	switch {
	case s.clientCert != "":
		clientAuth = fmt.Sprintf("certificate = %q\n    key = \"file:%s\"", s.clientCert, s.clientKey)
		clientCAs += fmt.Sprintf(", %q", s.clientCA)
	case s.method == "eap-tls":
		// The EAP identity must be named in the client's certificate.
		eapID = "alice.test"
		cc, ck := ca.issue(t, dir, "alice", eapID, "ecdsa-p256")
		clientAuth = fmt.Sprintf("certificate = %q\n    key = \"file:%s\"", cc, ck)
	default:
		pw := filepath.Join(dir, "alice.pw")
		os.WriteFile(pw, []byte(s.clientSecret+"\n"), 0o600)
		clientAuth = fmt.Sprintf("psk = \"file:%s\"", pw)
	}
	clientPlugin := ""
	if s.clientPlugin != "" {
		clientPlugin = "plugin \"auth\" \"eap\" {\n  config {\n    " + s.clientPlugin + "\n  }\n}"
	}
	clientCfg = fmt.Sprintf(`
daemon {
  control_socket = %q
  listen         = [%q]
  log_level      = "debug"
}
plugin "dataplane" "userspace" {}
%s
connection "ra" {
  local_addrs  = [%q]
  remote_addrs = [%q]
  local {
    auth   = %q
    id     = "alice@example.test"
    eap_id = %q
    %s
  }
  remote {
    auth    = "pubkey"
    id      = "gw.test"
    cacerts = [%s]
  }
  child "all" {
    mode         = "transport"
    start_action = "start"
  }
}
`, p.ca.Socket, p.aAddr, clientPlugin, p.aAddr, p.bAddr, s.method, eapID, clientAuth, clientCAs)
	serverCfg = fmt.Sprintf(`
daemon {
  control_socket = %q
  listen         = [%q]
  log_level      = "debug"
}
plugin "dataplane" "userspace" {}
plugin "auth" "eap" {
  config {
%s
  }
}
connection "ra" {
  local_addrs = [%q]
  local {
    auth        = "pubkey"
    id          = "gw.test"
    certificate = %q
    key         = "file:%s"
  }
  remote {
    auth    = %q
    eap_id  = "%%any"
    cacerts = [%q]
  }
  child "all" {
    mode = "transport"
  }
}
`, p.cb.Socket, p.bAddr, s.serverPlugin, p.bAddr, gwCert, gwKey, s.method, ca.path)
	return clientCfg, serverCfg
}

// usersFile writes a password file for the gateway's local users.
func usersFile(t *testing.T, pw string) string {
	path := filepath.Join(t.TempDir(), "users.pw")
	os.WriteFile(path, []byte(pw+"\n"), 0o600)
	return path
}

// runEAP starts the gateway, then the client, and returns both.
func runEAP(t *testing.T, s eapSetup) *pair {
	p := newDirectPair(t)
	clientCfg, serverCfg := eapConfigs(t, p, s)
	p.db = startDaemonConfig(t, p.b, p.cb.Socket, serverCfg)
	p.da = startDaemonConfig(t, p.a, p.ca.Socket, clientCfg)
	return p
}

// EAP between two veild with the gateway's local users: the client gets
// an IKE SA and a transport-mode child that carries traffic; a wrong
// password or a method the gateway refuses is reported in veilctl status
// on both sides and leaves no SA.
func TestEAPVeilToVeil(t *testing.T) {
	const password = "alice-password-0123456789"
	t.Run("mschapv2", func(t *testing.T) {
		p := runEAP(t, eapSetup{method: "eap-mschapv2", clientSecret: password,
			serverPlugin: fmt.Sprintf("users = { alice = \"file:%s\" }", usersFile(t, password))})
		p.da.waitEstablished()
		p.db.waitEstablished()
		ping(t, p.a, p.bAddr)
	})
	t.Run("tls", func(t *testing.T) {
		p := runEAP(t, eapSetup{method: "eap-tls", serverPlugin: ""})
		p.da.waitEstablished()
		p.db.waitEstablished()
		ping(t, p.a, p.bAddr)
	})
	t.Run("md5 allowed", func(t *testing.T) {
		p := runEAP(t, eapSetup{method: "eap-md5", clientSecret: password,
			serverPlugin: fmt.Sprintf("allow_md5 = true\n    users = { alice = \"file:%s\" }", usersFile(t, password)),
			clientPlugin: "allow_md5 = true"})
		p.da.waitEstablished()
		ping(t, p.a, p.bAddr)
	})
	t.Run("md5 refused unless allowed", func(t *testing.T) {
		// Without allow_md5 the gateway refuses EAP-MD5, at start-up or
		// per handshake, saying which setting allows it.
		p := newDirectPair(t)
		clientCfg, serverCfg := eapConfigs(t, p, eapSetup{method: "eap-md5", clientSecret: password,
			serverPlugin: fmt.Sprintf("users = { alice = \"file:%s\" }", usersFile(t, password)),
			clientPlugin: "allow_md5 = true"})
		dir := filepath.Dir(p.cb.Socket)
		os.MkdirAll(dir, 0o700)
		path := filepath.Join(dir, "veil.hcl")
		os.WriteFile(path, []byte(serverCfg), 0o600)
		var log strings.Builder
		cmd := p.b.Command(context.Background(), veild, "--config", path)
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() { cmd.Process.Kill(); <-exited })
		p.da = startDaemonConfig(t, p.a, p.ca.Socket, clientCfg)
		netns.WaitFor(t, "the gateway names allow_md5", 30*time.Second, func() bool {
			return strings.Contains(log.String(), "allow_md5")
		})
		if p.da.established() {
			t.Error("EAP-MD5 succeeded without allow_md5")
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		p := runEAP(t, eapSetup{method: "eap-mschapv2", clientSecret: "not-alices-password-000",
			serverPlugin: fmt.Sprintf("users = { alice = \"file:%s\" }", usersFile(t, password))})
		netns.WaitFor(t, "gateway refuses alice", 30*time.Second, func() bool {
			return strings.Contains(p.db.ctl("status", "ra"), "EAP")
		})
		netns.WaitFor(t, "client reports the failure", 30*time.Second, func() bool {
			return strings.Contains(p.da.ctl("status", "ra"), "EAP")
		})
		if len(p.db.sas().IKESAs) != 0 {
			t.Error("the gateway kept an IKE SA for a client with a wrong password")
		}
	})
}
