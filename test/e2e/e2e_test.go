// Package e2e drives two veild processes in network namespaces through the
// operator's interfaces only: HCL files, veild's command line, veilctl and its
// JSON. These are the contracts checks outside the repository rely on.
package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/test/netns"
)

// pair is two hosts on one link with daemons configured for each other.
type pair struct {
	a, b         *netns.NS
	bIf          string // b's link interface, where the wire is captured
	ca, cb       peerConfig
	da, db       *daemon
	aAddr, bAddr string
}

func writePSK(t testing.TB, dir string) string {
	p := filepath.Join(dir, "lab.psk")
	if err := os.WriteFile(p, []byte("correct horse battery staple 0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func configs(t testing.TB, aAddr, bAddr, aRemote string) (peerConfig, peerConfig) {
	dir := t.TempDir()
	psk := writePSK(t, dir)
	mk := func(side, local, remote, lid, rid, start string) peerConfig {
		d := filepath.Join(dir, side)
		os.MkdirAll(d, 0o700)
		return peerConfig{Dir: d, Socket: filepath.Join(d, "veil.sock"), Listen: local,
			Local: local, Remote: remote, LocalID: lid, RemoteID: rid, PSKFile: psk, StartAction: start}
	}
	return mk("a", aAddr, aRemote, "a.test", "b.test", "start"), mk("b", bAddr, "0.0.0.0", "b.test", "a.test", "none")
}

// newDirectPair links two namespaces directly.
func newDirectPair(t testing.TB) *pair {
	netns.Require(t)
	p := &pair{a: netns.New(t, "a"), b: netns.New(t, "b"), aAddr: "10.70.0.1", bAddr: "10.70.0.2"}
	_, p.bIf = netns.Link(t, p.a, []string{p.aAddr + "/24"}, p.b, []string{p.bAddr + "/24"})
	p.ca, p.cb = configs(t, p.aAddr, p.bAddr, p.bAddr)
	p.cb.Remote = p.aAddr
	return p
}

func (p *pair) start(t testing.TB) {
	p.db = startDaemon(t, p.b, p.cb)
	p.da = startDaemon(t, p.a, p.ca)
}

func ping(t testing.TB, ns *netns.NS, addr string) {
	t.Helper()
	if out, err := ns.Output("ping", "-c", "3", "-i", "0.2", "-W", "2", addr); err != nil {
		t.Fatalf("ping %s from %s: %v\n%s", addr, ns.Name, err, out)
	}
}

func firstIKE(t testing.TB, d *daemon) (spiI, spiR string, childIn, childOut string) {
	t.Helper()
	l := d.sas()
	if len(l.IKESAs) != 1 || len(l.IKESAs[0].Children) != 1 {
		t.Fatalf("want 1 IKE SA with 1 child, got %+v", l)
	}
	s := l.IKESAs[0]
	return s.SPIi, s.SPIr, s.Children[0].SPIIn, s.Children[0].SPIOut
}

func TestPSKEstablishAndDelete(t *testing.T) {
	p := newDirectPair(t)
	p.start(t)
	p.da.waitEstablished()
	p.db.waitEstablished()

	ai, ar, aIn, aOut := firstIKE(t, p.da)
	_ = ai
	bi, br, bIn, bOut := firstIKE(t, p.db)
	if ai != bi || ar != br {
		t.Fatalf("IKE SPIs differ: a %s/%s b %s/%s", ai, ar, bi, br)
	}
	if aIn != bOut || aOut != bIn {
		t.Fatalf("child SPIs do not pair: a in/out %s/%s, b in/out %s/%s", aIn, aOut, bIn, bOut)
	}
	l := p.da.sas()
	if s := l.IKESAs[0]; !s.Initiator || s.Children[0].Mode != "transport" {
		t.Fatalf("a: %+v", s)
	}
	esp, clear := captureDuring(t, p.b, p.bIf, func() { ping(t, p.a, p.bAddr) })
	if esp == 0 || clear != 0 {
		t.Errorf("on the wire during ping: %d ESP packets, %d cleartext ICMP", esp, clear)
	}
	if c := p.da.sas().IKESAs[0].Children[0]; c.PacketsOut < 3 || c.PacketsIn < 3 {
		t.Errorf("child counters did not move after ping: %+v", c)
	}

	// Delete: both sides forget everything.
	p.da.ctl("terminate", "lab")
	netns.WaitFor(t, "SAs deleted on both sides", 20*time.Second, func() bool {
		return len(p.da.sas().IKESAs) == 0 && len(p.db.sas().IKESAs) == 0
	})
}

func TestNATTraversal(t *testing.T) {
	netns.Require(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nftables")
	}
	a, r, b := netns.New(t, "a"), netns.New(t, "nat"), netns.New(t, "b")
	netns.Link(t, a, []string{"192.168.77.2/24"}, r, []string{"192.168.77.1/24"})
	bIf, rOut := netns.Link(t, b, []string{"10.71.0.2/24"}, r, []string{"10.71.0.1/24"})
	a.Run("ip", "route", "add", "default", "via", "192.168.77.1")
	r.Run("sysctl", "-qw", "net.ipv4.ip_forward=1")
	r.Run("nft", "add table ip nat; add chain ip nat post { type nat hook postrouting priority 100 ; }; add rule ip nat post oifname "+rOut+" masquerade")
	ca, cb := configs(t, "192.168.77.2", "10.71.0.2", "10.71.0.2")
	cb.Remote = "0.0.0.0/0"
	cb.Remote = "10.71.0.1"
	p := &pair{a: a, b: b, ca: ca, cb: cb}
	p.start(t)
	p.da.waitEstablished()
	p.db.waitEstablished()
	// Behind NAT, IKE moved to UDP 4500 (RFC 7296 §2.23): the responder sees
	// the NAT's address, the initiator talks to port 4500.
	if s := p.db.sas().IKESAs[0]; !strings.HasPrefix(s.Remote, "10.71.0.1:") {
		t.Errorf("responder sees peer at %s, want the NAT address", s.Remote)
	}
	if s := p.da.sas().IKESAs[0]; s.Remote != "10.71.0.2:4500" {
		t.Errorf("initiator talks to %s, want 10.71.0.2:4500 after NAT detection", s.Remote)
	}
	// Traffic crosses the NAT as ESP in UDP (RFC 3948), never in clear.
	esp, clear := captureDuring(t, b, bIf, func() { ping(t, a, "10.71.0.2") })
	if esp == 0 || clear != 0 {
		t.Errorf("behind the NAT during ping: %d ESP-in-UDP packets, %d cleartext ICMP", esp, clear)
	}
	// veild and its dataplane plugin share UDP 4500 (SO_REUSEPORT): two
	// sockets on the port in each namespace, in two processes.
	for _, ns := range []*netns.NS{a, b} {
		out := ns.Run("ss", "-Hunap", "sport", "=", ":4500")
		if n := strings.Count(out, "\n"); n != 2 || !strings.Contains(out, "veild") {
			t.Errorf("sockets on UDP 4500 in %s:\n%s", ns.Name, out)
		}
	}
	// Rekeys cross the NAT too (child, then IKE SA from the responder).
	ai, _, aIn, _ := firstIKE(t, p.da)
	p.da.ctl("rekey", "lab/all")
	netns.WaitFor(t, "child rekeyed through the NAT", 20*time.Second, func() bool {
		_, _, in, _ := firstIKE(t, p.da)
		_, _, _, bout := firstIKE(t, p.db)
		return in != aIn && in == bout
	})
	p.db.ctl("rekey", "lab")
	netns.WaitFor(t, "IKE SA rekeyed through the NAT", 20*time.Second, func() bool {
		i, _, _, _ := firstIKE(t, p.da)
		bi, _, _, _ := firstIKE(t, p.db)
		return i != ai && i == bi
	})
	p.da.ctl("terminate", "lab")
	netns.WaitFor(t, "SAs deleted through the NAT", 20*time.Second, func() bool {
		return len(p.da.sas().IKESAs) == 0 && len(p.db.sas().IKESAs) == 0
	})
}

func TestFragmentationSmallPathMTU(t *testing.T) {
	netns.Require(t)
	a, r, b := netns.New(t, "a"), netns.New(t, "mtu"), netns.New(t, "b")
	_, rIn := netns.Link(t, a, []string{"10.72.1.2/24"}, r, []string{"10.72.1.1/24"})
	_, rOut := netns.Link(t, b, []string{"10.72.2.2/24"}, r, []string{"10.72.2.1/24"})
	a.Run("ip", "route", "add", "10.72.2.0/24", "via", "10.72.1.1")
	b.Run("ip", "route", "add", "10.72.1.0/24", "via", "10.72.2.1")
	r.Run("sysctl", "-qw", "net.ipv4.ip_forward=1")
	// A 576-byte path that also drops IP fragments (as many middleboxes do):
	// only IKE's own fragmentation (RFC 7383) gets large messages through.
	for _, ifc := range []string{rIn, rOut} {
		r.Run("ip", "link", "set", ifc, "mtu", "576")
	}
	r.Run("nft", "add table ip f; add chain ip f filt { type filter hook forward priority 0 ; }; add rule ip f filt ip frag-off & 0x3fff != 0 drop")
	ca, cb := configs(t, "10.72.1.2", "10.72.2.2", "10.72.2.2")
	cb.Remote = "10.72.1.2"
	// ML-KEM-768's 1184-byte key goes in an encrypted IKE_INTERMEDIATE that
	// must be fragmented to cross the path.
	for _, c := range []*peerConfig{&ca, &cb} {
		c.IKEProposal = "aes256gcm16-prfsha384-x25519-ke1_mlkem768"
		c.Extra = "fragmentation = true"
		c.Daemon = "fragment_size = 548" // 576 less the IPv4 and UDP headers
	}
	p := &pair{a: a, b: b, ca: ca, cb: cb}
	p.start(t)
	p.da.waitEstablished()
	if s := p.da.sas().IKESAs[0]; !strings.Contains(s.Proposal, "mlkem768") {
		t.Errorf("proposal %q lacks the ML-KEM key exchange", s.Proposal)
	}
}

func TestFailureReasonsInStatus(t *testing.T) {
	p := newDirectPair(t)
	p.ca.IKEProposal = "aes128gcm16-prfsha256-ecp256"
	p.cb.IKEProposal = "chacha20poly1305-prfsha512-x25519"
	p.start(t)
	// The responder saw both sides' proposals and says so; the initiator
	// knows its own and that the peer refused them.
	netns.WaitFor(t, "b's proposal-mismatch failure", 30*time.Second, func() bool {
		out := p.db.ctl("status", "lab")
		return strings.Contains(out, "proposal") && strings.Contains(out, "aes128gcm16-prfsha256-ecp256") && strings.Contains(out, "chacha20poly1305-prfsha512-x25519")
	})
	netns.WaitFor(t, "a's proposal-mismatch failure", 30*time.Second, func() bool {
		out := p.da.ctl("status", "lab")
		return strings.Contains(out, "proposal") && strings.Contains(out, "aes128gcm16-prfsha256-ecp256")
	})
}

func TestControlSocketRefusesOtherUsers(t *testing.T) {
	p := newDirectPair(t)
	p.start(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("needs setpriv (util-linux)")
	}
	// veilctl itself must be reachable by nobody for this to test the socket.
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	ctl := filepath.Join(dir, "veilctl")
	data, _ := os.ReadFile(veilctl)
	os.WriteFile(ctl, data, 0o755)
	os.Chmod(filepath.Dir(p.ca.Socket), 0o755)
	out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ctl, "--socket", p.ca.Socket, "--timeout", "3s", "status").CombinedOutput()
	if err == nil {
		t.Fatalf("nobody could use the control socket:\n%s", out)
	}
}

// captureDuring runs tcpdump on interface ifc of ns (the link, not the
// dataplane's TUN device) while f runs and counts ESP packets (raw or
// UDP-encapsulated) and cleartext ICMP.
func captureDuring(t testing.TB, ns *netns.NS, ifc string, f func()) (esp, clear int) {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("needs tcpdump")
	}
	pcap := filepath.Join(t.TempDir(), "wire.pcap")
	cmd := ns.Command(context.Background(), "tcpdump", "-n", "-U", "-i", ifc, "-w", pcap, "esp or icmp or (udp port 4500 and udp[8:4] != 0)")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	netns.WaitFor(t, "tcpdump start", 5*time.Second, func() bool { _, err := os.Stat(pcap); return err == nil })
	time.Sleep(300 * time.Millisecond)
	f()
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	count := func(filter string) int {
		out, _ := exec.Command("tcpdump", "-n", "-r", pcap, filter).Output()
		return strings.Count(string(out), "\n")
	}
	return count("esp or (udp port 4500 and udp[8:4] != 0)"), count("icmp")
}
