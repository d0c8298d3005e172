package engine

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/core/engine/enginetest"
	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/core/transport"
)

// TestUDPLoopback runs two engines over real UDP sockets on 127.0.0.1
// (different ports): establish, rekey the child and the IKE SA, delete.
func TestUDPLoopback(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	type side struct {
		e  *Engine
		dp *enginetest.Dataplane
	}
	mk := func(port, natPort, peerPort uint16, base uint32) side {
		conn, err := transport.ListenUDP(transport.UDPConfig{Addrs: []netip.Addr{lo}, Port: port, NATPort: natPort})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		dp := enginetest.NewDataplane(base)
		e, err := New(Config{Transport: conn, Port: port, NATPort: natPort, Dataplane: dp,
			Authenticators: map[string]provider.Authenticator{"psk": &enginetest.PSK{Secret: []byte("loopback secret")}}})
		if err != nil {
			t.Fatal(err)
		}
		c := baseConn(t, "udp", lo, lo)
		c.RemotePort = peerPort
		e.SetConnections([]Connection{c})
		return side{e, dp}
	}
	a := mk(27500, 27450, 28500, 0xa000)
	b := mk(28500, 28450, 27500, 0xb000)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	for _, s := range []side{a, b} {
		go func() { s.e.Run(runCtx); done <- struct{}{} }()
	}
	defer func() { stop(); <-done; <-done }()

	if err := a.e.Initiate(ctx, "udp", "c1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(b.dp.Inbound()) == 1 })
	checkKeys(t, a.dp, b.dp, 1)
	old := spis(a.dp)
	if err := a.e.Rekey(ctx, "udp", "c1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(a.dp.Inbound()) == 1 && len(b.dp.Inbound()) == 1 })
	checkKeys(t, a.dp, b.dp, 1)
	if slices.Equal(old, spis(a.dp)) {
		t.Fatal("child not rekeyed")
	}
	ikeBefore := a.e.Snapshot()[0].SPIi
	if err := b.e.Rekey(ctx, "udp", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { s := a.e.Snapshot(); return len(s) == 1 && s[0].SPIi != ikeBefore })
	if err := a.e.Terminate(ctx, "udp"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(b.e.Snapshot()) == 0 && len(b.dp.SAs) == 0 && len(a.dp.SAs) == 0 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestUDPWildcardBind: engines bound to 0.0.0.0 learn their local address
// per datagram, so no NAT is detected on loopback and SAs carry real
// addresses.
func TestUDPWildcardBind(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	mk := func(port, natPort, peerPort uint16, base uint32, local []netip.Addr) (*Engine, *enginetest.Dataplane) {
		conn, err := transport.ListenUDP(transport.UDPConfig{Addrs: []netip.Addr{netip.IPv4Unspecified()}, Port: port, NATPort: natPort})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		dp := enginetest.NewDataplane(base)
		e, err := New(Config{Transport: conn, Port: port, NATPort: natPort, Dataplane: dp,
			Authenticators: map[string]provider.Authenticator{"psk": &enginetest.PSK{Secret: []byte("s")}}})
		if err != nil {
			t.Fatal(err)
		}
		c := baseConn(t, "w", lo, lo)
		c.LocalAddrs, c.RemotePort = local, peerPort
		e.SetConnections([]Connection{c})
		return e, dp
	}
	a, dpa := mk(27600, 27650, 28600, 0xa000, nil)
	b, dpb := mk(28600, 28650, 27600, 0xb000, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go a.Run(ctx)
	go b.Run(ctx)
	if err := a.Initiate(ctx, "w", "c1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(dpb.Inbound()) == 1 })
	checkKeys(t, dpa, dpb, 1)
	for _, sa := range append(dpa.Outbound(), dpb.Outbound()...) {
		if sa.Src != lo || sa.Dst != lo || sa.Encap != nil {
			t.Fatalf("SA addresses %v -> %v encap %v", sa.Src, sa.Dst, sa.Encap)
		}
	}
	if s := b.Snapshot(); len(s) != 1 || s[0].Local != "127.0.0.1:28600" {
		t.Fatalf("responder local %+v", s)
	}
}
