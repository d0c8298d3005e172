package xfrm

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/test/kernellab"
)

// TestLab boots the kernel lab once (this machine's kernel has no ESP) and
// runs the subtests below inside the guest, through the provider.Dataplane
// API as the engine would use it, between two namespaces joined by veth.
func TestLab(t *testing.T) {
	if !kernellab.InGuest() {
		kernellab.RunSelf(t, "^TestLab$")
		return
	}
	l := newLab(t)
	for _, c := range labCiphers {
		for _, v6 := range []bool{false, true} {
			name := fmt.Sprintf("transport/%s/v4", c.name)
			if v6 {
				name = fmt.Sprintf("transport/%s/v6", c.name)
			}
			t.Run(name, func(t *testing.T) { l.transport(t, c, v6) })
		}
	}
	t.Run("tunnel", l.tunnel)
	t.Run("udp-encap", l.udpEncap)
	t.Run("soft-expire", l.softExpire)
	t.Run("acquire", l.acquire)
	t.Run("mark-ifid-delete", l.markIfID)
	t.Run("reinstall", l.reinstall)
	t.Run("offload-fallback", l.offload)
	t.Run("offload-netlink", l.offloadNetlink)
	t.Run("cleanup", l.cleanup)
}

type labCipher struct {
	name, enc, integ string
	encLen, integLen int
	kernel           string
}

var labCiphers = []labCipher{
	{"aes-gcm-16", "aes-gcm-16", "", 20, 0, "rfc4106(gcm(aes))"},
	{"chacha20-poly1305", "chacha20-poly1305", "", 36, 0, "rfc7539esp(chacha20,poly1305)"},
	{"aes-cbc-sha256", "aes-cbc", "hmac-sha2-256-128", 16, 32, "hmac(sha256)"},
	{"aes-cbc-sha384", "aes-cbc", "hmac-sha2-384-192", 24, 48, "hmac(sha384)"},
	{"aes-cbc-sha512", "aes-cbc", "hmac-sha2-512-256", 32, 64, "hmac(sha512)"},
}

type lab struct {
	nsA, nsB   netns.NsHandle
	dpA, dpB   *Dataplane
	logA       *logBuffer
	eventsA    <-chan provider.Event
	a4, b4     netip.Addr
	a6, b6     netip.Addr
	nextReqID  uint32
	wire       *wire
	cancelEvts context.CancelFunc
}

func newLab(t *testing.T) *lab {
	l := &lab{
		a4: netip.MustParseAddr("10.0.0.1"), b4: netip.MustParseAddr("10.0.0.2"),
		a6: netip.MustParseAddr("fd00::1"), b6: netip.MustParseAddr("fd00::2"),
		logA: &logBuffer{}, nextReqID: 1,
	}
	l.nsA = newNS(t, "A")
	l.nsB = newNS(t, "B")
	vethPair(t, "A", "B")
	l.dpA = newDataplane(t, l.nsA, l.logA)
	l.dpB = newDataplane(t, l.nsB, nil)
	ctx, cancel := context.WithCancel(context.Background())
	l.cancelEvts = cancel
	t.Cleanup(cancel)
	var err error
	if l.eventsA, err = l.dpA.Events(ctx); err != nil {
		t.Fatal(err)
	}
	l.wire = startWire(t)
	return l
}

