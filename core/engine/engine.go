// Package engine runs IKE SAs: it owns the sockets, SPI tables, timers,
// retransmits and dispatch around the no-I/O state machine in core/ikesa,
// and the API the daemon uses (connections, initiate, terminate, status).
package engine

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/veil-ipsec/veil/core/ike"
	"github.com/veil-ipsec/veil/core/ikesa"
	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/core/transport"
)

// Connection, Child and AuthConfig are the configuration the daemon passes.
type (
	Connection = ikesa.Connection
	Child      = ikesa.Child
	AuthConfig = ikesa.AuthConfig
)

// Clock tells the time; tests use a fake one and call RunTimers.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Config configures an Engine.
type Config struct {
	Transport      transport.Conn
	Port, NATPort  uint16 // our IKE and NAT-T ports (500, 4500)
	Clock          Clock
	Logger         *slog.Logger
	Dataplane      provider.Dataplane
	KeyStore       provider.KeyStore
	Authenticators map[string]provider.Authenticator
	// CookieThreshold is the number of half-open SAs from which the
	// responder demands a COOKIE (RFC 7296 §2.6); 0 means 1000, negative
	// always.
	CookieThreshold int
	Retransmit      ikesa.Retransmit
	// FragmentSize is the largest IKE datagram before RFC 7383
	// fragmentation, for connections with Fragmentation (0: 1228).
	FragmentSize int
	// VirtualIPs puts the virtual IPs peers assign to us on the host and
	// takes them off again (ikesa.Env.VirtualIPs); nil leaves that to the
	// operator.
	VirtualIPs func(add bool, addrs []netip.Addr)
}

// Engine runs IKE SAs. All SA work is serialised under mu; no goroutine per SA.
type Engine struct {
	cfg   Config
	env   *ikesa.Env
	mu    sync.Mutex
	conns map[string]*Connection

	sas      map[uint64]*ikesa.SA // by our SPI
	halfOpen map[halfKey]*ikesa.SA
	timers   timerHeap
	sched    map[*ikesa.SA]time.Time
	waiters  map[*ikesa.SA][]*waiter
	status   map[string]*ConnectionStatus
	subs     map[int]chan Event
	nextSub  int
	stats    *ikesa.Stats
	reqID    uint32
	// reauth: IKE SAs being reauthenticated, and their replacements, with
	// the children still to bring back (reauth.go)
	reauth map[*ikesa.SA]reauthState
	// traps: Trap policies of children without SA (trap.go); dpdTrapped:
	// connections whose peer DPD declared dead with dpd_action = "trap"
	traps      map[trapKey]*trap
	dpdTrapped map[string]bool

	cookieSecret, oldCookieSecret [32]byte
	cookieVersion                 uint32
	cookieRotated                 time.Time

	wake chan struct{}
	// offloads counts provider work running without mu (offload).
	offloads sync.WaitGroup
}

type halfKey struct {
	remote netip.AddrPort
	spii   uint64
}

type waiter struct {
	child string
	done  chan error
}

