package pluginhost

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/dataplane"
)

// Dataplane adapts a dataplane plugin to provider.Dataplane. It remembers
// every SA and policy installed and not deleted; after the plugin restarts
// it re-installs them into the new process (before the plugin takes calls
// again) and then runs the engine's OnRestart hooks, so traffic resumes.
type Dataplane struct {
	inst *instance

	spis *spiPool // SPIs allocated ahead (protocol version 2)

	mu       sync.Mutex
	sas      map[provider.SAKey]*dataplane.ChildSA
	policies map[dataplane.PolicyKey]*dataplane.Policy
	hooks    []func(ctx context.Context)
	// handed are SPIs given out and not installed yet, and when: a plugin
	// that hands out an SPI twice, or one an installed SA has, would have
	// the second SA replace the first.
	handed      map[provider.SAKey]time.Time
	handedSwept time.Time
}

var (
	_ provider.Dataplane      = (*Dataplane)(nil)
	_ provider.ChildInstaller = (*Dataplane)(nil)
)

func newDataplane(inst *instance) *Dataplane {
	d := &Dataplane{inst: inst, sas: make(map[provider.SAKey]*dataplane.ChildSA),
		policies: make(map[dataplane.PolicyKey]*dataplane.Policy), handed: make(map[provider.SAKey]time.Time)}
	d.spis = newSPIPool(d)
	return d
}

// OnRestart registers f to run after the plugin restarted and the host
// re-installed what it recorded (the engine's reconcile hook).
func (d *Dataplane) OnRestart(f func(ctx context.Context)) {
	d.mu.Lock()
	d.hooks = append(d.hooks, f)
	d.mu.Unlock()
}

func (d *Dataplane) runHooks() {
	d.mu.Lock()
	hooks := append([]func(context.Context){}, d.hooks...)
	d.mu.Unlock()
	for _, f := range hooks {
		ctx, cancel := context.WithTimeout(context.Background(), d.inst.h.opts.CallTimeout)
		f(ctx)
		cancel()
	}
}

// restore re-installs the recorded SAs, then the policies, into a freshly
// started plugin.
func (d *Dataplane) restore(ctx context.Context, c *dataplane.Client) error {
	d.mu.Lock()
	sas := make([]*dataplane.ChildSA, 0, len(d.sas))
	for _, sa := range d.sas {
		sas = append(sas, sa)
	}
	pols := make([]*dataplane.Policy, 0, len(d.policies))
	for _, p := range d.policies {
		pols = append(pols, p)
	}
	d.mu.Unlock()
	for _, sa := range sas {
		if err := c.InstallSA(ctx, sa); err != nil {
			return fmt.Errorf("dataplane plugin %q: re-installing SA %s/%#x after restart: %w", d.inst.name, sa.Dst, sa.SPI, plainError(err))
		}
	}
	for _, p := range pols {
		if err := c.InstallPolicy(ctx, p); err != nil {
			return fmt.Errorf("dataplane plugin %q: re-installing policy (req id %d) after restart: %w", d.inst.name, p.ReqID, plainError(err))
		}
	}
	if len(sas)+len(pols) > 0 {
		d.inst.log.Info("re-installed SAs and policies after restart", "sas", len(sas), "policies", len(pols))
	}
	return nil
}

// forgetAll drops the record and zeroes the keys it held (host closing).
func (d *Dataplane) forgetAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, sa := range d.sas {
		zeroKeys(sa)
		delete(d.sas, k)
	}
	clear(d.policies)
}

// Installed returns how many SAs and policies the host has recorded.
func (d *Dataplane) Installed() (sas, policies int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.sas), len(d.policies)
}

func (d *Dataplane) client() (*dataplane.Client, error) {
	kc, err := d.inst.current()
	if err != nil {
		return nil, err
	}
	return kc.(*dataplane.Client), nil
}

// call runs f on the current client with the host's call timeout.
func (d *Dataplane) call(ctx context.Context, op string, f func(ctx context.Context, c *dataplane.Client) error) error {
	start := time.Now()
	c, err := d.client()
	if err != nil {
		return err
	}
	ctx, cancel := d.inst.h.callContext(ctx)
	defer cancel()
	err = f(ctx, c)
	d.inst.h.observe(base.KindDataplane, d.inst.name, op, start, err)
	if err != nil {
		return callError(base.KindDataplane, d.inst.name, op, start, plainError(err))
	}
	return nil
}

// AllocateSPI hands out an SPI allocated ahead when the plugin speaks
// protocol version 2 (see spiPool), else asks the plugin now.
func (d *Dataplane) AllocateSPI(ctx context.Context, src, dst netip.Addr) (uint32, error) {
	if c, err := d.client(); err == nil && c.Version() >= 2 {
		if spi := d.spis.take(c, src, dst); spi != 0 {
			return spi, d.claimSPI(dst, spi)
		}
	}
	var spi uint32
	err := d.call(ctx, "allocate SPI", func(ctx context.Context, c *dataplane.Client) (err error) {
		spi, err = c.AllocateSPI(ctx, src, dst)
		return err
	})
	if err != nil {
		return 0, err
	}
	return spi, d.claimSPI(dst, spi)
}

