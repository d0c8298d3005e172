package userspace

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/test/netns"
)

func TestUDPEncapsulation(t *testing.T) {
	var ikeSeen atomic.Int32
	a, b := topology(t, Options{IKE: func(pkt []byte, from netip.AddrPort) {
		if string(pkt) == "IKE!" {
			ikeSeen.Add(1)
		}
	}})
	encap := &provider.UDPEncap{SrcPort: 4500, DstPort: 4500}
	p4 := protect(t, a, b, a.v4, b.v4, 6, protectedPort, 1, provider.Transport, encap, "chacha20-poly1305", 36)
	p6 := protect(t, a, b, a.v6, b.v6, 6, protectedPort, 2, provider.Transport, encap, "aes-gcm-16", 20)
	pcap, stop := capture(t, b.ns, b.ifname)
	transfer(t, a, b, a.v4, b.v4, protectedPort, 2<<20)
	transfer(t, a, b, a.v6, b.v6, protectedPort, 1<<20)

	// An IKE message (non-ESP marker) on port 4500 goes to the IKE handler.
	var c net.PacketConn
	var err error
	inNS(t, a.ns, func() { c, err = net.ListenPacket("udp4", "10.77.0.1:0") })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteTo([]byte("\x00\x00\x00\x00IKE!"), &net.UDPAddr{IP: b.v4.AsSlice(), Port: 4500})
	c.WriteTo([]byte{0xff}, &net.UDPAddr{IP: b.v4.AsSlice(), Port: 4500}) // NAT keepalive
	netns.WaitFor(t, "IKE packet handed over", 5*time.Second, func() bool { return ikeSeen.Load() == 1 })
	stop()

	if n := countPackets(t, pcap, "tcp port 5201"); n != 0 {
		t.Errorf("%d cleartext packets", n)
	}
	if n := countPackets(t, pcap, "ip proto 50 or ip6 proto 50"); n != 0 {
		t.Errorf("%d raw ESP packets, want UDP encapsulation only", n)
	}
	for _, k := range []provider.SAKey{p4.out, p6.out} {
		c := counters(t, b.dp, k)
		if c.Packets == 0 || c.Packets != counters(t, a.dp, k).Packets {
			t.Errorf("SPI %#x: %+v", k.SPI, c)
		}
	}
	if n := countPackets(t, pcap, "udp port 4500"); n < 1000 {
		t.Errorf("only %d ESP-in-UDP packets", n)
	}
	if b.dp.Stats().Malformed != 0 {
		t.Errorf("keepalive or IKE counted as malformed: %+v", b.dp.Stats())
	}
}

func TestTunnelMode(t *testing.T) {
	a, b := topology(t, Options{})
	inA, inB := netip.MustParseAddr("10.8.0.1"), netip.MustParseAddr("10.9.0.1")
	inA6, inB6 := netip.MustParseAddr("fd00:8::1"), netip.MustParseAddr("fd00:9::1")
	a.ns.Run("ip", "addr", "add", "10.8.0.1/32", "dev", "lo")
	b.ns.Run("ip", "addr", "add", "10.9.0.1/32", "dev", "lo")
	a.ns.Run("ip", "addr", "add", "fd00:8::1/128", "dev", "lo")
	b.ns.Run("ip", "addr", "add", "fd00:9::1/128", "dev", "lo")
	p := protect(t, a, b, inA, inB, 0, 0, 1, provider.Tunnel, nil, "aes-gcm-16", 20)
	p6 := protect(t, a, b, inA6, inB6, 6, 0, 2, provider.Tunnel, nil, "chacha20-poly1305", 36)
	pcap, stop := capture(t, b.ns, b.ifname)
	out := a.ns.Run("ping", "-c", "2", "-i", "0.2", "-W", "2", "-I", "10.8.0.1", "10.9.0.1")
	if !strings.Contains(out, "2 received") {
		t.Fatalf("ping through the tunnel:\n%s", out)
	}
	transfer(t, a, b, inA, inB, 7000, 1<<20)
	transfer(t, a, b, inA6, inB6, 7001, 256<<10) // IPv6 inner over an IPv6 outer tunnel
	stop()
	if n := countPackets(t, pcap, "host 10.9.0.1 or host 10.8.0.1 or host fd00:9::1"); n != 0 {
		t.Errorf("%d packets with inner addresses on the wire", n)
	}
	if n := countPackets(t, pcap, "ip proto 50"); n < 100 {
		t.Errorf("%d IPv4 ESP packets", n)
	}
	if n := countPackets(t, pcap, "ip6 proto 50"); n < 20 {
		t.Errorf("%d IPv6 ESP packets", n)
	}
	for _, k := range []provider.SAKey{p.out, p6.out} {
		if c := counters(t, b.dp, k); c.Packets == 0 || c.Packets != counters(t, a.dp, k).Packets {
			t.Errorf("SPI %#x: %+v", k.SPI, c)
		}
	}
}