// New checks cfg and returns an engine; Run starts it.
func New(cfg Config) (*Engine, error) {
	if cfg.Transport == nil || cfg.Dataplane == nil {
		return nil, errors.New("engine: Transport and Dataplane are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Port == 0 {
		cfg.Port = 500
	}
	if cfg.NATPort == 0 {
		cfg.NATPort = 4500
	}
	if cfg.CookieThreshold == 0 {
		cfg.CookieThreshold = 1000
	}
	if cfg.Retransmit.Tries == 0 {
		cfg.Retransmit = ikesa.DefaultRetransmit
	}
	e := &Engine{cfg: cfg, conns: map[string]*Connection{}, sas: map[uint64]*ikesa.SA{},
		halfOpen: map[halfKey]*ikesa.SA{}, sched: map[*ikesa.SA]time.Time{}, waiters: map[*ikesa.SA][]*waiter{},
		status: map[string]*ConnectionStatus{}, subs: map[int]chan Event{}, stats: ikesa.NewStats(),
		wake: make(chan struct{}, 1), traps: map[trapKey]*trap{}, dpdTrapped: map[string]bool{}}
	e.env = &ikesa.Env{Dataplane: cfg.Dataplane, KeyStore: cfg.KeyStore, Auth: cfg.Authenticators,
		Logger: cfg.Logger, Now: cfg.Clock.Now, Retransmit: cfg.Retransmit, NATPort: cfg.NATPort, FragmentSize: cfg.FragmentSize,
		NextReqID: func() uint32 { e.reqID++; return e.reqID }, Stats: e.stats, Candidates: e.candidates, Offload: e.offload,
		ReleaseTrap: e.releaseTrap, Pools: ikesa.NewAddressPools(), VirtualIPs: cfg.VirtualIPs}
	rand.Read(e.cookieSecret[:])
	e.cookieRotated = cfg.Clock.Now()
	return e, nil
}

// Run receives packets and runs timers until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	dpCtx, stopDP := context.WithCancel(ctx)
	defer stopDP()
	go e.watchDataplane(dpCtx)
	go func() {
		pkts := make([]transport.Packet, 32)
		for {
			n, err := e.cfg.Transport.Receive(pkts)
			if err != nil {
				errc <- err
				return
			}
			e.mu.Lock()
			for i := range pkts[:n] {
				e.handlePacket(pkts[i])
				pkts[i] = transport.Packet{}
			}
			e.mu.Unlock()
			e.poke()
		}
	}()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		e.mu.Lock()
		next := e.runTimersLocked()
		e.mu.Unlock()
		d := time.Hour
		if !next.IsZero() {
			d = max(next.Sub(e.cfg.Clock.Now()), time.Millisecond)
		}
		t.Reset(d)
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if errors.Is(err, transport.ErrClosed) {
				return nil
			}
			return err
		case <-t.C:
		case <-e.wake:
		}
	}
}

// offload runs provider work that may wait on a backend (an EAP step
// relayed to RADIUS) on its own goroutine, so other SAs go on meanwhile;
// apply then runs under mu like any other SA step.
func (e *Engine) offload(sa *ikesa.SA, work, apply func()) {
	e.offloads.Add(1)
	go func() {
		defer e.offloads.Done()
		work()
		e.mu.Lock()
		apply()
		e.after(sa)
		e.mu.Unlock()
		e.poke()
	}()
}

func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// RunTimers runs what is due now (tests with a fake clock call it).
func (e *Engine) RunTimers() {
	e.mu.Lock()
	e.runTimersLocked()
	e.mu.Unlock()
}

// HandlePacket processes one received datagram (Run calls it; tests may).
func (e *Engine) HandlePacket(p transport.Packet) {
	e.mu.Lock()
	e.handlePacket(p)
	e.mu.Unlock()
}

func (e *Engine) handlePacket(p transport.Packet) {
	m, err := ike.ParseMessage(p.Data)
	if err != nil {
		e.stats.Drop("malformed")
		e.cfg.Logger.Debug("dropping malformed IKE message", "remote", p.Remote, "err", err)
		return
	}
	h := &m.Header
	if h.Major != 2 {
		e.stats.Drop("version")
		return
	}
	if h.Exchange == ike.IKE_SA_INIT && !h.IsResponse() && h.SPIr == 0 {
		if sa := e.halfOpen[halfKey{p.Remote, h.SPIi}]; sa != nil {
			sa.HandleMessage(m, p.Local, p.Remote)
			e.after(sa)
			return
		}
		e.respondInit(p, m)
		return
	}
	spi := h.SPIi
	if h.IsInitiator() {
		spi = h.SPIr
	}
	sa := e.sas[spi]
	if sa == nil {
		e.stats.Drop("unknown-spi")
		e.cfg.Logger.Debug("dropping message for an unknown IKE SA", "remote", p.Remote, "spi_i", fmt.Sprintf("%016x", h.SPIi), "spi_r", fmt.Sprintf("%016x", h.SPIr))
		return
	}
	sa.HandleMessage(m, p.Local, p.Remote)
	e.after(sa)
}

