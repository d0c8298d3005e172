// Package userspace is Veil's userspace ESP dataplane: it implements
// provider.Dataplane in-process with ESP in Go, a TUN device for packet
// steering and policy routing rules that send protected traffic into it.
// It works on kernels without ESP support. See README.md for the packet path.
package userspace

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/plugins/dataplane/userspace/esp"
	"github.com/veil-ipsec/veil/plugins/dataplane/userspace/replay"
	"github.com/veil-ipsec/veil/plugins/dataplane/userspace/tun"
)

// DefaultFwMark is the SO_MARK of the dataplane's own sockets: packets that
// carry it bypass the steering rules. The IKE daemon's sockets must carry it
// too, or IKE would be steered into the TUN device.
const DefaultFwMark = 0x7e110000

// Options configure a Dataplane. Zero values take the defaults shown.
type Options struct {
	TUNName string // "veil0"
	// PathMTU is the MTU of the path the ESP packets take (1500). The TUN
	// device's MTU is derived from it unless TUNMTU is set.
	PathMTU int
	TUNMTU  int
	// Table is the routing table protected traffic is steered through
	// (0x7e11); rules live at priorities RulePriority..RulePriority+999
	// (10000). Everything in that table and range belongs to the dataplane
	// and is removed on start and on Close.
	Table        int
	RulePriority int
	// FwMark is set (SO_MARK) on the ESP sockets so outer packets bypass the
	// steering rules (0x7e110000). The IKE socket must carry it too.
	FwMark uint32
	// Queues is the number of TUN queues, each served by its own goroutine
	// (GOMAXPROCS, at most 8).
	Queues int
	// RawESP receives and sends ESP as IP protocol 50 (true unless
	// DisableRawESP).
	DisableRawESP bool
	// UDP encapsulation (RFC 3948). If UDPConns is empty the dataplane
	// listens on UDPPort (4500; -1 disables) for IPv4 and IPv6. Packets
	// starting with the non-ESP marker go to IKE.
	UDPPort  int
	UDPConns []net.PacketConn
	// UDPShared joins the UDPPort sockets to the IKE daemon's SO_REUSEPORT
	// group on that port (core/transport share.go), bound to UDPAddr4 and
	// UDPAddr6 (the daemon's listen addresses; unset: the wildcards), so
	// ESP-in-UDP reaches this process on the daemon's port 4500 with batched
	// reads and UDP GRO. A zero UDPAddr6 with UDPAddr4 set means no IPv6.
	UDPShared          bool
	UDPAddr4, UDPAddr6 netip.Addr
	IKE                func(pkt []byte, from netip.AddrPort)
	// ClampMSS rewrites the MSS option of outgoing TCP SYNs to fit the SA.
	ClampMSS bool
	// Offload lets the kernel hand TCP segments of up to 64 KiB to the TUN
	// device (virtio-net header, TSO); the dataplane segments them before
	// sealing, saving one TUN read per segment, merges received TCP runs
	// into one TUN write, and uses UDP GSO/GRO on the ESP-in-UDP sockets.
	Offload bool
	Logger  *slog.Logger
}