func randKey(t *testing.T, n int) []byte {
	k := make([]byte, n)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// pair is one Child SA between A and B: the SPIs of both directions.
type pair struct {
	reqid         uint32
	spiAB, spiBA  uint32
	a, b          netip.Addr
	keyAB, keyBA  provider.SAKey
	local, remote provider.TrafficSelector // A's view
	sas           []labSA                  // as installed, A's then B's
	policies      []labPolicy
}

type labSA struct {
	dp *Dataplane
	sa *provider.ChildSA
}

type labPolicy struct {
	dp *Dataplane
	p  *provider.Policy
}

type pairOpts struct {
	c          labCipher
	a, b       netip.Addr // SA endpoints
	mode       provider.Mode
	localTS    provider.TrafficSelector // A's side (defaults to host a)
	remoteTS   provider.TrafficSelector
	encap      *provider.UDPEncap
	soft       provider.Lifetime
	offload    string // on A's SAs
	policyPrio uint32
}

func hostTS(a netip.Addr) provider.TrafficSelector {
	return provider.TrafficSelector{Start: a, End: a, EndPort: 0xffff}
}

// install sets up both directions in both namespaces the way the engine
// does after a CREATE_CHILD_SA: each side allocates its inbound SPI, then
// installs inbound and outbound SAs and in/out policies.
func (l *lab) install(t *testing.T, o pairOpts) *pair {
	t.Helper()
	if o.mode == 0 {
		o.mode = provider.Transport
	}
	if !o.localTS.Start.IsValid() {
		o.localTS, o.remoteTS = hostTS(o.a), hostTS(o.b)
	}
	p := &pair{reqid: l.nextReqID, a: o.a, b: o.b, local: o.localTS, remote: o.remoteTS}
	l.nextReqID++
	var err error
	if p.spiAB, err = l.dpB.AllocateSPI(bg, o.a, o.b); err != nil {
		t.Fatal(err)
	}
	if p.spiBA, err = l.dpA.AllocateSPI(bg, o.b, o.a); err != nil {
		t.Fatal(err)
	}
	p.keyAB = provider.SAKey{Dst: o.b, SPI: p.spiAB}
	p.keyBA = provider.SAKey{Dst: o.a, SPI: p.spiBA}
	encAB, encBA := randKey(t, o.c.encLen), randKey(t, o.c.encLen)
	intAB, intBA := randKey(t, o.c.integLen), randKey(t, o.c.integLen)
	sa := func(spi uint32, src, dst netip.Addr, inbound bool, enc, integ []byte, encap *provider.UDPEncap, local, remote provider.TrafficSelector) *provider.ChildSA {
		return &provider.ChildSA{ReqID: p.reqid, SPI: spi, Inbound: inbound, Src: src, Dst: dst, Mode: o.mode,
			Encryption: o.c.enc, EncKey: append([]byte(nil), enc...), Integrity: o.c.integ, IntegKey: append([]byte(nil), integ...),
			ESN: true, ReplayWindow: 1024, Encap: encap, Soft: o.soft, LocalTS: []provider.TrafficSelector{local},
			RemoteTS: []provider.TrafficSelector{remote}}
	}
	var encapA, encapB *provider.UDPEncap // as seen from each side: src port = own
	if o.encap != nil {
		encapA = &provider.UDPEncap{SrcPort: o.encap.SrcPort, DstPort: o.encap.DstPort}
		encapB = &provider.UDPEncap{SrcPort: o.encap.DstPort, DstPort: o.encap.SrcPort}
	}
	p.sas = []labSA{
		{l.dpA, sa(p.spiAB, o.a, o.b, false, encAB, intAB, encapA, o.localTS, o.remoteTS)},
		{l.dpA, sa(p.spiBA, o.b, o.a, true, encBA, intBA, encapA, o.localTS, o.remoteTS)},
		{l.dpB, sa(p.spiBA, o.b, o.a, false, encBA, intBA, encapB, o.remoteTS, o.localTS)},
		{l.dpB, sa(p.spiAB, o.a, o.b, true, encAB, intAB, encapB, o.remoteTS, o.localTS)},
	}
	for _, s := range p.sas {
		if s.dp == l.dpA {
			s.sa.Offload = o.offload
		}
		if err := s.dp.InstallSA(bg, s.sa); err != nil {
			t.Fatal(err)
		}
	}
	pol := func(dir provider.Direction, local, remote provider.TrafficSelector, src, dst netip.Addr) *provider.Policy {
		return &provider.Policy{ReqID: p.reqid, Dir: dir, Action: provider.Protect, Local: local, Remote: remote,
			Priority: o.policyPrio + 100, Mode: o.mode, TmplSrc: src, TmplDst: dst}
	}
	p.policies = []labPolicy{
		{l.dpA, pol(provider.Out, o.localTS, o.remoteTS, o.a, o.b)},
		{l.dpA, pol(provider.In, o.localTS, o.remoteTS, o.b, o.a)},
		{l.dpB, pol(provider.Out, o.remoteTS, o.localTS, o.b, o.a)},
		{l.dpB, pol(provider.In, o.remoteTS, o.localTS, o.a, o.b)},
	}
	for _, s := range p.policies {
		if err := s.dp.InstallPolicy(bg, s.p); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// reset removes everything veil installed in both namespaces.
func (l *lab) reset(t *testing.T) {
	t.Helper()
	for _, d := range []*Dataplane{l.dpA, l.dpB} {
		if _, err := d.Cleanup(); err != nil {
			t.Fatal(err)
		}
	}
}

// wire records what A and B send on their veth ends for the whole lab
// (tcpdump -Q out on both: an inbound capture would also show tunnel-mode
// packets after the kernel decapsulated them). One pair of tcpdumps saves
// seconds of TCG time per subtest.
type wire struct {
	files []string
	seen  []int // lines of each file already handed out
}

func startWire(t *testing.T) *wire {
	t.Helper()
	w := &wire{}
	for _, end := range [][2]string{{"A", "va"}, {"B", "vb"}} {
		file := filepath.Join(t.TempDir(), end[1]+".pcap")
		cmd := exec.Command("ip", "netns", "exec", end[0], "tcpdump", "-Z", "root", "--immediate-mode", "-B", "4096",
			"-Q", "out", "-i", end[1], "-n", "-U", "-w", file)
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		})
		ready := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				if strings.Contains(sc.Text(), "listening on") {
					close(ready)
					break
				}
			}
			io.Copy(io.Discard, stderr)
		}()
		select {
		case <-ready:
		case <-time.After(30 * time.Second):
			t.Fatal("tcpdump did not start")
		}
		w.files = append(w.files, file)
		w.seen = append(w.seen, 0)
	}
	return w
}

