package transport

import (
	"fmt"
	"net/netip"
	"sync"
)

// Network is an in-memory network of Mem conns. Sent packets wait in a queue
// until the test delivers them (Deliver, Flush) unless AutoDeliver is set, so a
// test can drop, duplicate, reorder and delay them.
type Network struct {
	mu      sync.Mutex
	conns   map[netip.AddrPort]*Mem
	queue   []Packet // Packet.Local is the sender, Remote the destination
	auto    bool
	Dropped int
}

// NewNetwork returns an empty network.
func NewNetwork() *Network { return &Network{conns: map[netip.AddrPort]*Mem{}} }

// SetAutoDeliver makes Send deliver at once (for benchmarks and Run loops).
func (n *Network) SetAutoDeliver(on bool) {
	n.mu.Lock()
	n.auto = on
	n.mu.Unlock()
}

// Listen returns a conn bound to the given addresses.
func (n *Network) Listen(addrs ...netip.AddrPort) *Mem {
	m := &Mem{net: n, addrs: addrs, in: make(chan Packet, 1024), done: make(chan struct{})}
	n.mu.Lock()
	for _, a := range addrs {
		n.conns[a] = m
	}
	n.mu.Unlock()
	return m
}

// Pending returns a copy of the queued packets.
func (n *Network) Pending() []Packet {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Packet(nil), n.queue...)
}

// Take removes and returns the queued packets; the test can then Inject
// them in any order, any number of times, or not at all.
func (n *Network) Take() []Packet {
	n.mu.Lock()
	defer n.mu.Unlock()
	q := n.queue
	n.queue = nil
	return q
}

// Inject delivers p (Local = sender, Remote = destination) to its
// destination's inbox. Packets to nowhere are counted in Dropped.
func (n *Network) Inject(p Packet) {
	n.mu.Lock()
	dst := n.conns[p.Remote]
	if dst == nil {
		n.Dropped++
	}
	n.mu.Unlock()
	if dst == nil {
		return
	}
	// What the receiver sees: its own address as Local, the sender as Remote.
	in := Packet{Data: append([]byte(nil), p.Data...), Local: p.Remote, Remote: p.Local}
	select {
	case dst.in <- in:
	default:
		n.mu.Lock()
		n.Dropped++
		n.mu.Unlock()
	}
}

// Mem is one endpoint of a Network.
type Mem struct {
	net   *Network
	addrs []netip.AddrPort
	in    chan Packet
	done  chan struct{}
	once  sync.Once
}

// Receive implements Conn.
func (m *Mem) Receive(pkts []Packet) (int, error) {
	if len(pkts) == 0 {
		return 0, nil
	}
	select {
	case p := <-m.in:
		pkts[0] = p
	case <-m.done:
		return 0, ErrClosed
	}
	n := 1
	for n < len(pkts) {
		select {
		case p := <-m.in:
			pkts[n] = p
			n++
		default:
			return n, nil
		}
	}
	return n, nil
}

// TryReceive returns one delivered packet without blocking.
func (m *Mem) TryReceive() (Packet, bool) {
	select {
	case p := <-m.in:
		return p, true
	default:
		return Packet{}, false
	}
}

// Send implements Conn: the packet is queued (or delivered at once with
// AutoDeliver).
func (m *Mem) Send(p Packet) error {
	select {
	case <-m.done:
		return ErrClosed
	default:
	}
	found := false
	for _, a := range m.addrs {
		if a == p.Local {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("transport: %s is not bound here", p.Local)
	}
	p.Data = append([]byte(nil), p.Data...)
	m.net.mu.Lock()
	auto := m.net.auto
	if !auto {
		m.net.queue = append(m.net.queue, p)
	}
	m.net.mu.Unlock()
	if auto {
		m.net.Inject(p)
	}
	return nil
}

// LocalAddrs implements Conn.
func (m *Mem) LocalAddrs() []netip.AddrPort { return m.addrs }

// Close implements Conn.
func (m *Mem) Close() error {
	m.once.Do(func() {
		close(m.done)
		m.net.mu.Lock()
		for _, a := range m.addrs {
			if m.net.conns[a] == m {
				delete(m.net.conns, a)
			}
		}
		m.net.mu.Unlock()
	})
	return nil
}
