package transport

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

// With ShareNATPort, a second socket on the same address and port (a
// userspace dataplane's) gets the ESP-in-UDP and the IKE socket keeps the
// IKE messages; without the second socket ESP falls back to the IKE socket,
// which drops and counts it. IPv4 and IPv6.
func TestShareNATPort(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		port   uint16
		family string
	}{{"127.0.0.1", 27450, "udp4"}, {"::1", 27451, "udp6"}} {
		t.Run(tc.family, func(t *testing.T) {
			lo := netip.MustParseAddr(tc.addr)
			u, err := ListenUDP(UDPConfig{Addrs: []netip.Addr{lo}, Port: tc.port + 1000, NATPort: tc.port, ShareNATPort: true})
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			nat := netip.AddrPortFrom(lo, tc.port).String()
			peer, err := net.Dial(tc.family, nat)
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			esp := []byte{0xc0, 0xff, 0xee, 0x01, 0, 0, 0, 1, 0xaa}
			ike := func(s string) []byte { return append([]byte{0, 0, 0, 0}, s...) }

			// No dataplane socket yet: ESP reaches the IKE socket and is dropped.
			peer.Write(esp)
			peer.Write(ike("first"))
			got := make([]Packet, 4)
			if n, err := u.Receive(got); err != nil || n != 1 || string(got[0].Data) != "first" {
				t.Fatalf("IKE alone: n=%d err=%v", n, err)
			}
			if u.NonIKEDrops() != 1 {
				t.Fatalf("NonIKEDrops = %d, want 1", u.NonIKEDrops())
			}

			// The dataplane joins the group on the same address and port.
			lc := net.ListenConfig{Control: ReusePort}
			dp, err := lc.ListenPacket(context.Background(), tc.family, nat)
			if err != nil {
				t.Fatal(err)
			}
			defer dp.Close()
			for i := 0; i < 20; i++ {
				peer.Write(esp)
				peer.Write(ike("ike"))
			}
			buf := make([]byte, 100)
			for i := 0; i < 20; i++ {
				dp.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, _, err := dp.ReadFrom(buf)
				if err != nil || !bytes.Equal(buf[:n], esp) {
					t.Fatalf("dataplane socket, datagram %d: % x %v", i, buf[:n], err)
				}
			}
			seen := 0
			for seen < 20 {
				n, err := u.Receive(got)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range got[:n] {
					if string(p.Data) != "ike" {
						t.Fatalf("IKE socket got %q", p.Data)
					}
					seen++
				}
			}
			if u.NonIKEDrops() != 1 {
				t.Fatalf("ESP reached the IKE socket with the dataplane present: NonIKEDrops = %d", u.NonIKEDrops())
			}
			// What the dataplane sends from the shared port reaches the peer
			// from port NATPort.
			if _, err := dp.WriteTo(esp, peer.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			peer.SetReadDeadline(time.Now().Add(2 * time.Second))
			if n, err := peer.Read(buf); err != nil || !bytes.Equal(buf[:n], esp) {
				t.Fatalf("peer got % x %v", buf[:n], err)
			}
		})
	}
}