// read returns the lines captured since the last consume, without consuming.
func (w *wire) read(t *testing.T) ([]string, []int) {
	t.Helper()
	var lines []string
	var total []int
	for i, f := range w.files {
		// The file is still being written; tcpdump -r prints every complete
		// packet and may complain about a partial last one.
		out, _ := exec.Command("tcpdump", "-n", "-r", f).Output()
		all := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(all) == 1 && all[0] == "" {
			all = nil
		}
		total = append(total, len(all))
		if len(all) > w.seen[i] {
			lines = append(lines, all[w.seen[i]:]...)
		}
	}
	return lines, total
}

// settle waits until the wire shows as many ESP packets of p as the SA
// counters report, then consumes and checks the new lines.
func (l *lab) settle(t *testing.T, p *pair, atLeast uint64) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		lines, total := l.wire.read(t)
		perSPI := checkWire(t, lines, false)
		ca, err := l.dpA.Counters(bg, []provider.SAKey{p.keyAB, p.keyBA})
		if err != nil {
			t.Fatal(err)
		}
		if (perSPI[p.spiAB] == ca[0].Packets && perSPI[p.spiBA] == ca[1].Packets) || time.Now().After(deadline) {
			copy(l.wire.seen, total)
			l.checkCounters(t, p, checkWire(t, lines, true), atLeast)
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// inNS runs fn on a thread inside the named namespace (sockets it creates
// stay there).
func inNS(t *testing.T, ns netns.NsHandle, fn func() error) {
	t.Helper()
	if err := inNetNS(ns, fn); err != nil {
		t.Fatal(err)
	}
}

func ping(t *testing.T, ns string, dst netip.Addr, count int, extra ...string) {
	t.Helper()
	args := append([]string{"netns", "exec", ns, "ping", "-c", fmt.Sprint(count), "-i", "0.2", "-W", "3"}, extra...)
	args = append(args, dst.String())
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ping %v from %s: %v\n%s", dst, ns, err, out)
	}
}

