package userspace

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/plugins/dataplane/userspace/tun"
	"github.com/veil-ipsec/veil/test/netns"
)

// newBenchDataplane is a Dataplane with tables only (no devices or
// sockets), enough to drive the per-packet functions.
func newBenchDataplane(b testing.TB, encr string, keyLen int) (*Dataplane, *tun.Queue) {
	d := &Dataplane{opts: Options{}, reserved: map[uint32]time.Time{}, subs: map[chan provider.Event]struct{}{}, done: make(chan struct{})}
	d.opts.defaults()
	d.tables.Store(&tables{byKey: map[provider.SAKey]*sa{}, inBySPI: map[uint32]*sa{}, outByReqID: map[uint32]*sa{}})
	key := make([]byte, keyLen)
	rand.Read(key)
	a, bb := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	ctx := context.Background()
	for _, inbound := range []bool{false, true} {
		src, dst := a, bb
		if inbound {
			src, dst = bb, a
		}
		if err := d.InstallSA(ctx, &provider.ChildSA{ReqID: 1, SPI: 0x100, Inbound: inbound, Src: src, Dst: dst,
			Mode: provider.Transport, Encryption: encr, EncKey: key, ESN: true}); err != nil {
			b.Fatal(err)
		}
	}
	any := provider.TrafficSelector{EndPort: 0xffff}
	for _, dir := range []provider.Direction{provider.Out, provider.In} {
		p := &provider.Policy{ReqID: 1, Dir: dir, Action: provider.Protect, Local: any, Remote: any}
		d.update(func(t *tables) error {
			np := &installedPolicy{Policy: *p}
			if dir == provider.Out {
				t.outPolicies = append(t.outPolicies, np)
			} else {
				t.inPolicies = append(t.inPolicies, np)
			}
			return nil
		})
	}
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	q, err := tun.QueueFromFile(f)
	if err != nil {
		b.Fatal(err)
	}
	return d, q
}

func udpPacket(buf []byte, size int) {
	p := buf[headroom : headroom+size]
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(size))
	p[8], p[9] = 64, 17
	copy(p[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	binary.BigEndian.PutUint16(p[20:], 1000)
	binary.BigEndian.PutUint16(p[22:], 2000)
}

// BenchmarkPacketPath measures the whole per-packet work of both
// directions without the system calls: policy lookup, sequence number,
// seal (sender); SPI lookup, replay check, open, header rebuild, inbound
// policy check (receiver). It must not allocate.
func BenchmarkPacketPath(b *testing.B) {
	for _, c := range []struct {
		name string
		encr string
		key  int
	}{{"aes128gcm", "aes-gcm-16", 20}, {"chacha20poly1305", "chacha20-poly1305", 36}} {
		for _, size := range []int{64, 1400} {
			b.Run(c.name+"/"+strconv.Itoa(size), func(b *testing.B) {
				d, q := newBenchDataplane(b, c.encr, c.key)
				buf := make([]byte, bufSize)
				rbuf := make([]byte, bufSize)
				t := d.tables.Load()
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					udpPacket(buf, size)
					pkt, s := d.sealOne(t, q, buf, size, 1)
					if pkt == nil {
						b.Fatal("dropped")
					}
					n := copy(rbuf[headroom:], pkt)
					d.openOne(t, rbuf, headroom, headroom+n, netip.AddrPort{}, 1)
					_ = s
				}
				in := t.inBySPI[0x100]
				if in.packets.Load() == 0 || in.authFailures.Load() != 0 || d.Stats() != (Stats{}) {
					b.Fatalf("receiver: %d packets, %+v", in.packets.Load(), d.Stats())
				}
			})
		}
	}
}

// BenchmarkIperf3 runs iperf3 TCP through an AES-GCM transport-mode SA
// between two namespaces and reports Gbit/s and the dataplanes' CPU time:
//
//	go test -run '^$' -bench Iperf3 -benchtime 1x ./plugins/dataplane/userspace/
func BenchmarkIperf3(b *testing.B) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		b.Skip("needs iperf3")
	}
	secs := 5
	if s := os.Getenv("VEIL_IPERF_SECONDS"); s != "" {
		secs, _ = strconv.Atoi(s)
	}
	for _, c := range []struct {
		name           string
		offload, encap bool
	}{{"raw", false, false}, {"raw-offload", true, false}, {"udp", false, true}, {"udp-offload", true, true}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				runIperf(b, secs, c.offload, c.encap)
			}
		})
	}
}

func runIperf(b *testing.B, secs int, offload, udp bool) {
	r := measureIperf(b, veilPath(b, offload, udp), secs)
	b.ReportMetric(r.gbps, "Gbit/s")
	b.ReportMetric(r.cpuPct, "dataplane-CPU-%")
	b.ReportMetric(float64(r.retransmits), "TCP-retransmits")
}

// iperfPath is a tunnel between two namespaces: iperf3 runs from a to dst:port
// on b, and cpu reads the CPU time the tunnel's endpoints have used so far.
type iperfPath struct {
	a, b *netns.NS
	dst  netip.Addr
	port int
	cpu  func() time.Duration
}

// veilPath is a transport-mode AES-GCM SA between two namespaces for TCP to
// protectedPort; the dataplanes run in this process, so its CPU time is
// theirs (iperf3 runs in child processes).
func veilPath(b testing.TB, offload, udp bool) iperfPath {
	a, bh := topology(b, Options{Offload: offload})
	var encap *provider.UDPEncap
	if udp {
		encap = &provider.UDPEncap{SrcPort: 4500, DstPort: 4500}
	}
	protect(b, a, bh, a.v4, bh.v4, 6, protectedPort, 1, provider.Transport, encap, "aes-gcm-16", 20)
	return iperfPath{a: a.ns, b: bh.ns, dst: bh.v4, port: protectedPort, cpu: func() time.Duration {
		var r syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &r)
		return rusageCPU(&r)
	}}
}

// iperfResult is one iperf3 TCP run: received Gbit/s, the tunnel endpoints'
// CPU use in percent of one core, and the sender's TCP retransmissions.
type iperfResult struct {
	gbps, cpuPct float64
	retransmits  int
}

func measureIperf(b testing.TB, p iperfPath, secs int) iperfResult {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := p.b.Command(ctx, "iperf3", "-s", "-1", "-p", strconv.Itoa(p.port))
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer srv.Wait()
	time.Sleep(300 * time.Millisecond)
	cpuBefore := p.cpu()
	start := time.Now()
	out, err := p.a.Output("iperf3", "-c", p.dst.String(), "-p", strconv.Itoa(p.port), "-t", strconv.Itoa(secs), "-J")
	wall := time.Since(start)
	cpu := p.cpu() - cpuBefore
	if err != nil {
		b.Fatalf("iperf3: %v\n%s", err, out)
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
		} `json:"end"`
	}
	i := strings.Index(out, "{")
	if i < 0 {
		b.Fatalf("iperf3 printed no JSON:\n%s", out)
	}
	if err := json.Unmarshal([]byte(out[i:]), &res); err != nil {
		b.Fatal(err)
	}
	if res.End.SumReceived.BitsPerSecond == 0 {
		b.Fatalf("iperf3 moved no data:\n%s", out)
	}
	return iperfResult{gbps: res.End.SumReceived.BitsPerSecond / 1e9, cpuPct: cpu.Seconds() / wall.Seconds() * 100,
		retransmits: res.End.SumSent.Retransmits}
}

func rusageCPU(r *syscall.Rusage) time.Duration {
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}
