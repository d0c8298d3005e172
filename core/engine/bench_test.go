package engine

import (
	"fmt"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/core/engine/enginetest"
	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/core/transform"
	"github.com/veil-ipsec/veil/core/transport"
)

// benchPair is two engines on an in-memory network, driven synchronously
// (no goroutines): a handshake is the four datagrams plus all crypto.
type benchPair struct {
	net    *transport.Network
	a, b   *Engine
	ca, cb *transport.Mem
}

func newBenchPair(tb testing.TB, ike string) *benchPair {
	n := transport.NewNetwork()
	clock := enginetest.NewClock()
	mk := func(addr, peer netip.Addr) (*Engine, *transport.Mem) {
		conn := n.Listen(netip.AddrPortFrom(addr, 500), netip.AddrPortFrom(addr, 4500))
		e, err := New(Config{Transport: conn, Clock: clock, Dataplane: &enginetest.CountingDataplane{},
			Authenticators:  map[string]provider.Authenticator{"psk": &enginetest.PSK{Secret: []byte("bench")}},
			CookieThreshold: 1 << 30})
		if err != nil {
			tb.Fatal(err)
		}
		c := baseConn(tb, "conn", addr, peer)
		c.IKEProposals = mustProposals(tb, transform.ProtoIKE, ike)
		e.SetConnections([]Connection{c})
		return e, conn
	}
	p := &benchPair{net: n}
	p.a, p.ca = mk(addrA, addrB)
	p.b, p.cb = mk(addrB, addrA)
	return p
}

func (p *benchPair) handshake(tb testing.TB) {
	p.a.mu.Lock()
	sa, err := p.a.initiateLocked(p.a.conns["conn"], "", nil)
	p.a.mu.Unlock()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		q := p.net.Take()
		if len(q) == 0 {
			break
		}
		for _, pk := range q {
			dst := p.b
			if pk.Remote.Addr() == addrA {
				dst = p.a
			}
			dst.HandlePacket(transport.Packet{Data: pk.Data, Local: pk.Remote, Remote: pk.Local})
		}
	}
	if sa.State.String() != "ESTABLISHED" || len(sa.Children) != 1 {
		tb.Fatalf("handshake ended in %s with %d children", sa.State, len(sa.Children))
	}
}

// BenchmarkHandshake: IKE_SA_INIT + IKE_AUTH with one Child SA, both ends
// in-process with real crypto; ns/op is one complete handshake (both sides).
func BenchmarkHandshake(b *testing.B) {
	for _, tc := range []struct{ name, ike string }{
		{"X25519-PSK", "aes128gcm16-prfsha256-x25519"},
		{"X25519-MLKEM768-PSK", "aes256gcm16-prfsha384-x25519-ke1_mlkem768"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p := newBenchPair(b, tc.ike)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for range b.N {
				p.handshake(b)
			}
			// CPU time is steadier than wall time on a shared machine.
			cpu := cpuTime() - cpu0
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/handshake")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMemoryPerSA establishes n IKE SAs with one Child SA each, drops
// the initiator, and reports the responder's retained heap per SA.
func BenchmarkMemoryPerSA(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for range b.N {
				p := newBenchPair(b, "aes128gcm16-prfsha256-x25519")
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				for range n {
					p.handshake(b)
				}
				p.a, p.ca = nil, nil
				p.net.Take()
				runtime.GC()
				runtime.ReadMemStats(&after)
				if got := len(p.b.Snapshot()); got != n {
					b.Fatalf("%d SAs", got)
				}
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "heapB/SA")
				runtime.KeepAlive(p.b)
			}
		})
	}
}
