package engine

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/core/engine/enginetest"
	"github.com/veil-ipsec/veil/core/ike"
	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/core/transform"
	"github.com/veil-ipsec/veil/core/transport"
	"github.com/veil-ipsec/veil/core/ts"
)

var (
	addrA = netip.MustParseAddr("192.0.2.1")
	addrB = netip.MustParseAddr("192.0.2.2")
)

// peer is one side of the two-engine harness.
type peer struct {
	e    *Engine
	conn *transport.Mem
	dp   *enginetest.Dataplane
	psk  *enginetest.PSK
	cfg  Connection
}

// pair is two engines on an in-memory network whose delivery the test
// controls, sharing a fake clock.
type pair struct {
	t     *testing.T
	net   *transport.Network
	clock *enginetest.Clock
	a, b  *peer
	// filter decides per packet: return the packets to deliver instead
	// (nil drops, two copies duplicate).
	filter func(p transport.Packet) []transport.Packet
}

func mustProposals(t testing.TB, p transform.Protocol, ss ...string) []transform.Proposal {
	var out []transform.Proposal
	for _, s := range ss {
		x, err := transform.ParseProposal(p, s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, x)
	}
	return out
}

func baseConn(t testing.TB, name string, local, remote netip.Addr) Connection {
	return Connection{
		Name: name, LocalAddrs: []netip.Addr{local}, RemoteAddrs: []netip.Addr{remote},
		IKEProposals: mustProposals(t, transform.ProtoIKE, "aes128gcm16-prfsha256-x25519"),
		Local:        AuthConfig{Method: "psk", ID: provider.Identity{Type: 2, Data: []byte(name + "-" + local.String())}},
		Remote:       AuthConfig{Method: "psk"},
		Children: []Child{{Name: "c1", Mode: provider.Transport,
			ESPProposals: mustProposals(t, transform.ProtoESP, "aes128gcm16"),
			LocalTS:      []provider.TrafficSelector{ts.Dynamic()}, RemoteTS: []provider.TrafficSelector{ts.Dynamic()}}},
	}
}

func newPeer(t testing.TB, n *transport.Network, clock *enginetest.Clock, addr netip.Addr, base uint32, cfg Connection, secret string, mut func(*Config), more ...netip.Addr) *peer {
	var binds []netip.AddrPort
	for _, a := range append([]netip.Addr{addr}, more...) {
		binds = append(binds, netip.AddrPortFrom(a, 500), netip.AddrPortFrom(a, 4500))
	}
	conn := n.Listen(binds...)
	p := &peer{conn: conn, dp: enginetest.NewDataplane(base), psk: &enginetest.PSK{Secret: []byte(secret)}, cfg: cfg}
	c := Config{Transport: conn, Clock: clock, Dataplane: p.dp, KeyStore: enginetest.KeyStore{},
		Authenticators: map[string]provider.Authenticator{"psk": p.psk}}
	if mut != nil {
		mut(&c)
	}
	e, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	p.e = e
	e.SetConnections([]Connection{cfg})
	return p
}

// newPair builds A (initiator side) and B; edit may change either config.
func newPair(t *testing.T, edit func(a, b *Connection)) *pair {
	return newPairCfg(t, edit, nil)
}

func newPairCfg(t *testing.T, edit func(a, b *Connection), engineCfg func(*Config)) *pair {
	n := transport.NewNetwork()
	clock := enginetest.NewClock()
	ca, cb := baseConn(t, "conn", addrA, addrB), baseConn(t, "conn", addrB, addrA)
	if edit != nil {
		edit(&ca, &cb)
	}
	p := &pair{t: t, net: n, clock: clock}
	p.a = newPeer(t, n, clock, addrA, 0xa000, ca, "secret", engineCfg)
	p.b = newPeer(t, n, clock, addrB, 0xb000, cb, "secret", engineCfg)
	return p
}

// flush delivers queued packets (through filter) until the network is quiet.
func (p *pair) flush() int {
	delivered := 0
	for round := 0; round < 100; round++ {
		q := p.net.Take()
		if len(q) == 0 {
			return delivered
		}
		for _, pk := range q {
			out := []transport.Packet{pk}
			if p.filter != nil {
				out = p.filter(pk)
			}
			for _, o := range out {
				p.net.Inject(o)
				delivered++
			}
		}
		p.drain()
	}
	p.t.Fatal("network did not settle")
	return delivered
}

func (p *pair) drain() {
	for _, x := range []*peer{p.a, p.b} {
		for {
			pk, ok := x.conn.TryReceive()
			if !ok {
				break
			}
			x.e.HandlePacket(pk)
		}
		x.e.offloads.Wait() // EAP steps run off the engine lock
	}
}

// advance moves the clock and runs both engines' timers.
func (p *pair) advance(d time.Duration) {
	p.clock.Advance(d)
	p.a.e.RunTimers()
	p.b.e.RunTimers()
}