func (o *Options) defaults() {
	if o.TUNName == "" {
		o.TUNName = "veil0"
	}
	if o.PathMTU == 0 {
		o.PathMTU = 1500
	}
	if o.TUNMTU == 0 {
		// Worst case: IPv6 outer header, UDP encapsulation, AEAD with an
		// 8-byte IV, 16-byte ICV and up to 3 bytes of padding.
		o.TUNMTU = o.PathMTU - 40 - 8 - esp.HeaderLen - 8 - 16 - 2 - 3
	}
	if o.Table == 0 {
		o.Table = 0x7e11
	}
	if o.RulePriority == 0 {
		o.RulePriority = 10000
	}
	if o.FwMark == 0 {
		o.FwMark = DefaultFwMark
	}
	if o.Queues == 0 {
		o.Queues = min(runtime.GOMAXPROCS(0), 8)
	}
	if o.UDPPort == 0 {
		o.UDPPort = 4500
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Stats are dataplane-wide counters (per-SA ones are in Counters).
type Stats struct {
	WrongSPI       uint64 // ESP with an SPI no inbound SA has
	Malformed      uint64 // packets too short or inconsistent
	NoPolicy       uint64 // steered packets no outbound Protect/Trap policy matches
	NoSA           uint64 // protected traffic without an SA (dropped, Acquire raised)
	PolicyMismatch uint64 // decrypted packets outside the SA's inbound policies
	TooBig         uint64 // packets over the SA's path MTU
	SeqExhausted   uint64 // packets dropped at the sequence number limit
	SendErrors     uint64
	EventsDropped  uint64 // events a slow subscriber missed
	TSOPackets     uint64 // large TCP packets cut into segments (Offload)
	UDPGROPackets  uint64 // received UDP datagrams carrying several ESP packets (Offload)
	GROPackets     uint64 // runs of received TCP segments written as one (Offload)
}

type stats struct {
	wrongSPI, malformed, noPolicy, noSA, policyMismatch, tooBig     atomic.Uint64
	seqExhausted, sendErrors, eventsDropped, tsoPackets, groPackets atomic.Uint64
	udpGROPackets                                                   atomic.Uint64
}

// sa is one installed Child SA direction. Immutable after install except
// for the atomics.
type sa struct {
	cfg    provider.ChildSA // keys cleared
	key    provider.SAKey
	esp    *esp.SA
	window *replay.Window // inbound only

	seq          atomic.Uint64 // outbound: last sequence number used
	seqLimit     uint64
	seqSoft      uint64
	seqEventSent atomic.Bool
	softSent     atomic.Bool
	hardSent     atomic.Bool

	bytes, packets, replayDrops, authFailures atomic.Uint64
	lastUse                                   atomic.Int64

	maxInner int // largest inner packet that fits the path MTU
	rawAddr  net.Addr
	udpAddr  net.Addr
	timers   []*time.Timer
}

// policy is an installed policy plus its rate limit for Acquire events.
type installedPolicy struct {
	provider.Policy
	lastAcquire atomic.Int64
}

// tables is the immutable snapshot the packet path reads; control calls
// replace it under Dataplane.mu (copy on write), so packets take no lock.
type tables struct {
	byKey       map[provider.SAKey]*sa
	inBySPI     map[uint32]*sa
	outByReqID  map[uint32]*sa
	outPolicies []*installedPolicy // by priority
	inPolicies  []*installedPolicy
}

// Dataplane implements provider.Dataplane.
type Dataplane struct {
	opts     Options
	mtuFixed bool // Options.TUNMTU was given
	log      *slog.Logger

	tun     *tun.Device
	routing *routing
	raw4    *ipv4.PacketConn
	raw6    batchConn
	udp4    *ipv4.PacketConn
	udp6    batchConn
	ext     []net.PacketConn // UDPConns from Options
	closers []func() error

	mu       sync.Mutex
	tables   atomic.Pointer[tables]
	reserved map[uint32]time.Time // SPIs handed out by AllocateSPI, not installed yet, and when
	pruned   time.Time            // the last sweep of reserved

	subMu sync.Mutex
	subs  map[chan provider.Event]struct{}

	stats stats
	wg    sync.WaitGroup
	done  chan struct{}
	once  sync.Once
}

var _ provider.Dataplane = (*Dataplane)(nil)

// New creates the TUN device, the ESP sockets and the bypass rules in the
// calling thread's network namespace (lock the OS thread when switching
// namespaces) and starts the packet goroutines. Leftovers of a previous run
// (same table and rule range) are removed first.
func New(opts Options) (*Dataplane, error) {
	fixed := opts.TUNMTU != 0
	opts.defaults()
	d := &Dataplane{opts: opts, mtuFixed: fixed, log: opts.Logger, reserved: map[uint32]time.Time{},
		subs: map[chan provider.Event]struct{}{}, done: make(chan struct{})}
	d.tables.Store(&tables{byKey: map[provider.SAKey]*sa{}, inBySPI: map[uint32]*sa{}, outByReqID: map[uint32]*sa{}})
	if err := d.open(); err != nil {
		d.Close()
		return nil, err
	}
	for _, q := range d.tun.Queues {
		d.start(func() { d.routineReadTUN(q) })
	}
	if d.raw4 != nil {
		d.start(func() { d.routineReceive(d.raw4, recvRaw4) })
	}
	if d.raw6 != nil {
		d.start(func() { d.routineReceive(d.raw6, recvRaw6) })
	}
	if d.udp4 != nil {
		d.start(func() { d.routineReceive(d.udp4, recvUDP) })
	}
	if d.udp6 != nil {
		d.start(func() { d.routineReceive(d.udp6, recvUDP) })
	}
	for _, c := range d.ext {
		d.start(func() { d.routineReceiveConn(c) })
	}
	return d, nil
}

func (d *Dataplane) start(f func()) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		f()
	}()
}

