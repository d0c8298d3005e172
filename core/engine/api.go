package engine

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"time"

	"github.com/veil-ipsec/veil/core/ikesa"
	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/core/ts"
)

// Event is an SA up/down/rekey notification for subscribers.
type Event struct {
	Kind   EventKind `json:"kind"` // up, down, failed, child-up, child-down, child-failed, rekeyed
	Conn   string    `json:"conn"`
	Child  string    `json:"child,omitempty"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// ConnectionStatus is what Status reports about one connection.
type ConnectionStatus struct {
	Name          string    `json:"name"`
	State         string    `json:"state"` // state of the newest IKE SA, or "DOWN"
	IKESAs        int       `json:"ike_sas"`
	LastFailure   string    `json:"last_failure,omitempty"`
	LastFailureAt time.Time `json:"last_failure_at,omitempty"`
}

// IKESAInfo is one IKE SA as veilctl shows it.
type IKESAInfo struct {
	Name          string        `json:"name"`
	State         string        `json:"state"`
	Local         string        `json:"local"`
	Remote        string        `json:"remote"`
	Initiator     bool          `json:"initiator"`
	SPIi          string        `json:"spi_i"`
	SPIr          string        `json:"spi_r"`
	Proposal      string        `json:"proposal"`
	EstablishedAt time.Time     `json:"established_at"`
	Children      []ChildSAInfo `json:"children"`
	// Virtual IPs (configuration payload): assigned to us by the peer (with
	// its DNS servers), and leased by us to the peer.
	LocalVIPs  []string `json:"local_vips,omitempty"`
	RemoteVIPs []string `json:"remote_vips,omitempty"`
	DNS        []string `json:"dns,omitempty"`
	// PPK: whether the IKE SA's keys are mixed with a post-quantum
	// preshared key (RFC 8784).
	PPK bool `json:"ppk,omitempty"`
}

// ChildSAInfo is one Child SA as veilctl shows it.
type ChildSAInfo struct {
	Name       string   `json:"name"`
	State      string   `json:"state"`
	Mode       string   `json:"mode"`
	Proposal   string   `json:"proposal"`
	SPIIn      string   `json:"spi_in"`
	SPIOut     string   `json:"spi_out"`
	LocalTS    []string `json:"local_ts"`
	RemoteTS   []string `json:"remote_ts"`
	BytesIn    uint64   `json:"bytes_in"`
	BytesOut   uint64   `json:"bytes_out"`
	PacketsIn  uint64   `json:"packets_in"`
	PacketsOut uint64   `json:"packets_out"`
}

// EventKind names an event ("up", "child-up", ...).
type EventKind = ikesa.EventKind

// Stats are the engine's counters.
type Stats = ikesa.Stats

// SetConnections replaces the configuration: connections are matched by
// name; unchanged ones keep their SAs, changed or removed ones have their
// SAs deleted, and start_action=start children are initiated.
func (e *Engine) SetConnections(conns []Connection) {
	e.mu.Lock()
	defer e.mu.Unlock()
	next := map[string]*Connection{}
	for i := range conns {
		c := conns[i]
		next[c.Name] = &c
	}
	for name, old := range e.conns {
		if n, ok := next[name]; ok && reflect.DeepEqual(n, old) {
			next[name] = old
			continue
		}
		for _, sa := range e.sasOf(name) {
			sa.Delete("configuration removed or changed")
			e.after(sa)
		}
		e.removeTraps(name)
		delete(e.dpdTrapped, name)
	}
	prev := e.conns
	e.conns = next
	for name, c := range next {
		if prev[name] == c {
			continue
		}
		e.ensureTraps(c)
		for _, ch := range c.Children {
			if ch.StartAction == "start" {
				if _, err := e.initiateLocked(c, ch.Name, nil); err != nil {
					e.setFailure(name, err.Error())
				}
				break
			}
		}
	}
}

func (e *Engine) sasOf(conn string) []*ikesa.SA {
	var out []*ikesa.SA
	for _, sa := range e.sas {
		if sa.Conn.Name == conn && !sa.Dead() {
			out = append(out, sa)
		}
	}
	slices.SortFunc(out, func(a, b *ikesa.SA) int { return a.Established.Compare(b.Established) })
	return out
}

func (e *Engine) addrs(c *Connection) (local, remote netip.AddrPort, err error) {
	if len(c.RemoteAddrs) == 0 {
		return local, remote, fmt.Errorf("connection %q has no remote address to initiate to", c.Name)
	}
	r := c.RemoteAddrs[0]
	var l netip.Addr
	if len(c.LocalAddrs) > 0 {
		l = c.LocalAddrs[0]
	} else {
		for _, ap := range e.cfg.Transport.LocalAddrs() {
			if ap.Addr().Is4() == r.Is4() && !ap.Addr().IsUnspecified() {
				l = ap.Addr()
				break
			}
		}
		if !l.IsValid() {
			l = routeSource(r)
		}
		if !l.IsValid() {
			return local, remote, fmt.Errorf("connection %q: no local address for %s; set local_addrs", c.Name, r)
		}
	}
	lp, rp := c.LocalPort, c.RemotePort
	if lp == 0 {
		lp = e.cfg.Port
	}
	if rp == 0 {
		rp = 500
	}
	return netip.AddrPortFrom(l, lp), netip.AddrPortFrom(r, rp), nil
}

func (e *Engine) initiateLocked(c *Connection, child string, w *waiter) (*ikesa.SA, error) {
	local, remote, err := e.addrs(c)
	if err != nil {
		return nil, err
	}
	sa, err := ikesa.NewInitiator(e.env, c, child, local, remote)
	if err != nil {
		return nil, err
	}
	e.sas[sa.SPIi] = sa
	if w != nil {
		e.waiters[sa] = append(e.waiters[sa], w)
	}
	e.after(sa)
	return sa, nil
}

// StartInitiate begins Initiate without waiting; the channel gets nil
// once the child (or, without children, the IKE SA) is up, else the reason.
func (e *Engine) StartInitiate(conn, child string) <-chan error {
	w := &waiter{child: child, done: make(chan error, 1)}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.conns[conn]
	if c == nil {
		w.done <- fmt.Errorf("no connection %q", conn)
		return w.done
	}
	if child != "" && !slices.ContainsFunc(c.Children, func(x Child) bool { return x.Name == child }) {
		w.done <- fmt.Errorf("connection %q has no child %q", conn, child)
		return w.done
	}
	for _, sa := range e.sasOf(conn) {
		if sa.State != ikesa.StateEstablished {
			continue
		}
		for _, ch := range sa.Children {
			if child == "" || ch.Config.Name == child {
				w.done <- nil
				return w.done
			}
		}
		// The IKE SA is up: add the child with CREATE_CHILD_SA.
		for i := range c.Children {
			if child == "" || c.Children[i].Name == child {
				if err := sa.CreateChild(&c.Children[i]); err != nil {
					w.done <- err
					return w.done
				}
				e.waiters[sa] = append(e.waiters[sa], w)
				e.after(sa)
				e.poke()
				return w.done
			}
		}
	}
	if _, err := e.initiateLocked(c, child, w); err != nil {
		w.done <- err
	}
	e.poke()
	return w.done
}

// Initiate sets up conn's IKE SA and the named child ("" = the first) and
// waits until it is installed or failed.
func (e *Engine) Initiate(ctx context.Context, conn, child string) error {
	select {
	case err := <-e.StartInitiate(conn, child):
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// StartTerminate sends Delete for conn's IKE SAs; the channel is closed
// when they are gone.
func (e *Engine) StartTerminate(conn string) (<-chan struct{}, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conns[conn] == nil {
		return nil, fmt.Errorf("no connection %q", conn)
	}
	sas := e.sasOf(conn)
	done := make(chan struct{})
	remaining := len(sas)
	if remaining == 0 {
		close(done)
		return done, nil
	}
	for _, sa := range sas {
		w := &waiter{child: "\x00", done: make(chan error, 1)}
		e.waiters[sa] = append(e.waiters[sa], w)
		go func() {
			<-w.done
			e.mu.Lock()
			remaining--
			if remaining == 0 {
				close(done)
			}
			e.mu.Unlock()
		}()
		sa.Delete("terminated by operator")
		e.after(sa)
	}
	e.poke()
	return done, nil
}

// Terminate deletes conn's IKE SAs (and with them their Child SAs).
func (e *Engine) Terminate(ctx context.Context, conn string) error {
	done, err := e.StartTerminate(conn)
	if err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// StartRekey begins a rekey of conn's IKE SA (child "") or the named Child
// SA; the channel gets nil once the new SA is up.
func (e *Engine) StartRekey(conn, child string) <-chan error {
	w := &waiter{child: "rekey:" + child, done: make(chan error, 1)}
	e.mu.Lock()
	defer e.mu.Unlock()
	var sa *ikesa.SA
	for _, s := range e.sasOf(conn) {
		if s.State == ikesa.StateEstablished {
			sa = s
		}
	}
	if sa == nil {
		w.done <- fmt.Errorf("connection %q has no established IKE SA", conn)
		return w.done
	}
	var err error
	if child == "" {
		err = sa.RekeyIKE()
	} else {
		err = sa.RekeyChild(child)
	}
	if err != nil {
		w.done <- err
		return w.done
	}
	e.waiters[sa] = append(e.waiters[sa], w)
	e.after(sa)
	e.poke()
	return w.done
}

// Rekey rekeys conn's IKE SA (child "") or the named Child SA and waits
// until the new SA is installed.
func (e *Engine) Rekey(ctx context.Context, conn, child string) error {
	select {
	case err := <-e.StartRekey(conn, child):
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Snapshot lists every IKE SA with its Child SAs. The SAs are read under
// the lock; their counters come afterwards in one dataplane call, so a
// large table does not hold the engine for an RPC per child.
func (e *Engine) Snapshot() []IKESAInfo {
	e.mu.Lock()
	var out []IKESAInfo
	var keys []provider.SAKey
	for _, sa := range e.sas {
		if sa.Dead() {
			continue
		}
		info := IKESAInfo{Name: sa.Conn.Name, State: sa.State.String(), Local: sa.Local.String(), Remote: sa.Remote.String(),
			Initiator: sa.Initiator, SPIi: fmt.Sprintf("%016x", sa.SPIi), SPIr: fmt.Sprintf("%016x", sa.SPIr),
			EstablishedAt: sa.Established, Children: []ChildSAInfo{}}
		if sa.State != ikesa.StateConnecting {
			info.Proposal = sa.Suite.String()
		}
		info.LocalVIPs, info.RemoteVIPs, info.DNS = addrStrings(sa.LocalVIPs()), addrStrings(sa.RemoteVIPs()), addrStrings(sa.DNS())
		info.PPK = sa.PPK()
		for _, c := range sa.Children {
			in, outKey := c.SAKeys()
			keys = append(keys, in, outKey)
			ci := ChildSAInfo{Name: c.Config.Name, State: c.State.String(), Mode: c.Mode.String(), Proposal: c.Suite.String(),
				SPIIn: fmt.Sprintf("%08x", c.SPIIn), SPIOut: fmt.Sprintf("%08x", c.SPIOut)}
			for _, t := range c.LocalTS {
				ci.LocalTS = append(ci.LocalTS, ts.Format(t))
			}
			for _, t := range c.RemoteTS {
				ci.RemoteTS = append(ci.RemoteTS, ts.Format(t))
			}
			info.Children = append(info.Children, ci)
		}
		out = append(out, info)
	}
	e.mu.Unlock()
	e.fillCounters(out, keys)
	slices.SortFunc(out, func(a, b IKESAInfo) int {
		if a.Name != b.Name {
			if a.Name < b.Name {
				return -1
			}
			return 1
		}
		return a.EstablishedAt.Compare(b.EstablishedAt)
	})
	return out
}

// Status reports conn's state and its last failure in plain language.
func (e *Engine) Status(conn string) ConnectionStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := *e.statusOf(conn)
	sas := e.sasOf(conn)
	st.IKESAs = len(sas)
	st.State = "DOWN"
	if len(sas) > 0 {
		st.State = sas[len(sas)-1].State.String()
	}
	return st
}

// Subscribe returns SA events until the returned cancel is called. A slow
// reader loses events rather than stalling the engine.
func (e *Engine) Subscribe() (<-chan Event, func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	id := e.nextSub
	e.nextSub++
	ch := make(chan Event, 256)
	e.subs[id] = ch
	return ch, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if _, ok := e.subs[id]; ok {
			delete(e.subs, id)
			close(ch)
		}
	}
}

// Stats returns a snapshot of the counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats.Copy()
}

// Shutdown sends Delete for every IKE SA and waits for the answers (or
// ctx); whatever is left is removed from the dataplane without waiting.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	var names []string
	for name := range e.conns {
		names = append(names, name)
	}
	e.mu.Unlock()
	var dones []<-chan struct{}
	for _, n := range names {
		if d, err := e.StartTerminate(n); err == nil {
			dones = append(dones, d)
		}
	}
	var err error
	for _, d := range dones {
		select {
		case <-d:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			break
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, sa := range e.sas {
		sa.ForceDestroy("shutdown")
		e.after(sa)
	}
	return err
}

// routeSource asks the kernel which source address it would use towards
// remote (a connected UDP socket sends nothing).
func routeSource(remote netip.Addr) netip.Addr {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(remote, 500)))
	if err != nil {
		return netip.Addr{}
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
}

// fillCounters sets the children's counters from the dataplane, keys being
// each child's inbound and outbound SA in order. One call serves all; if
// it fails (an SA went away since the lock was released) each child is
// asked on its own and one that fails keeps zero counters.
func (e *Engine) fillCounters(out []IKESAInfo, keys []provider.SAKey) {
	if len(keys) == 0 {
		return
	}
	ctx := context.Background()
	cnt, err := e.cfg.Dataplane.Counters(ctx, keys)
	batch := err == nil && len(cnt) == len(keys)
	i := 0
	for si := range out {
		for ci := range out[si].Children {
			c := &out[si].Children[ci]
			pair := []provider.Counters(nil)
			if batch {
				pair = cnt[i : i+2]
			} else if one, err := e.cfg.Dataplane.Counters(ctx, keys[i:i+2]); err == nil && len(one) == 2 {
				pair = one
			}
			if pair != nil {
				c.BytesIn, c.PacketsIn, c.BytesOut, c.PacketsOut = pair[0].Bytes, pair[0].Packets, pair[1].Bytes, pair[1].Packets
			}
			i += 2
		}
	}
}

func addrStrings(as []netip.Addr) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}