// up initiates from A and expects the child to be installed.
func (p *pair) up() {
	p.t.Helper()
	ch := p.a.e.StartInitiate("conn", "")
	p.flush()
	select {
	case err := <-ch:
		if err != nil {
			p.t.Fatalf("initiate: %v", err)
		}
	default:
		p.t.Fatal("initiate did not finish")
	}
}

func result(ch <-chan error) (error, bool) {
	select {
	case err := <-ch:
		return err, true
	default:
		return nil, false
	}
}

// checkKeys asserts that each side's outbound SA matches the other's inbound
// SA: same SPI, same keys and algorithms.
func checkKeys(t *testing.T, a, b *enginetest.Dataplane, want int) {
	t.Helper()
	for _, dir := range []struct{ out, in *enginetest.Dataplane }{{a, b}, {b, a}} {
		outs, ins := dir.out.Outbound(), dir.in.Inbound()
		if len(outs) != want || len(ins) != want {
			t.Fatalf("outbound %d, inbound %d, want %d each", len(outs), len(ins), want)
		}
		for _, o := range outs {
			var match *provider.ChildSA
			for _, i := range ins {
				if i.SPI == o.SPI {
					match = i
				}
			}
			if match == nil {
				t.Fatalf("outbound SPI %08x has no inbound SA on the peer", o.SPI)
			}
			if len(o.EncKey) == 0 || !bytes.Equal(o.EncKey, match.EncKey) || !bytes.Equal(o.IntegKey, match.IntegKey) ||
				o.Encryption != match.Encryption || o.Mode != match.Mode || o.Dst != match.Dst || o.Src != match.Src {
				t.Fatalf("SA %08x differs: out %+v in %+v", o.SPI, o, match)
			}
		}
	}
}

func (p *pair) established(t *testing.T, wantChildren int) {
	t.Helper()
	for _, x := range []*peer{p.a, p.b} {
		snap := x.e.Snapshot()
		if len(snap) != 1 || snap[0].State != "ESTABLISHED" || len(snap[0].Children) != wantChildren {
			t.Fatalf("snapshot: %+v", snap)
		}
		for _, c := range snap[0].Children {
			if c.State != "INSTALLED" {
				t.Fatalf("child %+v", c)
			}
		}
	}
	sa, sb := p.a.e.Snapshot()[0], p.b.e.Snapshot()[0]
	if sa.SPIi != sb.SPIi || sa.SPIr != sb.SPIr || sa.Initiator == sb.Initiator || sa.Proposal != sb.Proposal {
		t.Fatalf("sides disagree: %+v vs %+v", sa, sb)
	}
	checkKeys(t, p.a.dp, p.b.dp, wantChildren)
}

func (p *pair) gone(t *testing.T) {
	t.Helper()
	for _, x := range []*peer{p.a, p.b} {
		if s := x.e.Snapshot(); len(s) != 0 {
			t.Fatalf("SAs left: %+v", s)
		}
		if len(x.dp.SAs) != 0 || x.dp.PolicyCount() != 0 {
			t.Fatalf("dataplane left: %d SAs, %d policies", len(x.dp.SAs), x.dp.PolicyCount())
		}
	}
}

func TestPSKHandshakeChildDelete(t *testing.T) {
	p := newPair(t, nil)
	p.up()
	p.established(t, 1)
	// install order: inbound SA before outbound, then policies
	log := p.a.dp.Log
	if len(log) < 4 || log[0] != "alloc" || log[1] != "sa-in" || log[2] != "sa-out" || log[3] != "policy" {
		t.Fatalf("install order %v", log)
	}
	snap := p.a.e.Snapshot()[0]
	if c := snap.Children[0]; c.Mode != "transport" || c.LocalTS[0] != "192.0.2.1/32" || c.RemoteTS[0] != "192.0.2.2/32" {
		t.Fatalf("child %+v", c)
	}
	if st := p.a.e.Stats(); st.Handshakes["ok"] != 1 {
		t.Fatalf("stats %+v", st)
	}
	done, err := p.a.e.StartTerminate("conn")
	if err != nil {
		t.Fatal(err)
	}
	p.flush()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("terminate did not finish")
	}
	p.gone(t)
}

func TestInitiateAPI(t *testing.T) {
	p := newPair(t, nil)
	p.net.SetAutoDeliver(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.a.e.Run(ctx)
	go p.b.e.Run(ctx)
	ictx, icancel := context.WithTimeout(ctx, 10*time.Second)
	defer icancel()
	if err := p.a.e.Initiate(ictx, "conn", "c1"); err != nil {
		t.Fatal(err)
	}
	if err := p.a.e.Terminate(ictx, "conn"); err != nil {
		t.Fatal(err)
	}
	if got := p.a.e.Status("conn").State; got != "DOWN" {
		t.Fatalf("state %s", got)
	}
	var _ = ike.IKE_AUTH
}
