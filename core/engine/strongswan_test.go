package engine

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/veil-ipsec/veil/core/engine/enginetest"
	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/core/transform"
	"github.com/veil-ipsec/veil/core/transport"
)

// TestStrongSwanInterop runs the engine against strongSwan's charon in a
// network namespace of its own (both on its loopback): veil initiates,
// rekeys the IKE SA and deletes it; then charon initiates to veil. The
// kernel here may lack ESP, so charon may refuse the Child SA (it cannot
// install it); the IKE SA must come up regardless, with matching SPIs.
func TestStrongSwanInterop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	charon, err := exec.LookPath("charon-systemd")
	if err != nil {
		t.Skip("strongSwan (charon-systemd) not installed")
	}
	if _, err := exec.LookPath("swanctl"); err != nil {
		t.Skip("swanctl not installed")
	}
	dir := t.TempDir()
	nsName := fmt.Sprintf("veil-eng-%d", os.Getpid())
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("ip", "netns", "add", nsName)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", nsName).Run() })
	run("ip", "-n", nsName, "link", "set", "lo", "up")
	run("ip", "-n", nsName, "addr", "add", "10.99.0.1/32", "dev", "lo")
	run("ip", "-n", nsName, "addr", "add", "10.99.0.2/32", "dev", "lo")

	vici := filepath.Join(dir, "charon.vici")
	conf := fmt.Sprintf(`charon-systemd {
  load = random nonce kdf aes sha1 sha2 hmac chapoly curve25519 kernel-netlink socket-default vici pem pkcs1 x509 pubkey
  install_routes = no
  port_nat_t = 4501
  journal { default = -1 }
  filelog { log { path = %s
      default = 1
      ike = 2
      flush_line = yes } }
  plugins { vici { socket = unix://%s } }
}
`, filepath.Join(dir, "charon.log"), vici)
	swanctl := `connections {
  veil {
    local_addrs = 10.99.0.2
    remote_addrs = 10.99.0.1
    remote_port = 600
    proposals = aes128-sha256-x25519
    local { auth = psk
      id = ss.example }
    remote { auth = psk
      id = veil.example }
    children { c1 { mode = transport
        esp_proposals = aes128-sha256 } }
  }
}
secrets { ike-1 { secret = "interop secret" } }
`
	os.WriteFile(filepath.Join(dir, "strongswan.conf"), []byte(conf), 0o600)
	os.WriteFile(filepath.Join(dir, "swanctl.conf"), []byte(swanctl), 0o600)
	cmd := exec.Command("ip", "netns", "exec", nsName, charon)
	cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+filepath.Join(dir, "strongswan.conf"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFor(t, func() bool { _, err := os.Stat(vici); return err == nil })
	sw := func(args ...string) (string, error) {
		out, err := exec.Command("ip", append([]string{"netns", "exec", nsName, "swanctl"}, append(args, "--uri", "unix://"+vici)...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := sw("--load-all", "--file", filepath.Join(dir, "swanctl.conf")); err != nil {
		t.Fatalf("swanctl: %v\n%s", err, out)
	}
	defer func() {
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "charon.log"))
			t.Logf("charon log:\n%s", log)
		}
	}()

	// Our sockets live in the namespace: create them from a thread inside it.
	me, ss := netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2")
	conn := func() *transport.UDP {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		orig, err := netns.Get()
		if err != nil {
			t.Fatal(err)
		}
		defer orig.Close()
		h, err := netns.GetFromName(nsName)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			t.Fatal(err)
		}
		defer netns.Set(orig)
		c, err := transport.ListenUDP(transport.UDPConfig{Addrs: []netip.Addr{me}, Port: 600, NATPort: 4500})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}()
	defer conn.Close()
	dp := enginetest.NewDataplane(0xc000)
	e, err := New(Config{Transport: conn, Port: 600, NATPort: 4500, Dataplane: dp,
		Authenticators: map[string]provider.Authenticator{"psk": &enginetest.PSK{Secret: []byte("interop secret")}}})
	if err != nil {
		t.Fatal(err)
	}
	c := baseConn(t, "ss", me, ss)
	c.Local.ID = provider.Identity{Type: 2, Data: []byte("veil.example")}
	c.Remote.ID = provider.Identity{Type: 2, Data: []byte("ss.example")}
	c.IKEProposals = mustProposals(t, transform.ProtoIKE, "aes128-sha256-x25519")
	c.Children[0].ESPProposals = mustProposals(t, transform.ProtoESP, "aes128-sha256")
	e.SetConnections([]Connection{c})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go e.Run(ctx)

	// veil initiates.
	if err := e.Initiate(ctx, "ss", "c1"); err != nil && !strings.Contains(err.Error(), "NO_PROPOSAL_CHOSEN") {
		t.Fatalf("initiate: %v", err)
	}
	snap := e.Snapshot()
	if len(snap) != 1 || snap[0].State != "ESTABLISHED" {
		t.Fatalf("IKE SA not established with strongSwan: %+v", snap)
	}
	listed := func() string { out, _ := sw("--list-sas"); return out }
	if out := listed(); !strings.Contains(out, snap[0].SPIi) || !strings.Contains(out, "ESTABLISHED") {
		t.Fatalf("charon does not list our SA %s:\n%s", snap[0].SPIi, out)
	}
	if err := e.Rekey(ctx, "ss", ""); err != nil {
		t.Fatalf("IKE rekey: %v", err)
	}
	waitFor(t, func() bool { s := e.Snapshot(); return len(s) == 1 && s[0].SPIi != snap[0].SPIi })
	newSPI := e.Snapshot()[0].SPIi
	waitFor(t, func() bool {
		out := listed()
		return strings.Contains(out, newSPI) && !strings.Contains(out, snap[0].SPIi)
	})
	if err := e.Terminate(ctx, "ss"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return !strings.Contains(listed(), "ESTABLISHED") })

	// charon initiates to veil (which answers on the port charon floats to).
	sw("--initiate", "--child", "c1", "--timeout", "5")
	waitFor(t, func() bool { s := e.Snapshot(); return len(s) == 1 && s[0].State == "ESTABLISHED" && !s[0].Initiator })
	if out := listed(); !strings.Contains(out, e.Snapshot()[0].SPIr) {
		t.Fatalf("charon does not list the SA veil answered:\n%s", out)
	}
}
