package pluginhost

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/dataplane"
)

// The engine allocates an SPI while it holds its lock; a plugin round trip
// there stalls every other SA, and a stalled engine leaves cores idle,
// which the Go schedulers of both processes pay for in wakeups. So with a
// protocol version 2 plugin the host allocates SPIs ahead, per local
// address, off the engine's path, and hands them out from a pool. Version
// 2 plugins promise an SPI is good for any peer of that address for at
// least dataplane.SPIHoldTime; the pool uses it for at most spiMaxAge.
const (
	spiMaxAge   = dataplane.SPIHoldTime / 3
	spiMaxBatch = 64
)

type pooledSPI struct {
	spi uint32
	at  time.Time
}

// spiPool holds SPIs allocated ahead for one plugin process.
type spiPool struct {
	d   *Dataplane
	now func() time.Time

	mu      sync.Mutex
	from    *dataplane.Client // the process the SPIs came from
	free    map[netip.Addr][]pooledSPI
	filling map[netip.Addr]bool
	// takes counts what was handed out in this window and the last one:
	// the pool holds about a second's worth.
	takes, lastTakes int
	window           time.Time
}

func newSPIPool(d *Dataplane) *spiPool {
	return &spiPool{d: d, now: time.Now, free: map[netip.Addr][]pooledSPI{}, filling: map[netip.Addr]bool{}}
}

// take returns a pooled SPI for dst (0 if there is none) and starts a
// refill when the pool runs low. Stale SPIs are given back to the plugin.
func (p *spiPool) take(c *dataplane.Client, src, dst netip.Addr) uint32 {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.from != c {
		p.from, p.free = c, map[netip.Addr][]pooledSPI{}
	}
	if now.Sub(p.window) > spiMaxAge/2 {
		p.lastTakes, p.takes, p.window = p.takes, 0, now
	}
	p.takes++
	q := p.free[dst]
	var stale []uint32
	for len(q) > 0 && now.Sub(q[0].at) > spiMaxAge {
		stale = append(stale, q[0].spi)
		q = q[1:]
	}
	var spi uint32
	if len(q) > 0 {
		spi, q = q[0].spi, q[1:]
	}
	p.free[dst] = q
	if len(stale) > 0 {
		go p.release(c, dst, stale)
	}
	// About a second's worth of handshakes, from the rate over the last
	// spiMaxAge/2..spiMaxAge.
	want := min(spiMaxBatch, max(1, (p.takes+p.lastTakes)/int(spiMaxAge/time.Second)))
	if len(q) < (want+1)/2 && !p.filling[dst] {
		p.filling[dst] = true
		go p.fill(c, src, dst, want-len(q))
	}
	return spi
}

// fill allocates n SPIs in one stream message.
func (p *spiPool) fill(c *dataplane.Client, src, dst netip.Addr, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), p.d.inst.h.opts.CallTimeout)
	defer cancel()
	start := time.Now()
	spis, err := c.AllocateSPIs(ctx, src, dst, n)
	p.d.inst.h.observe(base.KindDataplane, p.d.inst.name, "allocate SPI ahead", start, err)
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.filling[dst] = false
	if p.from != c {
		return
	}
	for _, spi := range spis {
		p.free[dst] = append(p.free[dst], pooledSPI{spi: spi, at: now})
	}
}

// release gives unused SPIs back (a kernel dataplane frees its larval
// states); errors do not matter, the plugin expires them anyway.
func (p *spiPool) release(c *dataplane.Client, dst netip.Addr, spis []uint32) {
	ctx, cancel := context.WithTimeout(context.Background(), p.d.inst.h.opts.CallTimeout)
	defer cancel()
	for _, spi := range spis {
		start := time.Now()
		err := c.DeleteSA(ctx, dataplane.SAKey{Dst: dst, SPI: spi})
		p.d.inst.h.observe(base.KindDataplane, p.d.inst.name, "release SPI", start, err)
	}
}
