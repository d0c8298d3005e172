package userspace

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/test/netns"
)

// wireGuardGoVersion is the wireguard-go the userspace dataplane is compared
// with (README); it builds from the Go module proxy.
const wireGuardGoVersion = "v0.0.0-20260522210424-ecfc5a8d5446"

// BenchmarkVersusWireGuard runs iperf3 TCP through veil's transport-mode SA
// (raw ESP and ESP-in-UDP, each with and without Offload) and through
// wireguard-go (configured by wireguard-tools' wg) over the same veth pair,
// alternately, for several rounds, and reports per mode the median Gbit/s,
// the tunnel endpoints' CPU (percent of one core, iperf3 excluded) and the
// ratio to wireguard-go's median:
//
//	go test -run '^$' -bench VersusWireGuard -benchtime 1x ./plugins/dataplane/userspace/
//
// VEIL_IPERF_SECONDS (default 5) and VEIL_IPERF_ROUNDS (default 3) tune it.
func BenchmarkVersusWireGuard(b *testing.B) {
	for _, tool := range []string{"iperf3", "wg"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("needs %s (Debian packages iperf3, wireguard-tools)", tool)
		}
	}
	secs, rounds := envInt("VEIL_IPERF_SECONDS", 5), envInt("VEIL_IPERF_ROUNDS", 3)
	wgBin := buildWireGuardGo(b)

	modes := []struct {
		name           string
		offload, encap bool
	}{{"raw", false, false}, {"raw-offload", true, false}, {"udp", false, true}, {"udp-offload", true, true}}
	paths := make([]iperfPath, len(modes)+1)
	for i, m := range modes {
		paths[i] = veilPath(b, m.offload, m.encap)
	}
	// wireguard-go shares the namespaces and veth pair of the first veil
	// path: the same link, with its own addresses and port.
	paths[len(modes)] = wireGuardPath(b, wgBin, paths[0].a, paths[0].b, paths[0].dst)
	names := []string{}
	for _, m := range modes {
		names = append(names, m.name)
	}
	names = append(names, "wg")

	gbps := make([][]float64, len(paths))
	cpu := make([][]float64, len(paths))
	for b.Loop() {
		for r := 0; r < rounds; r++ {
			for i, p := range paths {
				res := measureIperf(b, p, secs)
				gbps[i], cpu[i] = append(gbps[i], res.gbps), append(cpu[i], res.cpuPct)
				b.Logf("round %d %-11s %5.2f Gbit/s  CPU %4.0f %%  %d retransmits", r+1, names[i], res.gbps, res.cpuPct, res.retransmits)
			}
		}
	}
	wg := median(gbps[len(paths)-1])
	for i, name := range names {
		b.ReportMetric(median(gbps[i]), name+"-Gbit/s")
		b.ReportMetric(median(cpu[i]), name+"-CPU-%")
		if name != "wg" {
			b.ReportMetric(median(gbps[i])/wg, name+"/wg")
		}
	}
}

// wireGuardPath runs wireguard-go in namespaces a and b (tunnel addresses
// 10.99.0.1 and .2 over the link whose far end is bAddr) and configures it
// with wg.
func wireGuardPath(b testing.TB, wgBin string, a, bns *netns.NS, bAddr netip.Addr) iperfPath {
	aAddr := bAddr.Prev() // topology: a is .1, b is .2
	dir := b.TempDir()
	type end struct {
		ns         *netns.NS
		ifname     string
		key, pub   string
		tunAddr    string
		underlay   netip.Addr
		proc       *exec.Cmd
		peerTunnel string
	}
	ends := []*end{
		{ns: a, ifname: fmt.Sprintf("wgva%d", os.Getpid()%100000), tunAddr: "10.99.0.1", underlay: aAddr, peerTunnel: "10.99.0.2"},
		{ns: bns, ifname: fmt.Sprintf("wgvb%d", os.Getpid()%100000), tunAddr: "10.99.0.2", underlay: bAddr, peerTunnel: "10.99.0.1"},
	}
	for _, e := range ends {
		key, err := exec.Command("wg", "genkey").Output()
		if err != nil {
			b.Fatalf("wg genkey: %v", err)
		}
		e.key = filepath.Join(dir, e.ifname+".key")
		if err := os.WriteFile(e.key, key, 0o600); err != nil {
			b.Fatal(err)
		}
		pub := exec.Command("wg", "pubkey")
		pub.Stdin = strings.NewReader(string(key))
		out, err := pub.Output()
		if err != nil {
			b.Fatalf("wg pubkey: %v", err)
		}
		e.pub = strings.TrimSpace(string(out))
		ctx, cancel := context.WithCancel(context.Background())
		e.proc = e.ns.Command(ctx, wgBin, "-f", e.ifname)
		if err := e.proc.Start(); err != nil {
			cancel()
			b.Fatal(err)
		}
		proc, sock := e.proc, "/var/run/wireguard/"+e.ifname+".sock"
		b.Cleanup(func() { cancel(); proc.Wait(); os.Remove(sock) })
		netns.WaitFor(b, e.ifname+" UAPI socket", 10*time.Second, func() bool { _, err := os.Stat(sock); return err == nil })
	}
	for i, e := range ends {
		peer := ends[1-i]
		e.ns.Run("wg", "set", e.ifname, "private-key", e.key, "listen-port", "51820",
			"peer", peer.pub, "endpoint", netip.AddrPortFrom(peer.underlay, 51820).String(), "allowed-ips", peer.tunAddr+"/32")
		e.ns.Run("ip", "addr", "add", e.tunAddr+"/24", "dev", e.ifname)
		e.ns.Run("ip", "link", "set", e.ifname, "up")
	}
	a.Run("ping", "-c", "2", "-W", "2", "10.99.0.2")
	return iperfPath{a: a, b: bns, dst: netip.MustParseAddr("10.99.0.2"), port: protectedPort + 1, cpu: func() time.Duration {
		return procCPU(b, ends[0].proc.Process.Pid) + procCPU(b, ends[1].proc.Process.Pid)
	}}
}

// buildWireGuardGo installs wireguard-go from the module proxy once into a
// cache directory under TMPDIR and returns the binary's path.
func buildWireGuardGo(b testing.TB) string {
	dir := filepath.Join(os.TempDir(), "veil-wireguard-go-"+wireGuardGoVersion)
	bin := filepath.Join(dir, "wireguard")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "install", "golang.zx2c4.com/wireguard@"+wireGuardGoVersion)
	cmd.Dir = os.TempDir() // outside this module: the tool's own go.mod decides
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building wireguard-go %s: %v\n%s", wireGuardGoVersion, err, out)
	}
	return bin
}

// procCPU is the user plus system CPU time process pid has used
// (/proc/PID/stat fields 14 and 15, in clock ticks of 1/100 s).
func procCPU(b testing.TB, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses and may
	// contain spaces: state is field 3, utime 14, stime 15.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}