func (d *Dataplane) open() error {
	o := &d.opts
	r, err := newRouting(o.Table, o.RulePriority, o.FwMark, o.TUNName)
	if err != nil {
		return err
	}
	d.routing = r
	r.cleanup()
	dev, err := tun.Open(o.TUNName, o.Queues, o.Offload)
	if err != nil {
		return err
	}
	d.tun = dev
	if err := r.setupDevice(o.TUNMTU); err != nil {
		return err
	}
	if !o.DisableRawESP {
		c4, err := listenMarked("ip4:50", "0.0.0.0", o.FwMark)
		if err != nil {
			return fmt.Errorf("raw ESP socket (IPv4): %w", err)
		}
		d.closers = append(d.closers, c4.Close)
		d.raw4 = ipv4.NewPacketConn(c4)
		c6, err := listenMarked("ip6:50", "::", o.FwMark)
		if err != nil {
			return fmt.Errorf("raw ESP socket (IPv6): %w", err)
		}
		d.closers = append(d.closers, c6.Close)
		d.raw6 = newBatch6(c6)
	}
	if len(o.UDPConns) > 0 {
		d.ext = o.UDPConns
	} else if o.UDPPort > 0 {
		a4, a6 := netip.IPv4Unspecified(), netip.IPv6Unspecified()
		if o.UDPShared && (o.UDPAddr4.IsValid() || o.UDPAddr6.IsValid()) {
			a4, a6 = o.UDPAddr4, o.UDPAddr6
		}
		if a4.IsValid() {
			c4, err := listenMarkedShared("udp4", netip.AddrPortFrom(a4, uint16(o.UDPPort)).String(), o.FwMark, o.UDPShared)
			if err != nil {
				return fmt.Errorf("UDP encapsulation socket: %w", err)
			}
			d.closers = append(d.closers, c4.Close)
			d.udp4 = ipv4.NewPacketConn(c4)
			if o.Offload {
				enableGRO(c4)
			}
		}
		if a6.IsValid() {
			c6, err := listenMarkedShared("udp6", netip.AddrPortFrom(a6, uint16(o.UDPPort)).String(), o.FwMark, o.UDPShared)
			if err != nil {
				return fmt.Errorf("UDP encapsulation socket (IPv6): %w", err)
			}
			d.closers = append(d.closers, c6.Close)
			d.udp6 = newBatch6(c6)
			if o.Offload {
				enableGRO(c6)
			}
		}
	}
	return nil
}

// Close stops the packet path and removes the TUN device, rules and routes.
func (d *Dataplane) Close() error {
	var errs []error
	d.once.Do(func() {
		close(d.done)
		for _, c := range d.closers {
			c()
		}
		// Sockets from Options.UDPConns belong to the caller: wake our
		// reader instead of closing them.
		for _, c := range d.ext {
			c.SetReadDeadline(time.Now())
		}
		if d.tun != nil {
			errs = append(errs, d.tun.Close())
		}
		d.wg.Wait()
		if d.routing != nil {
			d.routing.cleanup()
			d.routing.close()
		}
		d.mu.Lock()
		for _, s := range d.tables.Load().byKey {
			for _, t := range s.timers {
				t.Stop()
			}
		}
		d.mu.Unlock()
		d.subMu.Lock()
		for ch := range d.subs {
			close(ch)
			delete(d.subs, ch)
		}
		d.subMu.Unlock()
	})
	return errors.Join(errs...)
}

// Stats returns the dataplane-wide drop counters.
func (d *Dataplane) Stats() Stats {
	s := &d.stats
	return Stats{s.wrongSPI.Load(), s.malformed.Load(), s.noPolicy.Load(), s.noSA.Load(), s.policyMismatch.Load(),
		s.tooBig.Load(), s.seqExhausted.Load(), s.sendErrors.Load(), s.eventsDropped.Load(), s.tsoPackets.Load(), s.udpGROPackets.Load(), s.groPackets.Load()}
}