func (e *Engine) findConn(remote netip.Addr) *Connection {
	if cs := e.candidates(remote); len(cs) > 0 {
		return cs[0]
	}
	return nil
}

// candidates lists connections for a peer address: exact address matches
// first, then those accepting any address; by name within each group.
func (e *Engine) candidates(remote netip.Addr) []*Connection {
	var exact, any []*Connection
	for _, c := range e.conns {
		if len(c.RemoteAddrs) == 0 {
			any = append(any, c)
		}
		if slices.Contains(c.RemoteAddrs, remote) {
			exact = append(exact, c)
		}
	}
	byName := func(a, b *Connection) int { return strings.Compare(a.Name, b.Name) }
	slices.SortFunc(exact, byName)
	slices.SortFunc(any, byName)
	return append(exact, any...)
}

func (e *Engine) respondInit(p transport.Packet, m *ike.Message) {
	conn := e.findConn(p.Remote.Addr())
	if conn == nil {
		e.stats.Drop("no-connection")
		e.cfg.Logger.Debug("no connection for peer", "remote", p.Remote)
		return
	}
	if now := e.cfg.Clock.Now(); now.Sub(e.cookieRotated) >= CookieSecretLifetime {
		e.rotateCookieSecretLocked(now)
	}
	if e.cfg.CookieThreshold < 0 || len(e.halfOpen) >= e.cfg.CookieThreshold {
		want := e.cookie(e.cookieSecret, e.cookieVersion, m, p.Remote)
		got := m.Notify(ike.NotifyCookie)
		ok := got != nil && hmac.Equal(got.Data, want)
		if !ok && got != nil && e.cookieVersion > 0 {
			ok = hmac.Equal(got.Data, e.cookie(e.oldCookieSecret, e.cookieVersion-1, m, p.Remote))
		}
		if !ok {
			e.stats.Drop("cookie-required")
			r := &ike.Message{Header: ike.Header{SPIi: m.Header.SPIi, Major: 2, Exchange: ike.IKE_SA_INIT, Flags: ike.FlagResponse},
				Payloads: []ike.Payload{&ike.Notify{NotifyType: ike.NotifyCookie, Data: want}}}
			b, _ := r.Marshal()
			e.send(p.Local, p.Remote, b)
			return
		}
	}
	sa, rej := ikesa.RespondInit(e.env, conn, m, p.Local, p.Remote)
	if rej != nil {
		e.send(p.Local, p.Remote, rej.Reply)
		e.setFailure(conn.Name, rej.Reason)
		e.cfg.Logger.Info("IKE_SA_INIT rejected", "conn", conn.Name, "remote", p.Remote, "reason", rej.Reason)
		return
	}
	e.sas[sa.SPIr] = sa
	e.halfOpen[halfKey{p.Remote, sa.SPIi}] = sa
	e.after(sa)
}

// cookie is RFC 7296 §2.6's <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>).
func (e *Engine) cookie(secret [32]byte, version uint32, m *ike.Message, remote netip.AddrPort) []byte {
	mac := hmac.New(sha256.New, secret[:])
	if n := ike.Get[*ike.Nonce](m.Payloads); n != nil {
		mac.Write(n.Data)
	}
	mac.Write(remote.Addr().AsSlice())
	mac.Write(binary.BigEndian.AppendUint64(nil, m.Header.SPIi))
	return mac.Sum(binary.BigEndian.AppendUint32(nil, version))
}

// RotateCookieSecret starts a new cookie secret; cookies made with the
// previous one stay valid until the next rotation.
func (e *Engine) RotateCookieSecret() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rotateCookieSecretLocked(e.cfg.Clock.Now())
}

// CookieSecretLifetime is how often the cookie secret changes by itself.
const CookieSecretLifetime = 5 * time.Minute

func (e *Engine) rotateCookieSecretLocked(now time.Time) {
	e.oldCookieSecret = e.cookieSecret
	rand.Read(e.cookieSecret[:])
	e.cookieVersion++
	e.cookieRotated = now
}