// firstESP returns the first captured IPv4 ESP packet (from the ESP header
// on) with the given SPI.
func firstESP(t *testing.T, path string, spi uint32) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil || len(data) < 24 {
		t.Fatalf("pcap: %v", err)
	}
	for p := data[24:]; len(p) >= 16; {
		n := int(binary.LittleEndian.Uint32(p[8:]))
		if len(p) < 16+n {
			break
		}
		frame := p[16 : 16+n]
		p = p[16+n:]
		if len(frame) < 14+20 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
			continue
		}
		ip := frame[14:]
		ihl := int(ip[0]&0x0f) * 4
		if ip[9] != 50 || len(ip) < ihl+8 || binary.BigEndian.Uint32(ip[ihl:]) != spi {
			continue
		}
		total := int(binary.BigEndian.Uint16(ip[2:]))
		if total > len(ip) {
			t.Fatal("captured ESP packet truncated")
		}
		return append([]byte(nil), ip[ihl:total]...)
	}
	t.Fatalf("no ESP packet with SPI %#x captured", spi)
	return nil
}

func TestReplayTamperWrongSPI(t *testing.T) {
	a, b := topology(t, Options{})
	p := protect(t, a, b, a.v4, b.v4, 1, 0, 1, provider.Transport, nil, "aes-gcm-16", 20)
	pcap, stop := capture(t, b.ns, b.ifname)
	a.ns.Run("ping", "-c", "2", "-i", "0.2", "-W", "2", b.v4.String())
	stop()
	pkt := firstESP(t, pcap, p.out.SPI)
	before := counters(t, b.dp, p.out)

	var raw net.PacketConn
	var err error
	inNS(t, a.ns, func() { raw, err = net.ListenPacket("ip4:50", a.v4.String()) })
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	send := func(b []byte) {
		if _, err := raw.WriteTo(b, &net.IPAddr{IP: net.IP(netip.MustParseAddr("10.77.0.2").AsSlice())}); err != nil {
			t.Fatal(err)
		}
	}

	send(pkt) // replay
	netns.WaitFor(t, "replay drop", 5*time.Second, func() bool { return counters(t, b.dp, p.out).ReplayDrops == 1 })

	tampered := append([]byte(nil), pkt...)
	binary.BigEndian.PutUint32(tampered[4:], 5000) // fresh sequence number...
	send(tampered)                                 // ...but the ICV covers it
	tampered = append([]byte(nil), pkt...)
	binary.BigEndian.PutUint32(tampered[4:], 5001)
	tampered[len(tampered)-20] ^= 0x40 // bit flip in the ciphertext
	send(tampered)
	netns.WaitFor(t, "auth failures", 5*time.Second, func() bool { return counters(t, b.dp, p.out).AuthFailures == 2 })

	wrong := append([]byte(nil), pkt...)
	binary.BigEndian.PutUint32(wrong, 0xdeadbeef)
	send(wrong)
	netns.WaitFor(t, "wrong-SPI drop", 5*time.Second, func() bool { return b.dp.Stats().WrongSPI == 1 })

	after := counters(t, b.dp, p.out)
	if after.Packets != before.Packets || after.Bytes != before.Bytes {
		t.Fatalf("dropped packets were delivered: before %+v after %+v", before, after)
	}
	// The SA still works afterwards (the forged sequence numbers did not
	// move the window).
	out := a.ns.Run("ping", "-c", "1", "-W", "2", b.v4.String())
	if !strings.Contains(out, "1 received") {
		t.Fatalf("ping after attack:\n%s", out)
	}
}