// TUNName is the name the kernel gave the TUN device.
func (d *Dataplane) TUNName() string { return d.tun.Name }

// update runs f on a copy of the tables and publishes the result.
func (d *Dataplane) update(f func(t *tables) error) error {
	old := d.tables.Load()
	t := &tables{byKey: maps(old.byKey), inBySPI: maps(old.inBySPI), outByReqID: maps(old.outByReqID),
		outPolicies: slices.Clone(old.outPolicies), inPolicies: slices.Clone(old.inPolicies)}
	if err := f(t); err != nil {
		return err
	}
	d.tables.Store(t)
	return nil
}

func maps[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// spiReservation is how long an SPI AllocateSPI handed out stays reserved
// when no SA takes it and nobody gives it back with DeleteSA: well past
// dataplane.SPIHoldTime and an exchange's last retransmission.
const spiReservation = 10 * time.Minute

// AllocateSPI returns a random unused inbound SPI (>= 256, RFC 4303 §2.1).
func (d *Dataplane) AllocateSPI(ctx context.Context, src, dst netip.Addr) (uint32, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	if now.Sub(d.pruned) > spiReservation/10 {
		for spi, at := range d.reserved {
			if now.Sub(at) > spiReservation {
				delete(d.reserved, spi)
			}
		}
		d.pruned = now
	}
	t := d.tables.Load()
	for range 1000 {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return 0, err
		}
		spi := binary.BigEndian.Uint32(b[:])
		if _, taken := d.reserved[spi]; spi < 256 || taken || t.inBySPI[spi] != nil {
			continue
		}
		d.reserved[spi] = now
		return spi, nil
	}
	return 0, errors.New("no free SPI")
}

// InstallSA adds (or replaces) an SA. Key material is copied into cipher
// state and the request's key slices are left to the caller to zero.
func (d *Dataplane) InstallSA(ctx context.Context, c *provider.ChildSA) error {
	if c == nil || !c.Dst.IsValid() || !c.Src.IsValid() || c.Src.Is4() != c.Dst.Is4() {
		return errors.New("SA needs source and destination addresses of one family")
	}
	if c.Mode != provider.Transport && c.Mode != provider.Tunnel {
		return fmt.Errorf("SA mode %d not supported", c.Mode)
	}
	e, err := esp.New(c.SPI, c.Encryption, c.EncKey, c.Integrity, c.IntegKey, c.ESN)
	if err != nil {
		return err
	}
	s := &sa{cfg: *c, key: provider.SAKey{Dst: c.Dst, SPI: c.SPI}, esp: e}
	s.cfg.EncKey, s.cfg.IntegKey = nil, nil
	s.lastUse.Store(0)
	if c.Inbound {
		s.window = replay.New(c.ReplayWindow, c.ESN)
	} else {
		s.seqLimit = 1<<32 - 1
		if c.ESN {
			s.seqLimit = ^uint64(0)
		}
		s.seqSoft = s.seqLimit - seqSoftMargin
		s.rawAddr = &net.IPAddr{IP: c.Dst.AsSlice()}
		if c.Encap != nil {
			s.udpAddr = &net.UDPAddr{IP: c.Dst.AsSlice(), Port: int(c.Encap.DstPort)}
		}
		s.maxInner = maxInner(d.opts.PathMTU, c, e)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	err = d.update(func(t *tables) error {
		if old := t.byKey[s.key]; old != nil {
			removeSA(t, old)
		}
		t.byKey[s.key] = s
		if c.Inbound {
			t.inBySPI[c.SPI] = s
		} else {
			t.outByReqID[c.ReqID] = s
		}
		return nil
	})
	if err != nil {
		return err
	}
	delete(d.reserved, c.SPI)
	d.armLifetime(s)
	d.fitMTU()
	return nil
}

// fitMTU lowers the TUN MTU when an installed outbound SA has more overhead
// than the default allows for (e.g. AES-CBC with a long ICV), and raises it
// back when that SA goes. A TUNMTU set in Options is left alone.
func (d *Dataplane) fitMTU() {
	if d.mtuFixed || d.routing == nil {
		return
	}
	mtu := d.opts.TUNMTU
	for _, s := range d.tables.Load().outByReqID {
		mtu = min(mtu, s.maxInner)
	}
	if err := d.routing.setMTU(mtu); err != nil {
		d.log.Warn("TUN MTU", "mtu", mtu, "err", err)
	}
}

// seqSoftMargin is how many sequence numbers before exhaustion the
// SeqExhausted event fires, leaving the engine time to rekey.
const seqSoftMargin = 1 << 20

func maxInner(pathMTU int, c *provider.ChildSA, e *esp.SA) int {
	outer := 20
	if c.Dst.Is6() {
		outer = 40
	}
	room := pathMTU - outer
	if c.Encap != nil {
		room -= 8
	}
	// Largest payload whose sealed size fits.
	n := room - e.MaxOverhead()
	for e.SealedLen(n+1) <= room {
		n++
	}
	if c.Mode == provider.Transport {
		n += outer // the inner header is not carried
	}
	return n
}

func removeSA(t *tables, s *sa) {
	delete(t.byKey, s.key)
	if s.cfg.Inbound {
		if t.inBySPI[s.cfg.SPI] == s {
			delete(t.inBySPI, s.cfg.SPI)
		}
	} else if t.outByReqID[s.cfg.ReqID] == s {
		delete(t.outByReqID, s.cfg.ReqID)
	}
}

// DeleteSA removes an SA; packets in flight that already looked it up
// finish. For an SPI that AllocateSPI reserved and no SA took, it ends the
// reservation (the host gives back SPIs it allocated ahead and never used).
func (d *Dataplane) DeleteSA(ctx context.Context, key provider.SAKey) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.reserved[key.SPI]; ok && d.tables.Load().byKey[key] == nil {
		delete(d.reserved, key.SPI) // no table to copy, no MTU to refit
		return nil
	}
	err := d.update(func(t *tables) error {
		s := t.byKey[key]
		if s == nil {
			return fmt.Errorf("no SA with SPI %#08x to %s", key.SPI, key.Dst)
		}
		for _, tm := range s.timers {
			tm.Stop()
		}
		removeSA(t, s)
		return nil
	})
	if err == nil {
		d.fitMTU()
	}
	return err
}