// tcpTransfer sends n random bytes from A to B over TCP and checks they
// arrive intact.
func (l *lab) tcpTransfer(t *testing.T, dst netip.Addr, n int) {
	t.Helper()
	var ln net.Listener
	inNS(t, l.nsB, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(dst, 0).String())
		return err
	})
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
	data := randKey(t, n)
	var c net.Conn
	inNS(t, l.nsA, func() (err error) {
		c, err = net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
		return err
	})
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case sum := <-got:
		if sum != sha256.Sum256(data) {
			t.Fatal("TCP transfer corrupted")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("TCP transfer timed out")
	}
}

// checkWire asserts nothing but ESP (and ARP, neighbour discovery, MLD) crossed
// the veth and returns the ESP packet count per SPI.
func checkWire(t *testing.T, lines []string, report bool) map[uint32]uint64 {
	t.Helper()
	perSPI := map[uint32]uint64{}
	for _, ln := range lines {
		if i := strings.Index(ln, "ESP(spi=0x"); i >= 0 {
			var spi uint32
			fmt.Sscanf(ln[i+len("ESP(spi="):], "0x%x", &spi)
			perSPI[spi]++
			continue
		}
		if strings.Contains(ln, "ARP") || strings.Contains(ln, "neighbor") || strings.Contains(ln, "router solicitation") ||
			strings.Contains(ln, "multicast listener report") || ln == "" {
			continue
		}
		if report {
			t.Errorf("plaintext on the wire: %s", ln)
		}
	}
	return perSPI
}

// checkCounters asserts both ends count what crossed the wire.
func (l *lab) checkCounters(t *testing.T, p *pair, wire map[uint32]uint64, atLeast uint64) {
	t.Helper()
	ca, err := l.dpA.Counters(bg, []provider.SAKey{p.keyAB, p.keyBA})
	if err != nil {
		t.Fatal(err)
	}
	cb, err := l.dpB.Counters(bg, []provider.SAKey{p.keyBA, p.keyAB})
	if err != nil {
		t.Fatal(err)
	}
	if ca[0].Packets < atLeast || ca[0].Packets != wire[p.spiAB] || cb[1].Packets != ca[0].Packets {
		t.Errorf("A->B: A out %d packets, wire %d, B in %d (want >= %d, all equal)", ca[0].Packets, wire[p.spiAB], cb[1].Packets, atLeast)
	}
	if ca[1].Packets < atLeast || cb[0].Packets != wire[p.spiBA] || ca[1].Packets != cb[0].Packets {
		t.Errorf("B->A: B out %d packets, wire %d, A in %d", cb[0].Packets, wire[p.spiBA], ca[1].Packets)
	}
	if ca[0].Bytes == 0 || cb[1].Bytes != ca[0].Bytes {
		t.Errorf("A->B bytes: A out %d, B in %d", ca[0].Bytes, cb[1].Bytes)
	}
	if ca[0].LastUse.IsZero() || time.Since(ca[0].LastUse) > time.Minute {
		t.Errorf("A out last use %v", ca[0].LastUse)
	}
	if ca[1].ReplayDrops != 0 || ca[1].AuthFailures != 0 {
		t.Errorf("A in: replay drops %d, auth failures %d", ca[1].ReplayDrops, ca[1].AuthFailures)
	}
}

func (l *lab) transport(t *testing.T, c labCipher, v6 bool) {
	defer l.reset(t)
	a, b := l.a4, l.b4
	if v6 {
		a, b = l.a6, l.b6
	}
	p := l.install(t, pairOpts{c: c, a: a, b: b})
	state := sh(t, "ip", "-n", "A", "xfrm", "state")
	for _, want := range []string{c.kernel, "mode transport", "replay-window 0 flag esn", "replay_window 1024", reqidText(p.reqid)} {
		if !strings.Contains(state, want) {
			t.Errorf("ip xfrm state lacks %q:\n%s", want, state)
		}
	}
	ping(t, "A", b, 3)
	l.tcpTransfer(t, b, 64<<10)
	l.settle(t, p, 3+10)
}