func TestNoSAFailsClosed(t *testing.T) {
	a, b := topology(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := a.dp.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := protect(t, a, b, a.v4, b.v4, 6, protectedPort, 7, provider.Transport, nil, "aes-gcm-16", 20)
	if err := a.dp.DeleteSA(ctx, p.out); err != nil {
		t.Fatal(err)
	}
	// And a Trap policy for another port, as the engine installs before
	// any SA exists.
	trap := &provider.Policy{ReqID: 8, Dir: provider.Out, Action: provider.Trap,
		Local:  provider.TrafficSelector{Start: a.v4, End: a.v4, Protocol: 6, EndPort: 0xffff},
		Remote: provider.TrafficSelector{Start: b.v4, End: b.v4, Protocol: 6, StartPort: 5202, EndPort: 5202}}
	if err := a.dp.InstallPolicy(ctx, trap); err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	inNS(t, b.ns, func() { ln, err = net.Listen("tcp", ":5201") })
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var ln2 net.Listener
	inNS(t, b.ns, func() { ln2, err = net.Listen("tcp", ":5202") })
	if err != nil {
		t.Fatal(err)
	}
	defer ln2.Close()
	pcap, stop := capture(t, b.ns, b.ifname)
	for _, port := range []string{"5201", "5202"} {
		var c net.Conn
		inNS(t, a.ns, func() { c, err = net.DialTimeout("tcp", "10.77.0.2:"+port, 1500*time.Millisecond) })
		if err == nil {
			c.Close()
			t.Fatalf("connection to protected port %s without SA succeeded", port)
		}
	}
	stop()
	if n := countPackets(t, pcap, "tcp port 5201 or tcp port 5202"); n != 0 {
		t.Fatalf("%d cleartext packets of protected traffic without SA", n)
	}
	seen := map[uint32]bool{}
	timeout := time.After(5 * time.Second)
	for !seen[7] || !seen[8] {
		select {
		case e := <-events:
			if e.Kind == provider.Acquire && e.Policy != nil {
				seen[e.ReqID] = true
			}
		case <-timeout:
			t.Fatalf("Acquire events seen for %v, want reqids 7 and 8", seen)
		}
	}
	if a.dp.Stats().NoSA == 0 {
		t.Fatal("NoSA drops not counted")
	}
	// Deleting the Trap policy removes its rule: the port is reachable in
	// clear again.
	if err := a.dp.DeletePolicy(ctx, trap); err != nil {
		t.Fatal(err)
	}
	var c net.Conn
	inNS(t, a.ns, func() { c, err = net.DialTimeout("tcp", "10.77.0.2:5202", 3*time.Second) })
	if err != nil {
		t.Fatalf("after deleting the Trap policy: %v", err)
	}
	c.Close()
}

func TestTooBigAndSeqExhausted(t *testing.T) {
	a, b := topology(t, Options{TUNMTU: 1500})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := a.dp.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 32-bit sequence numbers: the receiver can follow a jump to near 2^32
	// (with ESN it could not infer the high half after a jump of 2^64).
	p := protectESN(t, a, b, a.v4, b.v4, 1, 0, 1, provider.Transport, nil, "aes-gcm-16", 20, false)
	out, _ := a.ns.Output("ping", "-c", "2", "-i", "0.3", "-W", "1", "-M", "do", "-s", "1472", b.v4.String())
	if !strings.Contains(strings.ToLower(out), "mtu") {
		t.Fatalf("oversize DF ping got no fragmentation-needed:\n%s", out)
	}
	if a.dp.Stats().TooBig == 0 {
		t.Fatal("oversize packets not counted")
	}
	a.ns.Run("ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1400", b.v4.String())

	s := a.dp.tables.Load().outByReqID[1]
	s.seq.Store(s.seqSoft - 1)
	a.ns.Run("ping", "-c", "1", "-W", "2", b.v4.String())
	timeout := time.After(5 * time.Second)
	for got := false; !got; {
		select {
		case e := <-events:
			got = e.Kind == provider.SeqExhausted && e.SA == p.out
		case <-timeout:
			t.Fatal("no SeqExhausted event")
		}
	}
	s.seq.Store(s.seqLimit)
	if out, err := a.ns.Output("ping", "-c", "1", "-W", "1", b.v4.String()); err == nil {
		t.Fatalf("ping after sequence exhaustion succeeded:\n%s", out)
	}
	if a.dp.Stats().SeqExhausted == 0 {
		t.Fatal("exhausted drops not counted")
	}
}

func TestLeftoversRemoved(t *testing.T) {
	netns.Require(t)
	ns := netns.New(t, "ut")
	// A crashed run left a rule in our range and a route in our table.
	ns.Run("ip", "link", "add", "dummy0", "type", "veth", "peer", "name", "dummy1")
	ns.Run("ip", "link", "set", "dummy0", "up")
	ns.Run("ip", "rule", "add", "priority", "10100", "to", "10.1.2.3", "lookup", "32273")
	ns.Run("ip", "route", "add", "10.1.2.0/24", "dev", "dummy0", "table", "32273")
	var dp *Dataplane
	var err error
	inNS(t, ns, func() { dp, err = New(Options{TUNName: "veiltest0", UDPPort: -1}) })
	if err != nil {
		t.Fatal(err)
	}
	if out := ns.Run("ip", "rule"); strings.Contains(out, "10.1.2.3") {
		t.Fatalf("leftover rule kept:\n%s", out)
	}
	if out := ns.Run("ip", "route", "show", "table", "32273"); strings.Contains(out, "10.1.2.0") {
		t.Fatalf("leftover route kept:\n%s", out)
	}
	err = dp.InstallPolicy(context.Background(), &provider.Policy{ReqID: 1, Dir: provider.Out, Action: provider.Trap,
		Local:  provider.TrafficSelector{Start: netip.MustParseAddr("10.0.0.1"), End: netip.MustParseAddr("10.0.0.1"), EndPort: 0xffff},
		Remote: provider.TrafficSelector{Start: netip.MustParseAddr("10.0.0.0"), End: netip.MustParseAddr("10.0.0.9"), Protocol: 17, StartPort: 53, EndPort: 53}})
	if err != nil {
		t.Fatal(err)
	}
	if out := ns.Run("ip", "rule"); !strings.Contains(out, "10.0.0.8/31 ipproto udp dport 53 lookup 32273") {
		t.Fatalf("policy rules missing:\n%s", out)
	}
	if out := ns.Run("ip", "link"); !strings.Contains(out, "veiltest0") || !strings.Contains(out, "mtu 1415") {
		t.Fatalf("TUN device:\n%s", out)
	}
	dp.Close()
	rules := ns.Run("ip", "rule") + ns.Run("ip", "-6", "rule")
	if strings.Contains(rules, "32273") || strings.Contains(rules, "fwmark") {
		t.Fatalf("rules left after Close:\n%s", rules)
	}
	if out := ns.Run("ip", "link"); strings.Contains(out, "veiltest0") {
		t.Fatalf("TUN device left after Close:\n%s", out)
	}
	if out := ns.Run("ip", "route", "show", "table", "all"); strings.Contains(out, "table 32273") {
		t.Fatalf("routes left after Close:\n%s", out)
	}
}

func TestBypassInsideProtectedRangeAndCBC(t *testing.T) {
	a, b := topology(t, Options{})
	ctx := context.Background()
	p := protect(t, a, b, a.v4, b.v4, 6, 0, 1, provider.Transport, nil, "aes-cbc/hmac-sha2-256-128", 16)
	// Bypass TCP port 8080 on both sides, as an operator's passthrough
	// policy with a higher priority (lower number) than the Protect one.
	for _, x := range []struct {
		h             *host
		local, remote provider.TrafficSelector
	}{
		{a, provider.TrafficSelector{Start: a.v4, End: a.v4, Protocol: 6, EndPort: 0xffff}, provider.TrafficSelector{Start: b.v4, End: b.v4, Protocol: 6, StartPort: 8080, EndPort: 8080}},
		{b, provider.TrafficSelector{Start: b.v4, End: b.v4, Protocol: 6, StartPort: 8080, EndPort: 8080}, provider.TrafficSelector{Start: a.v4, End: a.v4, Protocol: 6, EndPort: 0xffff}},
	} {
		if err := x.h.dp.InstallPolicy(ctx, &provider.Policy{Dir: provider.Out, Action: provider.Bypass, Local: x.local, Remote: x.remote, Priority: 10}); err != nil {
			t.Fatal(err)
		}
	}
	pcap, stop := capture(t, b.ns, b.ifname)
	transfer(t, a, b, a.v4, b.v4, protectedPort, 1<<20)
	transfer(t, a, b, a.v4, b.v4, 8080, 256<<10)
	stop()
	if n := countPackets(t, pcap, "tcp port 5201"); n != 0 {
		t.Errorf("%d cleartext packets of protected TCP", n)
	}
	if n := countPackets(t, pcap, "tcp port 8080"); n == 0 {
		t.Error("bypassed TCP did not flow in clear")
	}
	if c := counters(t, b.dp, p.out); c.Packets == 0 || c.AuthFailures != 0 {
		t.Errorf("CBC SA: %+v", c)
	}

	// An SA with more overhead than the default TUN MTU allows for lowers
	// the TUN MTU; deleting it restores the default.
	mtu := func() string { return a.ns.Run("cat", "/sys/class/net/veil0/mtu") }
	if m := strings.TrimSpace(mtu()); m != "1415" {
		t.Fatalf("TUN MTU %s", m)
	}
	big := &provider.ChildSA{ReqID: 99, SPI: 0x9999, Src: a.v6, Dst: b.v6, Mode: provider.Tunnel, Encryption: "aes-cbc",
		EncKey: make([]byte, 32), Integrity: "hmac-sha2-512-256", IntegKey: make([]byte, 64), Encap: &provider.UDPEncap{SrcPort: 4500, DstPort: 4500}}
	if err := a.dp.InstallSA(ctx, big); err != nil {
		t.Fatal(err)
	}
	if m := strings.TrimSpace(mtu()); m == "1415" {
		t.Fatal("TUN MTU not lowered for an SA with more overhead")
	}
	if err := a.dp.DeleteSA(ctx, provider.SAKey{Dst: b.v6, SPI: 0x9999}); err != nil {
		t.Fatal(err)
	}
	if m := strings.TrimSpace(mtu()); m != "1415" {
		t.Fatalf("TUN MTU %s after delete", m)
	}
}

// TestProvidedUDPSocket hands the dataplane an already open port-4500
// socket (as the IKE daemon will) and checks ESP-in-UDP flows over it, IKE
// datagrams come back through the callback, and Close leaves the socket
// usable for its owner.
func TestProvidedUDPSocket(t *testing.T) {
	var ike atomic.Int32
	var conns []net.PacketConn
	a, b := topologyFn(t, func() Options {
		c, err := listenMarked("udp4", "0.0.0.0:4500", 0x7e110000)
		if err != nil {
			t.Error(err) // not the test goroutine: New then fails the test
			return Options{UDPPort: -1, DisableRawESP: true, TUNName: "bad name with spaces"}
		}
		conns = append(conns, c)
		return Options{UDPConns: []net.PacketConn{c}, IKE: func([]byte, netip.AddrPort) { ike.Add(1) }}
	})
	for _, c := range conns {
		defer c.Close()
	}
	p := protect(t, a, b, a.v4, b.v4, 6, protectedPort, 1, provider.Transport, &provider.UDPEncap{SrcPort: 4500, DstPort: 4500}, "aes-gcm-16", 20)
	transfer(t, a, b, a.v4, b.v4, protectedPort, 1<<20)
	if c := counters(t, b.dp, p.out); c.Packets == 0 || c.Packets != counters(t, a.dp, p.out).Packets {
		t.Fatalf("counters %+v", c)
	}
	conns[0].WriteTo([]byte("\x00\x00\x00\x00hello"), &net.UDPAddr{IP: b.v4.AsSlice(), Port: 4500})
	netns.WaitFor(t, "IKE datagram", 5*time.Second, func() bool { return ike.Load() == 1 })
	done := make(chan struct{})
	go func() { b.dp.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs on a provided socket")
	}
	// The socket still works for its owner.
	conns[1].SetReadDeadline(time.Now().Add(3 * time.Second))
	conns[0].WriteTo([]byte("after"), &net.UDPAddr{IP: b.v4.AsSlice(), Port: 4500})
	buf := make([]byte, 100)
	if n, _, err := conns[1].ReadFrom(buf); err != nil || string(buf[:n]) != "after" {
		t.Fatalf("owner read after Close: %q %v", buf[:n], err)
	}
}
