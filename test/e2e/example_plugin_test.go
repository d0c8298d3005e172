package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veil-ipsec/veil/test/netns"
)

// envCertConfig is a certificate connection whose private key is the
// reference keyRef, resolved by the example third-party keystore plugin
// (examples/plugins/keystore-env) that veild runs from its own binary.
func envCertConfig(sock, local, remote, lid, rid, cert, keyRef, ca, start string) string {
	return daemonBlock(sock, local) + fmt.Sprintf(`
plugin "keystore" "env" {
  path = %q
  config {
    prefix = "VEIL_E2E_"
  }
}
`, keystoreEnv) + certConnection("lab", local, remote, lid, rid, cert, keyRef, ca, start)
}

// startDaemonEnv starts veild in ns with the configuration text given and
// env added to its environment (veild passes it on to its plugins).
func startDaemonEnv(t *testing.T, ns *netns.NS, socket, cfg string, env ...string) *daemon {
	t.Helper()
	dir := filepath.Dir(socket)
	os.MkdirAll(dir, 0o700)
	path := filepath.Join(dir, "veil.hcl")
	os.WriteFile(path, []byte(cfg), 0o600)
	return startDaemonPath(t, ns, peerConfig{Dir: dir, Socket: socket, Env: env}, path)
}

// takeKey returns the PEM key in path and removes the file: from then on
// the key exists only in the environment the test gives veild.
func takeKey(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	return string(b)
}

// pluginRow returns the columns of `veilctl plugins` for one plugin: KIND
// NAME STATE RESTARTS VERSION PATH.
func pluginRow(t *testing.T, d *daemon, kind, name string) []string {
	t.Helper()
	out := d.ctl("plugins")
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == kind && f[1] == name {
			return f
		}
	}
	t.Fatalf("veilctl plugins lists no %s plugin %q:\n%s", kind, name, out)
	return nil
}

// checkEnvPlugin asserts that d runs the example plugin from its binary.
func checkEnvPlugin(t *testing.T, d *daemon) {
	t.Helper()
	row := pluginRow(t, d, "keystore", "env")
	if len(row) != 6 || row[2] != "running" || row[4] != "0.1.0" || row[5] != keystoreEnv {
		t.Errorf("veilctl plugins: keystore env is %q, want running, version 0.1.0, path %s", row, keystoreEnv)
	}
}

// pingThrough pings b from a and checks the packets went through a's
// child SA.
func pingThrough(t *testing.T, p *pair) {
	t.Helper()
	ping(t, p.a, p.bAddr)
	if c := p.da.sas().IKESAs[0].Children[0]; c.PacketsOut < 3 || c.PacketsIn < 3 {
		t.Errorf("a's child counters did not move with the ping: %+v", c)
	}
}

// noKeyInLogs checks that no daemon (nor plugin, whose stderr veild logs)
// wrote key material to its log, at log level debug.
func noKeyInLogs(t *testing.T, ds ...*daemon) {
	t.Helper()
	for _, d := range ds {
		if strings.Contains(d.log.String(), "PRIVATE KEY") {
			t.Errorf("veild in %s logged key material", d.ns.Name)
		}
	}
}

// The example third-party plugin (examples/plugins/keystore-env, which
// imports only sdk/) loaded by veild as an external plugin: both daemons
// sign their AUTH with certificate keys that only the plugin can reach (in
// its environment, inherited from veild), and a reference the plugin's
// configured prefix does not allow fails the handshake with the plugin's
// reason while veild keeps serving.
func TestExampleKeystorePlugin(t *testing.T) {
	t.Run("keys from the environment", func(t *testing.T) {
		p := newDirectPair(t)
		dir := t.TempDir()
		ca := newTestCA(t, dir)
		ac, ak := ca.issue(t, dir, "a", "a.test", "ecdsa-p256")
		bc, bk := ca.issue(t, dir, "b", "b.test", "ed25519")
		p.db = startDaemonEnv(t, p.b, p.cb.Socket,
			envCertConfig(p.cb.Socket, p.bAddr, p.aAddr, "b.test", "a.test", bc, "env:VEIL_E2E_KEY", ca.path, "none"),
			"VEIL_E2E_KEY="+takeKey(t, bk))
		p.da = startDaemonEnv(t, p.a, p.ca.Socket,
			envCertConfig(p.ca.Socket, p.aAddr, p.bAddr, "a.test", "b.test", ac, "env:VEIL_E2E_KEY", ca.path, "start"),
			"VEIL_E2E_KEY="+takeKey(t, ak))
		p.da.waitEstablished()
		p.db.waitEstablished()
		pingThrough(t, p)
		checkEnvPlugin(t, p.da)
		checkEnvPlugin(t, p.db)
		noKeyInLogs(t, p.da, p.db)
	})

	t.Run("reference outside the prefix", func(t *testing.T) {
		p := newDirectPair(t)
		dir := t.TempDir()
		ca := newTestCA(t, dir)
		ac, ak := ca.issue(t, dir, "a", "a.test", "ecdsa-p256")
		bc, bk := ca.issue(t, dir, "b", "b.test", "ecdsa-p256")
		// b's key is in its environment, but under a name the plugin's
		// prefix (VEIL_E2E_) does not let it read.
		bKey := takeKey(t, bk)
		bCfg := func(ref string) string {
			return envCertConfig(p.cb.Socket, p.bAddr, p.aAddr, "b.test", "a.test", bc, ref, ca.path, "none")
		}
		p.db = startDaemonEnv(t, p.b, p.cb.Socket, bCfg("env:VEIL_OTHER_KEY"),
			"VEIL_OTHER_KEY="+bKey, "VEIL_E2E_KEY="+bKey)
		p.da = startDaemonEnv(t, p.a, p.ca.Socket,
			envCertConfig(p.ca.Socket, p.aAddr, p.bAddr, "a.test", "b.test", ac, "env:VEIL_E2E_KEY", ca.path, "start"),
			"VEIL_E2E_KEY="+takeKey(t, ak))
		out := waitStatus(t, p.db, "b's keystore failure", "VEIL_OTHER_KEY", "prefix", "VEIL_E2E_")
		if strings.Contains(out, "PRIVATE KEY") {
			t.Errorf("status shows key material:\n%s", out)
		}
		waitStatus(t, p.da, "a's auth failure", "authentication")
		if len(p.da.sas().IKESAs) != 0 || len(p.db.sas().IKESAs) != 0 {
			t.Error("an IKE SA exists although b could not sign")
		}
		checkEnvPlugin(t, p.db)

		// A variable that is not set: the plugin says so.
		os.WriteFile(p.db.path, []byte(bCfg("env:VEIL_E2E_MISSING")), 0o600)
		p.db.ctl("reload")
		p.da.ctlErr("initiate", "lab") // fails: b cannot sign
		waitStatus(t, p.db, "b's missing-variable failure", "VEIL_E2E_MISSING", "not found")

		// veild and the plugin kept running: a configuration that names an
		// allowed variable brings the SA up without a restart.
		os.WriteFile(p.db.path, []byte(bCfg("env:VEIL_E2E_KEY")), 0o600)
		p.db.ctl("reload")
		p.da.ctl("initiate", "lab")
		p.da.waitEstablished()
		p.db.waitEstablished()
		pingThrough(t, p)
		checkEnvPlugin(t, p.db)
		select {
		case err := <-p.db.done:
			t.Fatalf("b's veild exited: %v", err)
		default:
		}
		noKeyInLogs(t, p.da, p.db)
	})
}