// tunnel: 10.1.0.1 (A) <-> 10.2.0.1 (B) through an ESP tunnel 10.0.0.1 <-> 10.0.0.2.
func (l *lab) tunnel(t *testing.T) {
	defer l.reset(t)
	sh(t, "ip", "-n", "A", "addr", "add", "10.1.0.1/32", "dev", "lo")
	sh(t, "ip", "-n", "B", "addr", "add", "10.2.0.1/32", "dev", "lo")
	sh(t, "ip", "-n", "A", "route", "add", "10.2.0.0/24", "via", "10.0.0.2", "src", "10.1.0.1")
	sh(t, "ip", "-n", "B", "route", "add", "10.1.0.0/24", "via", "10.0.0.1", "src", "10.2.0.1")
	inner := func(s string) provider.TrafficSelector {
		p := netip.MustParsePrefix(s)
		return provider.TrafficSelector{Start: p.Addr(), End: lastAddr(p), EndPort: 0xffff}
	}
	p := l.install(t, pairOpts{c: labCiphers[0], a: l.a4, b: l.b4, mode: provider.Tunnel,
		localTS: inner("10.1.0.0/24"), remoteTS: inner("10.2.0.0/24")})
	if st := sh(t, "ip", "-n", "B", "xfrm", "state"); strings.Count(st, "mode tunnel") != 2 {
		t.Errorf("B's SAs not in tunnel mode:\n%s", st)
	}
	ping(t, "A", netip.MustParseAddr("10.2.0.1"), 3)
	l.tcpTransfer(t, netip.MustParseAddr("10.2.0.1"), 16<<10)
	l.settle(t, p, 3)
}

// udpEncap: ESP in UDP 4500 (RFC 3948), as after NAT detection; the
// receiving sockets are the engine's 4500 sockets with EnableESPInUDP.
func (l *lab) udpEncap(t *testing.T) {
	defer l.reset(t)
	for _, ns := range []netns.NsHandle{l.nsA, l.nsB} {
		var conn *net.UDPConn
		inNS(t, ns, func() (err error) {
			conn, err = net.ListenUDP("udp4", &net.UDPAddr{Port: 4500})
			return err
		})
		defer conn.Close()
		raw, _ := conn.SyscallConn()
		var serr error
		raw.Control(func(fd uintptr) { serr = EnableESPInUDP(int(fd)) })
		if serr != nil {
			t.Fatal(serr)
		}
	}
	p := l.install(t, pairOpts{c: labCiphers[1], a: l.a4, b: l.b4, encap: &provider.UDPEncap{SrcPort: 4500, DstPort: 4500}})
	if st := sh(t, "ip", "-n", "A", "xfrm", "state"); !strings.Contains(st, "encap type espinudp sport 4500 dport 4500") {
		t.Errorf("no UDP encapsulation in state:\n%s", st)
	}
	ping(t, "A", l.b4, 3)
	lines, _ := l.wire.read(t)
	l.settle(t, p, 3)
	for _, ln := range lines {
		if strings.Contains(ln, "ESP(") && !strings.Contains(ln, ".4500 > ") {
			t.Errorf("ESP not in UDP 4500: %s", ln)
		}
	}
}

func waitEvent(t *testing.T, ch <-chan provider.Event, match func(provider.Event) bool) provider.Event {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("event channel closed")
			}
			if match(ev) {
				return ev
			}
		case <-deadline:
			t.Fatal("no matching event")
		}
	}
}

