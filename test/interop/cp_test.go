package interop

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/test/netns"
)

// Configuration payload (RFC 7296 §2.19) against strongSwan: charon as a
// remote-access client (vips) of a veil gateway (pools, dns), and veil as
// a client of a charon gateway (swanctl pools). The pools lie inside the
// client's inner network, so the harness's tunnel selectors hold the
// address either way.

// veilVIPs reads veil's virtual IPs: assigned to it, and leased by it.
func (l *lab) veilVIPs() (local, remote []string) {
	l.t.Helper()
	var s struct {
		IKESAs []struct {
			LocalVIPs  []string `json:"local_vips"`
			RemoteVIPs []string `json:"remote_vips"`
		} `json:"ike_sas"`
	}
	if err := json.Unmarshal([]byte(l.veil.ctl("sas", "--json")), &s); err != nil || len(s.IKESAs) != 1 {
		l.t.Fatalf("veilctl sas: %v %+v", err, s)
	}
	return s.IKESAs[0].LocalVIPs, s.IKESAs[0].RemoteVIPs
}

func TestCharonClientOfVeilGateway(t *testing.T) {
	l := newLab(t, setup{Mode: "tunnel", IKEProposal: "aes256gcm16-prfsha256-x25519", ESPProposal: "aes256gcm16",
		CharonExtra: "vips = 0.0.0.0"})
	// veil's child becomes a gateway's: a pool, DNS, and the client's
	// address as its remote selector.
	cfg, err := os.ReadFile(l.veil.path)
	if err != nil {
		t.Fatal(err)
	}
	old := `remote_ts     = ["` + l.addrs.charonNet + `"]`
	if !strings.Contains(string(cfg), old) {
		t.Fatalf("harness config changed shape:\n%s", cfg)
	}
	cfg = []byte(strings.Replace(string(cfg), old, `remote_ts     = ["dynamic"]
    pools         = ["10.81.2.128/25"]
    dns           = ["10.81.1.53"]`, 1))
	if err := os.WriteFile(l.veil.path, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	l.veil.ctl("reload")
	// charon runs with install_virtual_ip = no, yet routes its child
	// through the address: it has to exist (the pool's first, below).
	l.chNS.Run("ip", "addr", "add", "10.81.2.129/32", "dev", "lo")
	l.charonInitiate()
	l.waitPaired("charon's remote-access IKE SA established on both sides", nil)
	if _, leased := l.veilVIPs(); !slices.Equal(leased, []string{"10.81.2.129"}) {
		t.Fatalf("veil leased %v", leased)
	}
	sas := l.charon.swanctl("--list-sas", "--raw")
	if !strings.Contains(sas, "local-vips=[10.81.2.129]") {
		t.Fatalf("charon's view:\n%s", sas)
	}
	// (charon runs without its resolve plugin: it reads the DNS server and
	// says it cannot install it.)
	if log := l.charon.log(); !strings.Contains(log, "processing INTERNAL_IP4_DNS attribute") {
		t.Errorf("charon got no DNS server:\n%s", log)
	}
	// Only the tunnel leads back to charon's address.
	if out, err := l.chNS.Output("ping", "-c", "3", "-i", "0.2", "-W", "2", "-I", "10.81.2.129", l.addrs.veilInner); err != nil {
		t.Fatalf("ping from charon's virtual IP: %v\n%s", err, out)
	}
}

func TestVeilClientOfCharonGateway(t *testing.T) {
	l := newLab(t, setup{Mode: "tunnel", IKEProposal: "aes256gcm16-prfsha256-x25519", ESPProposal: "aes256gcm16",
		VeilExtra: `vips = ["0.0.0.0"]`, CharonExtra: "pools = vpool"})
	pools := filepath.Join(l.charon.dir, "pools.conf")
	if err := os.WriteFile(pools, []byte("pools {\n  vpool {\n    addrs = 10.81.1.128/25\n    dns = 10.81.2.53\n  }\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l.charon.swanctl("--load-pools", "--file", pools)
	l.veil.ctl("initiate", "interop")
	l.waitPaired("veil's remote-access IKE SA established on both sides", nil)
	got, _ := l.veilVIPs()
	if len(got) != 1 || !strings.HasPrefix(got[0], "10.81.1.") {
		t.Fatalf("veil got virtual IPs %v", got)
	}
	if sas := l.charon.swanctl("--list-sas", "--raw"); !strings.Contains(sas, "remote-vips=["+got[0]+"]") {
		t.Fatalf("charon's view:\n%s", sas)
	}
	// veild put the address on its lo.
	netns.WaitFor(t, "virtual IP on veil's lo", 5*time.Second, func() bool {
		out, _ := l.veilNS.Output("ip", "-4", "addr", "show", "dev", "lo")
		return strings.Contains(string(out), got[0]+"/32")
	})
	if out, err := l.veilNS.Output("ping", "-c", "3", "-i", "0.2", "-W", "2", "-I", got[0], l.addrs.charonInner); err != nil {
		t.Fatalf("ping from veil's virtual IP: %v\n%s", err, out)
	}
}
