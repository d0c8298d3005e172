package userspace

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	vnetns "github.com/vishvananda/netns"

	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/test/netns"
)

// inNS runs f on an OS thread switched into the namespace; the thread is
// discarded afterwards. Sockets and TUN devices created in f stay in ns.
func inNS(t testing.TB, ns *netns.NS, f func()) {
	t.Helper()
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		orig, err := vnetns.Get()
		if err != nil {
			done <- err
			return
		}
		defer orig.Close()
		h, err := vnetns.GetFromName(ns.Name)
		if err != nil {
			done <- err
			return
		}
		defer h.Close()
		if err := vnetns.Set(h); err != nil {
			done <- err
			return
		}
		f()
		// Switch back (this may be the process's main thread, which Go
		// cannot discard); only a thread that failed to return stays locked.
		if vnetns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

type host struct {
	ns     *netns.NS
	dp     *Dataplane
	v4, v6 netip.Addr
	ifname string
}

// topology makes two namespaces joined by a veth pair, each with a userspace
// dataplane.
func topology(t testing.TB, opts Options) (a, b *host) {
	return topologyFn(t, func() Options { return opts })
}

// topologyFn makes the Options inside each namespace (for sockets).
func topologyFn(t testing.TB, mkOpts func() Options) (a, b *host) {
	netns.Require(t)
	a = &host{ns: netns.New(t, "ut"), v4: netip.MustParseAddr("10.77.0.1"), v6: netip.MustParseAddr("fd00:77::1")}
	b = &host{ns: netns.New(t, "ut"), v4: netip.MustParseAddr("10.77.0.2"), v6: netip.MustParseAddr("fd00:77::2")}
	a.ifname, b.ifname = netns.Link(t, a.ns, []string{"10.77.0.1/24", "fd00:77::1/64"}, b.ns, []string{"10.77.0.2/24", "fd00:77::2/64"})
	for _, h := range []*host{a, b} {
		var err error
		inNS(t, h.ns, func() { h.dp, err = New(mkOpts()) })
		if err != nil {
			t.Fatalf("New in %s: %v", h.ns.Name, err)
		}
		dp := h.dp
		t.Cleanup(func() { dp.Close() })
	}
	return a, b
}

type saPair struct {
	out, in provider.SAKey // on the initiating host a
}

// protect installs, on both hosts, an SA pair and the policies for traffic
// from a (any port) to b's port (0 = any) with protocol proto, as the engine
// would after a CREATE_CHILD_SA: a is the client, b the server.
func protect(t testing.TB, a, b *host, aAddr, bAddr netip.Addr, proto uint8, port uint16, reqid uint32,
	mode provider.Mode, encap *provider.UDPEncap, encr string, keyLen int) saPair {
	t.Helper()
	return protectESN(t, a, b, aAddr, bAddr, proto, port, reqid, mode, encap, encr, keyLen, true)
}

func protectESN(t testing.TB, a, b *host, aAddr, bAddr netip.Addr, proto uint8, port uint16, reqid uint32,
	mode provider.Mode, encap *provider.UDPEncap, encr string, keyLen int, esn bool) saPair {
	t.Helper()
	ctx := context.Background()
	k1, k2 := make([]byte, keyLen), make([]byte, keyLen)
	rand.Read(k1)
	rand.Read(k2)
	spiAB, spiBA := 0x1000+reqid, 0x2000+reqid
	// "aes-cbc/hmac-sha2-256-128" names an integrity algorithm too.
	encr, integ, _ := strings.Cut(encr, "/")
	ik := make([]byte, 32)
	rand.Read(ik)
	mk := func(spi uint32, inbound bool, src, dst netip.Addr, key []byte) *provider.ChildSA {
		c := &provider.ChildSA{ReqID: reqid, SPI: spi, Inbound: inbound, Src: src, Dst: dst, Mode: mode,
			Encryption: encr, EncKey: append([]byte(nil), key...), ESN: esn, ReplayWindow: 1024, Encap: encap}
		if integ != "" {
			c.Integrity, c.IntegKey = integ, ik
		}
		return c
	}
	aTun, bTun := aAddr, bAddr // tunnel endpoints
	if mode == provider.Tunnel {
		aTun, bTun = a.v4, b.v4
		if aAddr.Is6() {
			aTun, bTun = a.v6, b.v6
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.dp.InstallSA(ctx, mk(spiAB, false, aTun, bTun, k1)))
	must(b.dp.InstallSA(ctx, mk(spiAB, true, aTun, bTun, k1)))
	must(b.dp.InstallSA(ctx, mk(spiBA, false, bTun, aTun, k2)))
	must(a.dp.InstallSA(ctx, mk(spiBA, true, bTun, aTun, k2)))
	host := func(x netip.Addr, p uint8, port uint16) provider.TrafficSelector {
		ts := provider.TrafficSelector{Start: x, End: x, Protocol: p, StartPort: 0, EndPort: 0xffff}
		if port != 0 {
			ts.StartPort, ts.EndPort = port, port
		}
		return ts
	}
	aTS, bTS := host(aAddr, proto, 0), host(bAddr, proto, port)
	pol := func(dir provider.Direction, local, remote provider.TrafficSelector, src, dst netip.Addr) *provider.Policy {
		return &provider.Policy{ReqID: reqid, Dir: dir, Action: provider.Protect, Local: local, Remote: remote,
			Priority: 100, Mode: mode, TmplSrc: src, TmplDst: dst}
	}
	must(a.dp.InstallPolicy(ctx, pol(provider.Out, aTS, bTS, aTun, bTun)))
	must(a.dp.InstallPolicy(ctx, pol(provider.In, aTS, bTS, bTun, aTun)))
	must(b.dp.InstallPolicy(ctx, pol(provider.Out, bTS, aTS, bTun, aTun)))
	must(b.dp.InstallPolicy(ctx, pol(provider.In, bTS, aTS, aTun, bTun)))
	return saPair{out: provider.SAKey{Dst: bTun, SPI: spiAB}, in: provider.SAKey{Dst: aTun, SPI: spiBA}}
}

func counters(t *testing.T, dp *Dataplane, k provider.SAKey) provider.Counters {
	t.Helper()
	c, err := dp.Counters(context.Background(), []provider.SAKey{k})
	if err != nil {
		t.Fatal(err)
	}
	return c[0]
}

// capture runs tcpdump on an interface inside ns until stop is called and
// returns the pcap path.
func capture(t *testing.T, ns *netns.NS, ifname string) (path string, stop func()) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "cap.pcap")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := ns.Command(ctx, "tcpdump", "-i", ifname, "-nn", "-U", "--immediate-mode", "-B", "16384", "-s", "256", "-w", path)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	netns.WaitFor(t, "tcpdump to start", 10*time.Second, func() bool { return strings.Contains(stderr.String(), "listening") })
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		// tcpdump drops what it has not yet read when interrupted: wait
		// until the file stops growing.
		var last int64 = -1
		for i := 0; i < 100; i++ {
			time.Sleep(300 * time.Millisecond)
			st, err := os.Stat(path)
			if err == nil && st.Size() == last {
				break
			}
			if err == nil {
				last = st.Size()
			}
		}
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cancel()
			<-done
		}
		cancel()
		t.Logf("tcpdump: %s", stderr.String())
	}
	t.Cleanup(stop)
	return path, stop
}

