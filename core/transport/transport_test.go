package transport

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestUDPLoopbackAndMarker(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	a, err := ListenUDP(UDPConfig{Addrs: []netip.Addr{lo}, Port: 25500, NATPort: 25450})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := ListenUDP(UDPConfig{Addrs: []netip.Addr{lo}, Port: 26500, NATPort: 26450})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	msg := []byte("ike message")
	if err := a.Send(Packet{Data: msg, Local: netip.AddrPortFrom(lo, 25500), Remote: netip.AddrPortFrom(lo, 26500)}); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(Packet{Data: msg, Local: netip.AddrPortFrom(lo, 25450), Remote: netip.AddrPortFrom(lo, 26450)}); err != nil {
		t.Fatal(err)
	}
	got := make([]Packet, 4)
	seen := 0
	for seen < 2 {
		n, err := b.Receive(got)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range got[:n] {
			if !bytes.Equal(p.Data, msg) {
				t.Fatalf("got %q, want %q (marker must be stripped)", p.Data, msg)
			}
			if p.Remote.Addr() != lo || (p.Local.Port() != 26500 && p.Local.Port() != 26450) {
				t.Fatalf("addresses %v -> %v", p.Remote, p.Local)
			}
			seen++
		}
	}

	// An ESP packet (non-zero SPI) on the NAT-T port is not IKE: dropped, counted.
	raw, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, 26450)))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.Write([]byte{0, 0, 0, 1, 0, 0, 0, 1})
	raw.Write(append([]byte{0, 0, 0, 0}, "after"...))
	n, err := b.Receive(got)
	if err != nil || n < 1 || string(got[0].Data) != "after" {
		t.Fatalf("after ESP: n=%d err=%v", n, err)
	}
	if b.NonIKEDrops() != 1 {
		t.Fatalf("NonIKEDrops = %d, want 1", b.NonIKEDrops())
	}
}

func TestUDPIPv6(t *testing.T) {
	lo := netip.IPv6Loopback()
	a, err := ListenUDP(UDPConfig{Addrs: []netip.Addr{lo}, Port: 25501, NATPort: 25451})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer a.Close()
	b, err := ListenUDP(UDPConfig{Addrs: []netip.Addr{lo}, Port: 26501, NATPort: 26451})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.Send(Packet{Data: []byte("v6"), Local: netip.AddrPortFrom(lo, 25451), Remote: netip.AddrPortFrom(lo, 26451)}); err != nil {
		t.Fatal(err)
	}
	got := make([]Packet, 1)
	if n, err := b.Receive(got); err != nil || n != 1 || string(got[0].Data) != "v6" {
		t.Fatalf("n=%d err=%v data=%q", n, err, got[0].Data)
	}
}

func TestMemControlledDelivery(t *testing.T) {
	n := NewNetwork()
	aAddr := netip.MustParseAddrPort("10.0.0.1:500")
	bAddr := netip.MustParseAddrPort("10.0.0.2:500")
	a, b := n.Listen(aAddr), n.Listen(bAddr)
	for _, s := range []string{"one", "two"} {
		if err := a.Send(Packet{Data: []byte(s), Local: aAddr, Remote: bAddr}); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := b.TryReceive(); ok {
		t.Fatal("delivered before the test allowed it")
	}
	q := n.Take()
	// reorder and duplicate
	n.Inject(q[1])
	n.Inject(q[0])
	n.Inject(q[0])
	var got []string
	for {
		p, ok := b.TryReceive()
		if !ok {
			break
		}
		if p.Remote != aAddr || p.Local != bAddr {
			t.Fatalf("addresses %v -> %v", p.Remote, p.Local)
		}
		got = append(got, string(p.Data))
	}
	if len(got) != 3 || got[0] != "two" || got[1] != "one" || got[2] != "one" {
		t.Fatalf("got %v", got)
	}
	if err := a.Send(Packet{Data: []byte("x"), Local: bAddr, Remote: aAddr}); err == nil {
		t.Fatal("sending from an address not bound must fail")
	}
	n.Inject(Packet{Data: []byte("x"), Local: aAddr, Remote: netip.MustParseAddrPort("10.9.9.9:500")})
	if n.Dropped != 1 {
		t.Fatalf("Dropped = %d", n.Dropped)
	}
	b.Close()
	if _, err := b.Receive(make([]Packet, 1)); err != ErrClosed {
		t.Fatalf("Receive after Close: %v", err)
	}
}

// TestUDPWildcardLearnsLocalAddress: a socket bound to 0.0.0.0 reports the
// address each datagram was sent to (NAT detection and SA addresses need
// it) and replies from that address.
func TestUDPWildcardLearnsLocalAddress(t *testing.T) {
	u, err := ListenUDP(UDPConfig{Addrs: []netip.Addr{netip.IPv4Unspecified()}, Port: 29500, NATPort: 29450})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if _, err := peer.WriteToUDP([]byte("hello"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 29500}); err != nil {
		t.Fatal(err)
	}
	got := make([]Packet, 1)
	if _, err := u.Receive(got); err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddrPort("127.0.0.1:29500"); got[0].Local != want {
		t.Fatalf("Local = %v, want %v", got[0].Local, want)
	}
	if err := u.Send(Packet{Data: []byte("reply"), Local: got[0].Local, Remote: got[0].Remote}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, from, err := peer.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "reply" || from.String() != "127.0.0.1:29500" {
		t.Fatalf("reply %q from %v: %v", buf[:n], from, err)
	}
}

// With KernelIPsec the sockets carry bypass policies and the NAT-T socket
// decapsulates ESP-in-UDP; this kernel has XFRM, so the options are real.
func TestKernelIPsecSocketOptions(t *testing.T) {
	port := uint16(40000 + os.Getpid()%10000)
	u, err := ListenUDP(UDPConfig{Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Port: port, NATPort: port + 1, KernelIPsec: true})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for _, s := range u.socks {
		raw, _ := s.conn.SyscallConn()
		raw.Control(func(fd uintptr) {
			v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_ENCAP)
			if s.nat && (err != nil || v != unix.UDP_ENCAP_ESPINUDP) {
				t.Errorf("NAT-T socket %v: UDP_ENCAP = %d, %v", s.local, v, err)
			}
		})
	}
}