// claimSPI records an SPI handed out for SAs to dst, refusing one the
// plugin handed out already (within SPIHoldTime, or to an installed SA).
func (d *Dataplane) claimSPI(dst netip.Addr, spi uint32) error {
	now := time.Now()
	k := provider.SAKey{Dst: dst, SPI: spi}
	d.mu.Lock()
	defer d.mu.Unlock()
	if now.Sub(d.handedSwept) > dataplane.SPIHoldTime {
		for k, at := range d.handed {
			if now.Sub(at) > dataplane.SPIHoldTime {
				delete(d.handed, k)
			}
		}
		d.handedSwept = now
	}
	_, installed := d.sas[k]
	if at, ok := d.handed[k]; installed || ok && now.Sub(at) <= dataplane.SPIHoldTime {
		return fmt.Errorf("%w: dataplane plugin %q handed out SPI %08x for %s twice", dataplane.ErrInvalidReply, d.inst.name, spi, dst)
	}
	d.handed[k] = now
	return nil
}

func (d *Dataplane) InstallSA(ctx context.Context, sa *provider.ChildSA) error {
	s := childSA(sa)
	err := d.call(ctx, "install SA", func(ctx context.Context, c *dataplane.Client) error { return c.InstallSA(ctx, s) })
	if err != nil {
		return err
	}
	d.mu.Lock()
	if old := d.sas[provider.SAKey{Dst: sa.Dst, SPI: sa.SPI}]; old != nil && old != s {
		zeroKeys(old)
	}
	d.sas[provider.SAKey{Dst: sa.Dst, SPI: sa.SPI}] = s
	delete(d.handed, provider.SAKey{Dst: sa.Dst, SPI: sa.SPI})
	d.mu.Unlock()
	return nil
}

// InstallChild installs a Child SA's SAs and policies in one call (one
// streamed round trip with a protocol version 2 plugin) and records them
// all once the plugin has them.
func (d *Dataplane) InstallChild(ctx context.Context, sas []*provider.ChildSA, policies []*provider.Policy) error {
	dsas := make([]*dataplane.ChildSA, len(sas))
	for i, sa := range sas {
		dsas[i] = childSA(sa)
	}
	dpols := make([]*dataplane.Policy, len(policies))
	for i, p := range policies {
		dpols[i] = policy(p)
	}
	err := d.call(ctx, "install child", func(ctx context.Context, c *dataplane.Client) error {
		return c.InstallChild(ctx, dsas, dpols)
	})
	if err != nil {
		for _, sa := range dsas {
			zeroKeys(sa)
		}
		return err
	}
	d.mu.Lock()
	for _, s := range dsas {
		k := provider.SAKey{Dst: s.Dst, SPI: s.SPI}
		if old := d.sas[k]; old != nil && old != s {
			zeroKeys(old)
		}
		d.sas[k] = s
		delete(d.handed, k)
	}
	for _, p := range dpols {
		d.policies[dataplane.KeyOf(p)] = p
	}
	d.mu.Unlock()
	return nil
}

// DeleteSA forgets the SA first: even if the plugin is down now, a
// restarted plugin must not get it back.
func (d *Dataplane) DeleteSA(ctx context.Context, key provider.SAKey) error {
	d.mu.Lock()
	if old := d.sas[key]; old != nil {
		zeroKeys(old)
	}
	delete(d.sas, key)
	d.mu.Unlock()
	return d.call(ctx, "delete SA", func(ctx context.Context, c *dataplane.Client) error {
		return c.DeleteSA(ctx, dataplane.SAKey{Dst: key.Dst, SPI: key.SPI})
	})
}

func (d *Dataplane) InstallPolicy(ctx context.Context, p *provider.Policy) error {
	dp := policy(p)
	err := d.call(ctx, "install policy", func(ctx context.Context, c *dataplane.Client) error { return c.InstallPolicy(ctx, dp) })
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.policies[dataplane.KeyOf(dp)] = dp
	d.mu.Unlock()
	return nil
}

func (d *Dataplane) DeletePolicy(ctx context.Context, p *provider.Policy) error {
	dp := policy(p)
	d.mu.Lock()
	delete(d.policies, dataplane.KeyOf(dp))
	d.mu.Unlock()
	return d.call(ctx, "delete policy", func(ctx context.Context, c *dataplane.Client) error { return c.DeletePolicy(ctx, dp) })
}

func (d *Dataplane) Counters(ctx context.Context, keys []provider.SAKey) ([]provider.Counters, error) {
	dk := make([]dataplane.SAKey, len(keys))
	for i, k := range keys {
		dk[i] = dataplane.SAKey{Dst: k.Dst, SPI: k.SPI}
	}
	var cs []dataplane.Counters
	err := d.call(ctx, "counters", func(ctx context.Context, c *dataplane.Client) (err error) {
		cs, err = c.Counters(ctx, dk)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]provider.Counters, len(cs))
	for i, c := range cs {
		out[i] = provider.Counters{Bytes: c.Bytes, Packets: c.Packets, LastUse: c.LastUse, ReplayDrops: c.ReplayDrops, AuthFailures: c.AuthFailures}
	}
	return out, nil
}