// lockedBuffer is written by exec's copying goroutine while the test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// countPackets counts the packets in a capture matching a tcpdump filter.
func countPackets(t *testing.T, path, filter string) int {
	t.Helper()
	out, err := exec.Command("tcpdump", "-r", path, "-nn", filter).Output()
	if err != nil {
		t.Fatalf("tcpdump -r %q: %v", filter, err)
	}
	return len(strings.Split(strings.TrimSpace(string(out)), "\n")) - boolInt(strings.TrimSpace(string(out)) == "")
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// transfer sends n random bytes over TCP from a to b:port and checks they
// arrive intact.
func transfer(t *testing.T, a, b *host, src, dst netip.Addr, port uint16, n int) {
	t.Helper()
	var ln net.Listener
	var err error
	inNS(t, b.ns, func() { ln, err = net.Listen("tcp", netip.AddrPortFrom(dst, port).String()) })
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan [32]byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- [32]byte{}
			return
		}
		defer c.Close()
		h := sha256.New()
		io.Copy(h, c)
		got <- [32]byte(h.Sum(nil))
	}()
	var conn net.Conn
	inNS(t, a.ns, func() {
		d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		conn, err = d.Dial("tcp", netip.AddrPortFrom(dst, port).String())
	})
	if err != nil {
		t.Fatalf("dial %s:%d: %v", dst, port, err)
	}
	data := make([]byte, n)
	rand.Read(data)
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := conn.Write(data); err != nil {
		t.Fatalf("write: %v", err)
	}
	conn.Close()
	select {
	case sum := <-got:
		if sum != sha256.Sum256(data) {
			t.Fatalf("TCP transfer to %s:%d corrupted or incomplete", dst, port)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("TCP transfer timed out")
	}
}