// InstallPolicy adds a policy. Outbound Protect, Trap and Block policies get
// routing rules that steer matching traffic into the TUN device; Bypass
// policies get rules ahead of those that keep their traffic on the main table.
func (d *Dataplane) InstallPolicy(ctx context.Context, p *provider.Policy) error {
	if p == nil || p.Action < provider.Protect || p.Action > provider.Block {
		return errors.New("policy needs an action")
	}
	if p.Local.Start.IsValid() && p.Remote.Start.IsValid() && p.Local.Start.Is4() != p.Remote.Start.Is4() {
		return errors.New("policy selectors mix IPv4 and IPv6")
	}
	np := &installedPolicy{Policy: *p}
	d.mu.Lock()
	defer d.mu.Unlock()
	if p.Dir == provider.Out {
		if err := d.routing.addPolicy(p); err != nil {
			return err
		}
	}
	return d.update(func(t *tables) error {
		list := &t.inPolicies
		if p.Dir == provider.Out {
			list = &t.outPolicies
		} else if p.Dir != provider.In {
			return nil // forwarding policies: the kernel forwards, nothing to do here
		}
		*list = slices.DeleteFunc(*list, func(o *installedPolicy) bool { return samePolicy(&o.Policy, p) })
		*list = append(*list, np)
		slices.SortStableFunc(*list, func(a, b *installedPolicy) int { return int(a.Priority) - int(b.Priority) })
		return nil
	})
}

func samePolicy(a, b *provider.Policy) bool {
	return a.Dir == b.Dir && a.Local == b.Local && a.Remote == b.Remote && a.Mark == b.Mark && a.IfID == b.IfID
}

// DeletePolicy removes a policy and its routing rules.
func (d *Dataplane) DeletePolicy(ctx context.Context, p *provider.Policy) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	found := false
	err := d.update(func(t *tables) error {
		for _, list := range []*[]*installedPolicy{&t.inPolicies, &t.outPolicies} {
			n := len(*list)
			*list = slices.DeleteFunc(*list, func(o *installedPolicy) bool { return samePolicy(&o.Policy, p) })
			found = found || len(*list) != n
		}
		return nil
	})
	if err != nil {
		return err
	}
	if p.Dir == provider.Out {
		d.routing.deletePolicy(p)
	}
	if !found && p.Dir != provider.Fwd {
		return errors.New("no such policy")
	}
	return nil
}