// Events delivers the plugin's events until ctx ends, across restarts:
// when the plugin goes away the subscription is renewed once it is back.
func (d *Dataplane) Events(ctx context.Context) (<-chan provider.Event, error) {
	out := make(chan provider.Event, dataplane.EventBuffer)
	c, err := d.client()
	if err != nil {
		return nil, err
	}
	first, err := c.Events(ctx)
	if err != nil {
		return nil, callError(base.KindDataplane, d.inst.name, "events", time.Now(), plainError(err))
	}
	go func() {
		defer close(out)
		ch := first
		for {
			for e := range ch {
				select {
				case out <- event(e):
				case <-ctx.Done():
					return
				}
			}
			for {
				if ctx.Err() != nil {
					return
				}
				// While the plugin is down, wait for it to come back; if it
				// looks up but will not subscribe (it is dying and the
				// supervisor has not noticed yet), retry after a pause.
				var up <-chan struct{}
				c, err := d.client()
				if err != nil {
					up = d.inst.waitUp()
				} else if ch, err = c.Events(ctx); err == nil {
					break
				}
				select {
				case <-up:
				case <-time.After(d.inst.h.opts.MinBackoff):
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

func zeroKeys(sa *dataplane.ChildSA) {
	clear(sa.EncKey)
	clear(sa.IntegKey)
}

func ts(t provider.TrafficSelector) dataplane.TrafficSelector {
	return dataplane.TrafficSelector{Start: t.Start, End: t.End, Protocol: t.Protocol, StartPort: t.StartPort, EndPort: t.EndPort}
}

func tsList(l []provider.TrafficSelector) []dataplane.TrafficSelector {
	out := make([]dataplane.TrafficSelector, len(l))
	for i, t := range l {
		out[i] = ts(t)
	}
	return out
}

func providerTS(t dataplane.TrafficSelector) provider.TrafficSelector {
	return provider.TrafficSelector{Start: t.Start, End: t.End, Protocol: t.Protocol, StartPort: t.StartPort, EndPort: t.EndPort}
}

// childSA copies sa (keys included: the record outlives the caller's copy,
// which the engine zeroes).
func childSA(sa *provider.ChildSA) *dataplane.ChildSA {
	out := &dataplane.ChildSA{
		ReqID: sa.ReqID, SPI: sa.SPI, Inbound: sa.Inbound, Src: sa.Src, Dst: sa.Dst, Mode: dataplane.Mode(sa.Mode),
		Encryption: sa.Encryption, EncKey: append([]byte(nil), sa.EncKey...), Integrity: sa.Integrity,
		IntegKey: append([]byte(nil), sa.IntegKey...), ESN: sa.ESN, ReplayWindow: sa.ReplayWindow,
		LocalTS: tsList(sa.LocalTS), RemoteTS: tsList(sa.RemoteTS),
		Soft: dataplane.Lifetime{Time: sa.Soft.Time, Bytes: sa.Soft.Bytes, Packets: sa.Soft.Packets},
		Hard: dataplane.Lifetime{Time: sa.Hard.Time, Bytes: sa.Hard.Bytes, Packets: sa.Hard.Packets},
		Mark: sa.Mark, IfID: sa.IfID, Offload: sa.Offload,
	}
	if sa.Encap != nil {
		out.Encap = &dataplane.UDPEncap{SrcPort: sa.Encap.SrcPort, DstPort: sa.Encap.DstPort}
	}
	return out
}

func policy(p *provider.Policy) *dataplane.Policy {
	return &dataplane.Policy{ReqID: p.ReqID, Dir: dataplane.Direction(p.Dir), Action: dataplane.PolicyAction(p.Action),
		Local: ts(p.Local), Remote: ts(p.Remote), Priority: p.Priority, Mode: dataplane.Mode(p.Mode),
		TmplSrc: p.TmplSrc, TmplDst: p.TmplDst, Mark: p.Mark, IfID: p.IfID}
}

func providerPolicy(p *dataplane.Policy) *provider.Policy {
	return &provider.Policy{ReqID: p.ReqID, Dir: provider.Direction(p.Dir), Action: provider.PolicyAction(p.Action),
		Local: providerTS(p.Local), Remote: providerTS(p.Remote), Priority: p.Priority, Mode: provider.Mode(p.Mode),
		TmplSrc: p.TmplSrc, TmplDst: p.TmplDst, Mark: p.Mark, IfID: p.IfID}
}

func event(e dataplane.Event) provider.Event {
	out := provider.Event{Kind: provider.EventKind(e.Kind), ReqID: e.ReqID, SA: provider.SAKey{Dst: e.SA.Dst, SPI: e.SA.SPI},
		Addr: e.Addr, AddrUp: e.AddrUp, NewPort: e.NewPort}
	if e.Policy != nil {
		out.Policy = providerPolicy(e.Policy)
	}
	return out
}
