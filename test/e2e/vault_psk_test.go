package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/test/netns"
	vaulttest "github.com/veil-ipsec/veil/test/vault"
)

// vaultPSKConfig is a PSK connection whose pre-shared key is the KV
// version 2 field pskRef in the Vault at addr, reached by the bundled vault
// keystore with the token in tokenFile.
func vaultPSKConfig(sock, local, remote, lid, rid, addr, tokenFile, pskRef, start string) string {
	return keystorePSKConfig(sock, local, remote, lid, rid, fmt.Sprintf(`plugin "keystore" "vault" {
  config {
    address    = %q
    token_file = %q
  }
}`, addr, tokenFile), pskRef, start)
}

// keystorePSKConfig is a PSK connection whose pre-shared key is pskRef in
// the keystore plugin the block keystore configures.
func keystorePSKConfig(sock, local, remote, lid, rid, keystore, pskRef, start string) string {
	return fmt.Sprintf(`
daemon {
  control_socket = %[1]q
  listen         = [%[2]q]
  log_level      = "debug"
}
plugin "dataplane" "userspace" {}
%[6]s
connection "lab" {
  local_addrs  = [%[2]q]
  remote_addrs = [%[3]q]
  local {
    auth = "psk"
    id   = %[4]q
    psk  = %[7]q
  }
  remote {
    auth = "psk"
    id   = %[5]q
    psk  = %[7]q
  }
  child "all" {
    mode         = "transport"
    start_action = %[8]q
  }
}
`, sock, local, remote, lid, rid, keystore, pskRef, start)
}