const protectedPort = 5201

func TestTransportModeTwoNamespaces(t *testing.T) {
	a, b := topology(t, Options{})
	tcp4 := protect(t, a, b, a.v4, b.v4, 6, protectedPort, 1, provider.Transport, nil, "aes-gcm-16", 20)
	icmp4 := protect(t, a, b, a.v4, b.v4, 1, 0, 2, provider.Transport, nil, "chacha20-poly1305", 36)
	tcp6 := protect(t, a, b, a.v6, b.v6, 6, protectedPort, 3, provider.Transport, nil, "aes-gcm-16", 36)

	pcap, stop := capture(t, b.ns, b.ifname)

	out := a.ns.Run("ping", "-c", "3", "-i", "0.2", "-W", "2", b.v4.String())
	if !strings.Contains(out, "3 received") {
		t.Fatalf("ping through ESP:\n%s", out)
	}
	transfer(t, a, b, a.v4, b.v4, protectedPort, 10<<20)
	transfer(t, a, b, a.v6, b.v6, protectedPort, 1<<20)
	// Unprotected traffic still flows, in clear.
	transfer(t, a, b, a.v4, b.v4, 8080, 64<<10)
	a.ns.Run("ping", "-c", "1", "-W", "2", b.v6.String())
	stop()

	if n := countPackets(t, pcap, "tcp port 5201"); n != 0 {
		t.Errorf("%d cleartext packets of the protected TCP port on the wire", n)
	}
	if n := countPackets(t, pcap, "icmp"); n != 0 {
		t.Errorf("%d cleartext ICMP packets on the wire", n)
	}
	if n := countPackets(t, pcap, "esp"); n < 1000 {
		t.Errorf("only %d ESP packets on the wire", n)
	}
	if n := countPackets(t, pcap, "ip6 and esp"); n < 50 {
		t.Errorf("only %d IPv6 ESP packets", n)
	}
	if n := countPackets(t, pcap, "tcp port 8080"); n == 0 {
		t.Error("unprotected TCP did not flow in clear")
	}
	// What the wire saw per SPI equals what each side counted.
	for _, p := range []saPair{tcp4, icmp4, tcp6} {
		for _, k := range []provider.SAKey{p.out, p.in} {
			sender, receiver := a.dp, b.dp
			if k == p.in {
				sender, receiver = b.dp, a.dp
			}
			cs, cr := counters(t, sender, k), counters(t, receiver, k)
			wire := countPackets(t, pcap, fmt.Sprintf("(ip proto 50 and ip[20:4] = %d) or (ip6 proto 50 and ip6[40:4] = %d)", k.SPI, k.SPI))
			if cs.Packets == 0 || cs.Packets != cr.Packets || cs.Bytes != cr.Bytes || int(cs.Packets) != wire {
				t.Errorf("SPI %#x: sent %d/%dB, received %d/%dB, on the wire %d", k.SPI, cs.Packets, cs.Bytes, cr.Packets, cr.Bytes, wire)
			}
			if cr.LastUse.IsZero() || cr.ReplayDrops != 0 || cr.AuthFailures != 0 {
				t.Errorf("SPI %#x: %+v", k.SPI, cr)
			}
		}
	}
	if c := counters(t, a.dp, icmp4.out); c.Packets != 3 {
		t.Errorf("ICMP SA sent %d packets, want 3", c.Packets)
	}
}