func (e *Engine) send(local, remote netip.AddrPort, b []byte) {
	if err := e.cfg.Transport.Send(transport.Packet{Data: b, Local: local, Remote: remote}); err != nil {
		e.cfg.Logger.Debug("send failed", "remote", remote, "err", err)
	}
}

// after drains an SA's output and events and updates tables and timers.
func (e *Engine) after(sa *ikesa.SA) {
	for _, b := range sa.TakeOutput() {
		e.send(sa.Local, sa.Remote, b)
	}
	for _, ev := range sa.TakeEvents() {
		e.handleEvent(sa, ev)
	}
	for _, n := range sa.TakeSpawned() {
		e.sas[n.LocalSPI()] = n
		e.after(n)
	}
	if s := sa.Successor(); s != nil && !s.Dead() {
		// a retiring SA may hand work (queued deletes) to its successor
		e.after(s)
	}
	if !sa.Initiator && sa.State != ikesa.StateConnecting {
		delete(e.halfOpen, halfKey{sa.Remote, sa.SPIi})
	}
	if sa.Dead() {
		delete(e.sas, sa.LocalSPI())
		for k, v := range e.halfOpen {
			if v == sa {
				delete(e.halfOpen, k)
			}
		}
		delete(e.sched, sa)
		e.reauthGone(sa)
		for _, w := range e.waiters[sa] {
			w.done <- errors.New(failureOr(sa.LastFailure, "IKE SA deleted"))
		}
		delete(e.waiters, sa)
		if c := e.conns[sa.Conn.Name]; c == sa.Conn {
			e.ensureTraps(c)
		}
		return
	}
	e.schedule(sa)
}

func failureOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (e *Engine) handleEvent(sa *ikesa.SA, ev ikesa.Event) {
	st := e.statusOf(ev.Conn)
	switch ev.Kind {
	case ikesa.EventFailed, ikesa.EventChildFailed:
		st.LastFailure = ev.Reason
		st.LastFailureAt = e.cfg.Clock.Now()
	case ikesa.EventReauth:
		defer e.after(sa)
		e.startReauth(sa)
	case ikesa.EventUp:
		defer e.reauthUp(sa)
	case ikesa.EventDown:
		if ev.Class != "" {
			st.LastFailure = ev.Reason
			st.LastFailureAt = e.cfg.Clock.Now()
		}
		if ev.Class == "timeout" && e.conns[sa.Conn.Name] == sa.Conn {
			defer e.dpdVerdict(sa.Conn) // trap.go
		}
	}
	keep := e.waiters[sa][:0]
	for _, w := range e.waiters[sa] {
		var done bool
		var err error
		switch ev.Kind {
		case ikesa.EventUp:
			done = len(sa.Conn.Children) == 0
		case ikesa.EventChildUp:
			done = w.child == "" || w.child == ev.Child
		case ikesa.EventFailed, ikesa.EventDown:
			done, err = true, errors.New(failureOr(ev.Reason, "IKE SA down"))
		case ikesa.EventChildFailed:
			// A failed rekey ends only the waiter for that child's rekey.
			done, err = !strings.HasPrefix(w.child, "rekey:") || w.child == "rekey:"+ev.Child, errors.New(ev.Reason)
		case ikesa.EventRekeyed:
			done = w.child == "rekey:"+ev.Child
		}
		if done {
			w.done <- err
		} else {
			keep = append(keep, w)
		}
	}
	e.waiters[sa] = keep
	out := Event{Kind: ev.Kind, Conn: ev.Conn, Child: ev.Child, Reason: ev.Reason, At: e.cfg.Clock.Now()}
	for _, ch := range e.subs {
		select {
		case ch <- out:
		default:
		}
	}
}

func (e *Engine) statusOf(name string) *ConnectionStatus {
	st := e.status[name]
	if st == nil {
		st = &ConnectionStatus{Name: name}
		e.status[name] = st
	}
	return st
}

func (e *Engine) setFailure(conn, reason string) {
	st := e.statusOf(conn)
	st.LastFailure, st.LastFailureAt = reason, e.cfg.Clock.Now()
}