// softExpire: a packet-limited SA raises SoftExpire (the engine's rekey cue)
// with its reqid and key.
func (l *lab) softExpire(t *testing.T) {
	defer l.reset(t)
	p := l.install(t, pairOpts{c: labCiphers[0], a: l.a4, b: l.b4, soft: provider.Lifetime{Packets: 2}})
	ping(t, "A", l.b4, 3)
	ev := waitEvent(t, l.eventsA, func(e provider.Event) bool { return e.Kind == provider.SoftExpire && e.SA == p.keyAB })
	if ev.ReqID != p.reqid {
		t.Errorf("soft expire reqid %d, want %d", ev.ReqID, p.reqid)
	}
}

// acquire: a Trap policy without SA makes the kernel ask for one.
func (l *lab) acquire(t *testing.T) {
	defer l.reset(t)
	trap := &provider.Policy{ReqID: 77, Dir: provider.Out, Action: provider.Trap, Mode: provider.Transport,
		Local:   provider.TrafficSelector{Start: l.a4, End: l.a4, Protocol: unix.IPPROTO_TCP, EndPort: 0xffff},
		Remote:  provider.TrafficSelector{Start: l.b4, End: l.b4, Protocol: unix.IPPROTO_TCP, StartPort: 5432, EndPort: 5432},
		TmplSrc: l.a4, TmplDst: l.b4, Priority: 500}
	if err := l.dpA.InstallPolicy(bg, trap); err != nil {
		t.Fatal(err)
	}
	dialed := make(chan struct{})
	go inNetNS(l.nsA, func() error {
		defer close(dialed)
		c, err := net.DialTimeout("tcp", "10.0.0.2:5432", time.Second)
		if err == nil {
			c.Close()
		}
		return nil
	})
	ev := waitEvent(t, l.eventsA, func(e provider.Event) bool { return e.Kind == provider.Acquire })
	if ev.ReqID != 77 || ev.Policy == nil || ev.Policy.Dir != provider.Out || ev.Policy.Remote.Start != l.b4 ||
		ev.Policy.Remote.StartPort != 5432 || ev.Policy.Remote.Protocol != unix.IPPROTO_TCP || ev.Policy.TmplDst != l.b4 {
		t.Errorf("acquire event %+v policy %+v", ev, ev.Policy)
	}
	// The dial gives up while the trap still holds its SYNs; once reset
	// removes the policy, a retransmitted SYN would leave in clear and show
	// up on the wire in a later subtest.
	<-dialed
}

// markIfID: SAs and policies with a mark and an XFRM interface id (route-
// based setups) install, report counters and delete by key.
func (l *lab) markIfID(t *testing.T) {
	defer l.reset(t)
	sa := &provider.ChildSA{ReqID: 80, SPI: 0x8001, Src: l.a4, Dst: l.b4, Mode: provider.Tunnel,
		Encryption: "aes-cbc", EncKey: randKey(t, 16), Integrity: "hmac-sha2-256-128", IntegKey: randKey(t, 32),
		Mark: 0x51, IfID: 9, Hard: provider.Lifetime{Time: time.Hour, Bytes: 1 << 30}}
	if err := l.dpA.InstallSA(bg, sa); err != nil {
		t.Fatal(err)
	}
	pol := &provider.Policy{ReqID: 80, Dir: provider.Out, Action: provider.Protect, Mode: provider.Tunnel,
		Local: hostTS(l.a4), Remote: hostTS(netip.MustParseAddr("10.7.0.1")), TmplSrc: l.a4, TmplDst: l.b4,
		Mark: 0x51, IfID: 9, Priority: 300}
	if err := l.dpA.InstallPolicy(bg, pol); err != nil {
		t.Fatal(err)
	}
	st := sh(t, "ip", "-n", "A", "xfrm", "state")
	pl := sh(t, "ip", "-n", "A", "xfrm", "policy")
	for _, want := range []string{"mark 0x51/0xffffffff", "if_id 0x9"} {
		if !strings.Contains(st, want) || !strings.Contains(pl, want) {
			t.Errorf("%q missing:\n%s\n%s", want, st, pl)
		}
	}
	key := provider.SAKey{Dst: l.b4, SPI: 0x8001}
	if c, err := l.dpA.Counters(bg, []provider.SAKey{key}); err != nil || c[0].Packets != 0 {
		t.Errorf("counters of a marked SA: %v %v", c, err)
	}
	if err := l.dpA.DeleteSA(bg, key); err != nil {
		t.Fatal(err)
	}
	if err := l.dpA.DeletePolicy(bg, pol); err != nil {
		t.Fatal(err)
	}
	if st, pl := sh(t, "ip", "-n", "A", "xfrm", "state"), sh(t, "ip", "-n", "A", "xfrm", "policy"); st != "" || pl != "" {
		t.Errorf("delete left:\n%s\n%s", st, pl)
	}
	if err := l.dpA.DeleteSA(bg, key); err == nil {
		t.Error("deleting a deleted SA succeeded")
	}
}