// TestOffloadUDPEncap is TestOffloadTSO over ESP-in-UDP, where UDP GSO
// sends runs of ESP packets in one system call and UDP GRO receives them.
func TestOffloadUDPEncap(t *testing.T) {
	a, b := topology(t, Options{Offload: true})
	encap := &provider.UDPEncap{SrcPort: 4500, DstPort: 4500}
	p4 := protect(t, a, b, a.v4, b.v4, 6, protectedPort, 1, provider.Transport, encap, "aes-gcm-16", 20)
	p6 := protect(t, a, b, a.v6, b.v6, 6, protectedPort, 2, provider.Transport, encap, "chacha20-poly1305", 36)
	pcap, stop := capture(t, b.ns, b.ifname)
	transfer(t, a, b, a.v4, b.v4, protectedPort, 8<<20)
	transfer(t, a, b, a.v6, b.v6, protectedPort, 2<<20)
	stop()
	if n := countPackets(t, pcap, "tcp port 5201"); n != 0 {
		t.Errorf("%d cleartext packets", n)
	}
	for _, k := range []provider.SAKey{p4.out, p6.out} {
		ca, cb := counters(t, a.dp, k), counters(t, b.dp, k)
		// The capture sees GSO datagrams before segmentation, so it has
		// fewer (larger) frames than ESP packets: compare the counters only.
		if ca.Packets == 0 || ca.Packets != cb.Packets || cb.AuthFailures != 0 {
			t.Errorf("SPI %#x: sent %+v received %+v", k.SPI, ca, cb)
		}
	}
	if s := b.dp.Stats(); s.UDPGROPackets == 0 || s.Malformed != 0 {
		t.Errorf("receiver stats %+v (want merged datagrams)", s)
	}
}

// TestOffloadTSO runs the transport-mode transfer with the TUN device in
// virtio-net header mode, where the kernel hands over TCP segments of up to
// 64 KiB that the dataplane cuts before sealing.
func TestOffloadTSO(t *testing.T) {
	a, b := topology(t, Options{Offload: true})
	p4 := protect(t, a, b, a.v4, b.v4, 6, protectedPort, 1, provider.Transport, nil, "aes-gcm-16", 20)
	p6 := protect(t, a, b, a.v6, b.v6, 6, protectedPort, 2, provider.Transport, nil, "aes-gcm-16", 20)
	protect(t, a, b, a.v4, b.v4, 1, 0, 3, provider.Transport, nil, "aes-gcm-16", 20)
	pcap, stop := capture(t, b.ns, b.ifname)
	out := a.ns.Run("ping", "-c", "2", "-i", "0.2", "-W", "2", b.v4.String())
	if !strings.Contains(out, "2 received") {
		t.Fatalf("ping:\n%s", out)
	}
	transfer(t, a, b, a.v4, b.v4, protectedPort, 8<<20)
	transfer(t, a, b, a.v6, b.v6, protectedPort, 2<<20)
	stop()
	if n := countPackets(t, pcap, "tcp port 5201"); n != 0 {
		t.Errorf("%d cleartext packets", n)
	}
	for _, k := range []provider.SAKey{p4.out, p6.out} {
		ca, cb := counters(t, a.dp, k), counters(t, b.dp, k)
		if ca.Packets == 0 || ca.Packets != cb.Packets || cb.AuthFailures != 0 {
			t.Errorf("SPI %#x: sent %+v received %+v", k.SPI, ca, cb)
		}
	}
	if s := a.dp.Stats(); s.Malformed != 0 || s.TooBig != 0 || s.TSOPackets == 0 {
		t.Errorf("sender stats %+v (want TSO packets)", s)
	}
	if s := b.dp.Stats(); s.GROPackets == 0 || s.Malformed != 0 {
		t.Errorf("receiver stats %+v (want coalesced runs)", s)
	}
}