// Counters returns the counters of the given SAs, in order.
func (d *Dataplane) Counters(ctx context.Context, keys []provider.SAKey) ([]provider.Counters, error) {
	t := d.tables.Load()
	out := make([]provider.Counters, len(keys))
	for i, k := range keys {
		s := t.byKey[k]
		if s == nil {
			return nil, fmt.Errorf("no SA with SPI %#08x to %s", k.SPI, k.Dst)
		}
		out[i] = provider.Counters{Bytes: s.bytes.Load(), Packets: s.packets.Load(),
			ReplayDrops: s.replayDrops.Load(), AuthFailures: s.authFailures.Load()}
		if ns := s.lastUse.Load(); ns != 0 {
			out[i].LastUse = time.Unix(0, ns)
		}
	}
	return out, nil
}

// Events delivers events until ctx ends or the dataplane closes.
func (d *Dataplane) Events(ctx context.Context) (<-chan provider.Event, error) {
	ch := make(chan provider.Event, 256)
	d.subMu.Lock()
	select {
	case <-d.done:
		d.subMu.Unlock()
		return nil, errors.New("dataplane closed")
	default:
	}
	d.subs[ch] = struct{}{}
	d.subMu.Unlock()
	go func() {
		select {
		case <-ctx.Done():
		case <-d.done:
		}
		d.subMu.Lock()
		if _, ok := d.subs[ch]; ok {
			delete(d.subs, ch)
			close(ch)
		}
		d.subMu.Unlock()
	}()
	return ch, nil
}

// emit never blocks the packet path: a full subscriber loses the event
// (counted in Stats.EventsDropped).
func (d *Dataplane) emit(e provider.Event) {
	d.subMu.Lock()
	defer d.subMu.Unlock()
	for ch := range d.subs {
		select {
		case ch <- e:
		default:
			d.stats.eventsDropped.Add(1)
		}
	}
}

// armLifetime starts the time-based soft and hard expiry of an SA.
func (d *Dataplane) armLifetime(s *sa) {
	if t := s.cfg.Soft.Time; t > 0 {
		s.timers = append(s.timers, time.AfterFunc(t, func() {
			if s.softSent.CompareAndSwap(false, true) {
				d.emit(provider.Event{Kind: provider.SoftExpire, ReqID: s.cfg.ReqID, SA: s.key})
			}
		}))
	}
	if t := s.cfg.Hard.Time; t > 0 {
		s.timers = append(s.timers, time.AfterFunc(t, func() { d.expire(s) }))
	}
}

// expire removes an SA at its hard limit and tells the engine.
func (d *Dataplane) expire(s *sa) {
	d.mu.Lock()
	removed := false
	d.update(func(t *tables) error {
		if t.byKey[s.key] == s {
			removeSA(t, s)
			removed = true
		}
		return nil
	})
	d.fitMTU()
	d.mu.Unlock()
	if removed {
		d.emit(provider.Event{Kind: provider.HardExpire, ReqID: s.cfg.ReqID, SA: s.key})
	}
}

// account counts a packet on an SA and checks the volume lifetimes.
func (d *Dataplane) account(s *sa, n int, now int64) {
	b := s.bytes.Add(uint64(n))
	p := s.packets.Add(1)
	s.lastUse.Store(now)
	soft, hard := &s.cfg.Soft, &s.cfg.Hard
	if (soft.Bytes > 0 && b >= soft.Bytes || soft.Packets > 0 && p >= soft.Packets) && s.softSent.CompareAndSwap(false, true) {
		d.emit(provider.Event{Kind: provider.SoftExpire, ReqID: s.cfg.ReqID, SA: s.key})
	}
	if (hard.Bytes > 0 && b >= hard.Bytes || hard.Packets > 0 && p >= hard.Packets) && s.hardSent.CompareAndSwap(false, true) {
		go d.expire(s)
	}
}

// acquire raises an Acquire event for a Trap policy (or a Protect policy
// without SA), at most once a second per policy.
func (d *Dataplane) acquire(p *installedPolicy, now int64) {
	last := p.lastAcquire.Load()
	if now-last < int64(time.Second) || !p.lastAcquire.CompareAndSwap(last, now) {
		return
	}
	pc := p.Policy
	d.emit(provider.Event{Kind: provider.Acquire, ReqID: p.ReqID, Policy: &pc})
}