// Both daemons' pre-shared key is a field of a KV version 2 secret in a
// real Vault server, fetched by veild through the bundled vault keystore:
// the SA comes up and carries traffic, and the key is in no log. A secret
// Vault does not have stops veild from starting, or refuses a reload while
// the running key stays in use, with an error naming the reference.
func TestVaultPSK(t *testing.T) {
	netns.Require(t)
	t.Cleanup(vaulttest.Cleanup)
	srv := vaulttest.StartOn(t, "unix:"+filepath.Join(t.TempDir(), "vault.sock"))
	srv.Mount(t, "secret", "kv", map[string]string{"version": "2"})
	const secret = "a pre-shared key kept in Vault, 32+ bytes"
	srv.Write(t, "secret/data/ipsec", map[string]any{"data": map[string]any{"lab": secret}})
	tokenFile := filepath.Join(t.TempDir(), "vault-token")
	if err := os.WriteFile(tokenFile, []byte(srv.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const ref, missing = "vault:secret/ipsec#lab", "vault:secret/ipsec#nosuch"

	p := newDirectPair(t)
	bCfg := func(pskRef string) string {
		return vaultPSKConfig(p.cb.Socket, p.bAddr, p.aAddr, "b.test", "a.test", srv.Addr, tokenFile, pskRef, "none")
	}
	p.db = startDaemonConfig(t, p.b, p.cb.Socket, bCfg(ref))
	p.da = startDaemonConfig(t, p.a, p.ca.Socket,
		vaultPSKConfig(p.ca.Socket, p.aAddr, p.bAddr, "a.test", "b.test", srv.Addr, tokenFile, ref, "start"))
	p.da.waitEstablished()
	p.db.waitEstablished()
	pingThrough(t, p)

	t.Run("reload with a missing secret", func(t *testing.T) {
		os.WriteFile(p.db.path, []byte(bCfg(missing)), 0o600)
		out, err := p.db.ctlErr("reload")
		if err == nil || !strings.Contains(out, missing) || !strings.Contains(out, "not found") {
			t.Fatalf("veilctl reload: %v\n%s\nwant a refusal naming %s", err, out, missing)
		}
		t.Logf("veilctl reload: %s", out)
		// The running key stays: a new IKE SA comes up with it.
		p.da.ctl("terminate", "lab")
		netns.WaitFor(t, "SAs deleted", 20*time.Second, func() bool {
			return len(p.da.sas().IKESAs) == 0 && len(p.db.sas().IKESAs) == 0
		})
		p.da.ctl("initiate", "lab")
		p.da.waitEstablished()
		p.db.waitEstablished()
		pingThrough(t, p)
	})

	// A key changed in Vault is used from the next reload on: with only
	// b reloaded the keys differ and a's new SA fails; with both reloaded
	// it comes up.
	t.Run("key changed in Vault", func(t *testing.T) {
		const rotated = "the next pre-shared key, also 32+ bytes"
		srv.Write(t, "secret/data/ipsec", map[string]any{"data": map[string]any{"lab": rotated}})
		os.WriteFile(p.db.path, []byte(bCfg(ref)), 0o600)
		p.db.ctl("reload")
		p.da.ctl("terminate", "lab")
		netns.WaitFor(t, "SAs deleted", 20*time.Second, func() bool {
			return len(p.da.sas().IKESAs) == 0 && len(p.db.sas().IKESAs) == 0
		})
		p.da.ctlErr("initiate", "lab") // fails: a still has the old key
		waitStatus(t, p.db, "b's auth failure", "auth", "pre-shared key")
		p.da.ctl("reload")
		p.da.ctl("initiate", "lab")
		p.da.waitEstablished()
		p.db.waitEstablished()
		pingThrough(t, p)
		for _, d := range []*daemon{p.da, p.db} {
			if strings.Contains(d.log.String(), rotated) {
				t.Errorf("veild in %s logged the new pre-shared key", d.ns.Name)
			}
		}
	})

	// EAP-MSCHAPv2 with the gateway's user password and the client's
	// password both in Vault.
	t.Run("eap passwords", func(t *testing.T) {
		const password = "alice's password, kept in Vault"
		srv.Write(t, "secret/data/eap", map[string]any{"data": map[string]any{"alice": password}})
		e := newDirectPair(t)
		clientCfg, serverCfg := eapConfigs(t, e, eapSetup{method: "eap-mschapv2", clientSecret: "(replaced by the Vault reference)",
			serverPlugin: `users = { alice = "vault:secret/eap#alice" }`})
		withVault := func(cfg string) string {
			return strings.Replace(cfg, `plugin "dataplane" "userspace" {}`, fmt.Sprintf(`plugin "dataplane" "userspace" {}
plugin "keystore" "vault" {
  config {
    address    = %q
    token_file = %q
  }
}`, srv.Addr, tokenFile), 1)
		}
		clientCfg = regexp.MustCompile(`psk = "file:[^"]*"`).ReplaceAllString(clientCfg, `psk = "vault:secret/eap#alice"`)
		if !strings.Contains(clientCfg, "vault:secret/eap#alice") {
			t.Fatalf("client config has no password reference to replace:\n%s", clientCfg)
		}
		e.db = startDaemonConfig(t, e.b, e.cb.Socket, withVault(serverCfg))
		e.da = startDaemonConfig(t, e.a, e.ca.Socket, withVault(clientCfg))
		e.da.waitEstablished()
		e.db.waitEstablished()
		ping(t, e.a, e.bAddr)
		for _, d := range []*daemon{e.da, e.db} {
			if strings.Contains(d.log.String(), password) {
				t.Errorf("veild in %s logged the EAP password", d.ns.Name)
			}
		}
	})

	t.Run("start with a missing secret", func(t *testing.T) {
		dir := t.TempDir()
		sock := filepath.Join(dir, "veil.sock")
		path := filepath.Join(dir, "veil.hcl")
		os.WriteFile(path, []byte(vaultPSKConfig(sock, "127.0.0.1", "127.0.0.2", "a.test", "b.test", srv.Addr, tokenFile, missing, "none")), 0o600) // loopback: the namespace has no link
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		ns := netns.New(t, "c")
		out, err := ns.Command(ctx, veild, "--config", path).CombinedOutput()
		if err == nil || ctx.Err() != nil {
			t.Fatalf("veild with a missing secret: %v (want it to exit with an error)\n%s", err, out)
		}
		t.Logf("veild: %s", out)
		if !strings.Contains(string(out), missing) || !strings.Contains(string(out), "not found") {
			t.Errorf("veild's error does not name %s and why:\n%s", missing, out)
		}
	})

	for _, d := range []*daemon{p.da, p.db} {
		for name, s := range map[string]string{"pre-shared key": secret, "Vault token": srv.Token} {
			if strings.Contains(d.log.String(), s) {
				t.Errorf("veild in %s logged the %s", d.ns.Name, name)
			}
		}
	}
}