// offload: veth has no ESP offload; "preferred" installs in software and
// logs once, "required" fails naming device and feature.
func (l *lab) offload(t *testing.T) {
	defer l.reset(t)
	sa := &provider.ChildSA{ReqID: 90, SPI: 0x9001, Src: l.a4, Dst: l.b4, Mode: provider.Transport,
		Encryption: "aes-gcm-16", EncKey: randKey(t, 20), Offload: "preferred"}
	if err := l.dpA.InstallSA(bg, sa); err != nil {
		t.Fatal(err)
	}
	sa2 := *sa
	sa2.SPI = 0x9002
	if err := l.dpA.InstallSA(bg, &sa2); err != nil {
		t.Fatal(err)
	}
	st := sh(t, "ip", "-n", "A", "xfrm", "state")
	if !strings.Contains(st, "spi 0x00009001") || strings.Contains(st, "offload") {
		t.Errorf("preferred offload on veth:\n%s", st)
	}
	if n := strings.Count(l.logA.String(), "offload preferred but unavailable"); n != 1 {
		t.Errorf("fallback logged %d times:\n%s", n, l.logA.String())
	}
	sa3 := *sa
	sa3.SPI, sa3.Offload = 0x9003, "required"
	err := l.dpA.InstallSA(bg, &sa3)
	if err == nil || !strings.Contains(err.Error(), "device va") || !strings.Contains(err.Error(), "esp-hw-offload") {
		t.Errorf("required offload on veth: %v", err)
	}
	if st := sh(t, "ip", "-n", "A", "xfrm", "state"); strings.Contains(st, "0x00009003") {
		t.Errorf("failed install left an SA:\n%s", st)
	}
}

// cleanup: a crashed instance's SAs and policies go when veil restarts,
// Close removes everything, foreign state stays.
func (l *lab) cleanup(t *testing.T) {
	l.install(t, pairOpts{c: labCiphers[0], a: l.a4, b: l.b4})
	l.install(t, pairOpts{c: labCiphers[2], a: l.a6, b: l.b6})
	if _, err := l.dpA.AllocateSPI(bg, l.b4, l.a4); err != nil { // larval SA
		t.Fatal(err)
	}
	sh(t, "ip", "-n", "A", "xfrm", "state", "add", "src", "10.0.0.9", "dst", "10.0.0.1", "proto", "esp", "spi", "0x42",
		"reqid", "1", "mode", "transport", "aead", "rfc4106(gcm(aes))", "0x0102030405060708090a0b0c0d0e0f1011121314", "128")
	// "Crash": a second instance starts on A while the first one is still there.
	d2, err := New(Options{NetNS: l.nsA})
	if err != nil {
		t.Fatal(err)
	}
	st := sh(t, "ip", "-n", "A", "xfrm", "state")
	pol := sh(t, "ip", "-n", "A", "xfrm", "policy")
	if strings.Count("\n"+st, "\nsrc ") != 1 || !strings.Contains(st, "spi 0x00000042") || pol != "" {
		t.Errorf("after restart A should keep only the foreign SA:\n%s\n%s", st, pol)
	}
	d2.Close()
	if err := l.dpB.Close(); err != nil {
		t.Fatal(err)
	}
	if st, pol := sh(t, "ip", "-n", "B", "xfrm", "state"), sh(t, "ip", "-n", "B", "xfrm", "policy"); st != "" || pol != "" {
		t.Errorf("B not empty after Close:\n%s\n%s", st, pol)
	}
	sh(t, "ip", "-n", "A", "xfrm", "state", "flush")
	if err := l.dpA.Close(); err != nil {
		t.Fatal(err)
	}
	if st, pol := sh(t, "ip", "-n", "A", "xfrm", "state"), sh(t, "ip", "-n", "A", "xfrm", "policy"); st != "" || pol != "" {
		t.Errorf("A not empty after Close:\n%s\n%s", st, pol)
	}
}

