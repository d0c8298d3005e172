package userspace

import (
	"context"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/plugins/dataplane/userspace/policy"
)

func TestVolumeLifetimeEvents(t *testing.T) {
	d, q := newBenchDataplane(t, "aes-gcm-16", 20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, _ := d.Events(ctx)
	key := make([]byte, 20)
	c := &provider.ChildSA{ReqID: 1, SPI: 0x200, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"),
		Mode: provider.Transport, Encryption: "aes-gcm-16", EncKey: key,
		Soft: provider.Lifetime{Packets: 2}, Hard: provider.Lifetime{Packets: 3}}
	if err := d.InstallSA(ctx, c); err != nil {
		t.Fatal(err)
	}
	k := provider.SAKey{Dst: c.Dst, SPI: c.SPI}
	buf := make([]byte, bufSize)
	for i := 0; i < 3; i++ {
		udpPacket(buf, 100)
		if pkt, _ := d.sealOne(d.tables.Load(), q, buf, 100, 1); pkt == nil {
			t.Fatalf("packet %d dropped", i)
		}
	}
	want := []provider.EventKind{provider.SoftExpire, provider.HardExpire}
	for _, w := range want {
		select {
		case e := <-events:
			if e.Kind != w || e.SA != k || e.ReqID != 1 {
				t.Fatalf("event %+v, want kind %d", e, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no event %d", w)
		}
	}
	if _, err := d.Counters(ctx, []provider.SAKey{k}); err == nil {
		t.Fatal("SA still installed after its hard lifetime")
	}
	// With the SA gone the next packet is dropped, not sent in clear.
	udpPacket(buf, 100)
	if pkt, _ := d.sealOne(d.tables.Load(), q, buf, 100, 2); pkt != nil {
		t.Fatal("packet sent after hard expiry")
	}
	if d.Stats().NoSA != 1 {
		t.Fatalf("%+v", d.Stats())
	}
}

func TestAllocateSPIAndBadInput(t *testing.T) {
	d, _ := newBenchDataplane(t, "aes-gcm-16", 20)
	ctx := context.Background()
	seen := map[uint32]bool{}
	for i := 0; i < 100; i++ {
		spi, err := d.AllocateSPI(ctx, netip.Addr{}, netip.Addr{})
		if err != nil || spi < 256 || seen[spi] || spi == 0x100 {
			t.Fatalf("spi %#x err %v", spi, err)
		}
		seen[spi] = true
	}
	bad := []*provider.ChildSA{
		nil,
		{SPI: 1, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("::1"), Mode: provider.Transport, Encryption: "aes-gcm-16", EncKey: make([]byte, 20)},
		{SPI: 1, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), Mode: 9, Encryption: "aes-gcm-16", EncKey: make([]byte, 20)},
		{SPI: 1, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), Mode: provider.Tunnel, Encryption: "aes-gcm-16", EncKey: make([]byte, 7)},
	}
	for i, c := range bad {
		if err := d.InstallSA(ctx, c); err == nil {
			t.Errorf("bad SA %d accepted", i)
		}
	}
	if err := d.DeleteSA(ctx, provider.SAKey{SPI: 77}); err == nil {
		t.Error("deleting an unknown SA succeeded")
	}
}

func TestClampMSSAndTooBig(t *testing.T) {
	// A TCP SYN with MSS 1460.
	pkt := make([]byte, 44)
	pkt[0] = 0x45
	binary.BigEndian.PutUint16(pkt[2:], 44)
	pkt[8], pkt[9] = 64, 6
	copy(pkt[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	tcp := pkt[20:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 80)
	tcp[12], tcp[13] = 6<<4, 0x02
	tcp[20], tcp[21] = 2, 4
	binary.BigEndian.PutUint16(tcp[22:], 1460)
	binary.BigEndian.PutUint16(tcp[16:], tcpChecksum(pkt))
	f, _ := policy.Parse(pkt)
	clampMSS(pkt, f, 1400)
	if got := binary.BigEndian.Uint16(tcp[22:]); got != 1360 {
		t.Fatalf("MSS %d, want 1360", got)
	}
	if tcpChecksum(pkt) != 0 {
		t.Fatal("TCP checksum wrong after clamping")
	}

	// ICMP fragmentation needed quotes the packet and carries the MTU.
	buf := make([]byte, 4096)
	copy(buf[64:], pkt)
	icmp := tooBig(buf, 64, len(pkt), f, 1400)
	if icmp[9] != 1 || icmp[20] != 3 || icmp[21] != 4 || binary.BigEndian.Uint16(icmp[26:]) != 1400 || checksum(icmp[20:], 0) != 0 || checksum(icmp[:20], 0) != 0 {
		t.Fatalf("bad ICMP: %x", icmp)
	}
	if netip.AddrFrom4([4]byte(icmp[16:20])) != f.Src {
		t.Fatal("ICMP not addressed to the sender")
	}
}

// tcpChecksum returns 0 for a correct IPv4 TCP checksum (or the checksum to
// store when the field is zero).
func tcpChecksum(pkt []byte) uint16 {
	tcp := pkt[20:]
	var sum uint32
	for i := 12; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(pkt[i:]))
	}
	sum += 6 + uint32(len(tcp))
	return checksum(tcp, sum)
}

// TestOneSAManyCores seals on one SA from several goroutines (as the TUN
// queues do) and opens from several: every sequence number is used once and
// every packet is accepted once, in any order within the window.
func TestOneSAManyCores(t *testing.T) {
	d, _ := newBenchDataplane(t, "chacha20-poly1305", 36)
	const workers, per = 4, 200
	out := make(chan []byte, workers*per)
	done := make(chan struct{})
	for w := 0; w < workers; w++ {
		go func() {
			defer func() { done <- struct{}{} }()
			buf := make([]byte, bufSize)
			for i := 0; i < per; i++ {
				udpPacket(buf, 200)
				pkt, _ := d.sealOne(d.tables.Load(), nil, buf, 200, 1)
				if pkt == nil {
					t.Error("dropped")
					return
				}
				out <- append([]byte(nil), pkt...)
			}
		}()
	}
	for w := 0; w < workers; w++ {
		<-done
	}
	close(out)
	var pkts [][]byte
	seen := map[uint32]bool{}
	for p := range out {
		seq := binary.BigEndian.Uint32(p[4:])
		if seen[seq] {
			t.Fatalf("sequence number %d used twice", seq)
		}
		seen[seq] = true
		pkts = append(pkts, p)
	}
	// Open concurrently, each packet twice: exactly one copy is accepted.
	in := d.tables.Load().inBySPI[0x100]
	for w := 0; w < workers; w++ {
		go func() {
			defer func() { done <- struct{}{} }()
			rbuf := make([]byte, bufSize)
			for i := len(pkts) - 1; i >= 0; i-- {
				n := copy(rbuf[headroom:], pkts[i])
				d.openOne(d.tables.Load(), rbuf, headroom, headroom+n, netip.AddrPort{}, 1)
			}
		}()
	}
	for w := 0; w < workers; w++ {
		<-done
	}
	if got := in.packets.Load(); got != workers*per {
		t.Fatalf("accepted %d packets, want %d", got, workers*per)
	}
	if got := in.replayDrops.Load(); got != (workers-1)*workers*per {
		t.Fatalf("replay drops %d, want %d", got, (workers-1)*workers*per)
	}
}