// reinstall: the host installs every SA and policy again after a restart.
// The same SA again keeps its state (sequence numbers and counters go on,
// no replay drops on the peer); new keys under the same SPIs replace the
// SAs; a policy installed again stays one kernel policy.
func (l *lab) reinstall(t *testing.T) {
	defer l.reset(t)
	p := l.install(t, pairOpts{c: labCiphers[2], a: l.a4, b: l.b4})
	ping(t, "A", l.b4, 2)
	before, err := l.dpA.Counters(bg, []provider.SAKey{p.keyAB, p.keyBA})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.sas {
		if err := s.dp.InstallSA(bg, s.sa); err != nil {
			t.Fatalf("the same SA again: %v", err)
		}
	}
	for _, s := range p.policies {
		if err := s.dp.InstallPolicy(bg, s.p); err != nil {
			t.Fatalf("the same policy again: %v", err)
		}
	}
	after, err := l.dpA.Counters(bg, []provider.SAKey{p.keyAB, p.keyBA})
	if err != nil {
		t.Fatal(err)
	}
	if after[0].Packets != before[0].Packets || after[1].Packets != before[1].Packets || before[0].Packets < 2 {
		t.Errorf("re-install reset A's counters: %+v then %+v", before, after)
	}
	for _, ns := range []string{"A", "B"} {
		st, pol := sh(t, "ip", "-n", ns, "xfrm", "state"), sh(t, "ip", "-n", ns, "xfrm", "policy")
		if strings.Count("\n"+st, "\nsrc ") != 2 || strings.Count(pol, "\tdir ") != 2 {
			t.Errorf("%s after re-install, want 2 SAs and 2 policies:\n%s\n%s", ns, st, pol)
		}
	}
	ping(t, "A", l.b4, 2)
	l.settle(t, p, 4) // counters still match the wire from the start

	// New keys under the same SPIs, on both ends: the kernel holds them.
	newKey := map[uint32][]byte{p.spiAB: randKey(t, 16), p.spiBA: randKey(t, 16)}
	for _, s := range p.sas {
		s.sa.EncKey = append([]byte(nil), newKey[s.sa.SPI]...)
		if err := s.dp.InstallSA(bg, s.sa); err != nil {
			t.Fatalf("SA 0x%08x with a new key: %v", s.sa.SPI, err)
		}
	}
	st := sh(t, "ip", "-n", "A", "xfrm", "state")
	for spi, k := range newKey {
		if !strings.Contains(st, fmt.Sprintf("0x%x", k)) {
			t.Errorf("A's SA 0x%08x lacks its new key:\n%s", spi, st)
		}
	}
	if strings.Count("\n"+st, "\nsrc ") != 2 {
		t.Errorf("A after key change, want 2 SAs:\n%s", st)
	}
	if !strings.Contains(l.logA.String(), "replacing an SA that had the same SPI and other content") {
		t.Errorf("replacement not logged:\n%s", l.logA.String())
	}
	ping(t, "A", l.b4, 2)
	l.settle(t, p, 2) // fresh SAs: counters from zero, as on the wire since
}
