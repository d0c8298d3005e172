// Package enginetest has in-memory doubles for the engine's providers: a
// PSK authenticator (RFC 7296 §2.15), a key store, a dataplane that records
// installs, and a fake clock.
package enginetest

import (
	"context"
	"crypto"
	"crypto/hmac"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/core/transform"
)

// Clock is a fake clock that moves only when told.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts at a fixed instant.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

// Now implements engine.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// PSK authenticates with a pre-shared key per RFC 7296 §2.15:
// AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>).
type PSK struct {
	Secret []byte
	// MakeCalls and VerifyCalls count uses.
	MakeCalls, VerifyCalls int
}

func (p *PSK) auth(req *provider.AuthRequest) []byte {
	s := transform.Suite{PRF: req.PRF}
	return s.ComputePRF(s.ComputePRF(p.Secret, []byte("Key Pad for IKEv2")), req.SignedOctets)
}

// Make implements provider.Authenticator.
func (p *PSK) Make(_ context.Context, req *provider.AuthRequest) (*provider.AuthResult, error) {
	p.MakeCalls++
	return &provider.AuthResult{Method: 2, Data: p.auth(req)}, nil
}

// Verify implements provider.Authenticator.
func (p *PSK) Verify(_ context.Context, req *provider.AuthRequest) error {
	p.VerifyCalls++
	if req.Method != 2 {
		return fmt.Errorf("peer used auth method %d, expected shared key (2)", req.Method)
	}
	if !hmac.Equal(req.Data, p.auth(req)) {
		return errors.New("pre-shared key mismatch (the peer's AUTH does not match ours)")
	}
	return nil
}

// KeyStore serves secrets from a map.
type KeyStore map[string][]byte

// Secret implements provider.KeyStore.
func (k KeyStore) Secret(_ context.Context, ref string) ([]byte, error) {
	s, ok := k[ref]
	if !ok {
		return nil, fmt.Errorf("no secret %q", ref)
	}
	return slices.Clone(s), nil
}

// Signer implements provider.KeyStore.
func (k KeyStore) Signer(context.Context, string) (crypto.Signer, error) {
	return nil, errors.New("no signers in the test key store")
}

// Dataplane records SAs and policies in memory.
type Dataplane struct {
	mu       sync.Mutex
	next     uint32
	SAs      map[provider.SAKey]*provider.ChildSA
	Policies []*provider.Policy
	// Log lists operations in order ("alloc", "sa-in", "sa-out", "policy", "del-sa", "del-policy").
	Log []string
	// FailInstall makes InstallSA fail.
	FailInstall error
	events      chan provider.Event
	counts      map[provider.SAKey]provider.Counters
}

// NewDataplane returns an empty dataplane; SPIs start at base.
func NewDataplane(base uint32) *Dataplane {
	return &Dataplane{next: base, SAs: map[provider.SAKey]*provider.ChildSA{}, events: make(chan provider.Event, 16)}
}

// AllocateSPI implements provider.Dataplane.
func (d *Dataplane) AllocateSPI(_ context.Context, src, dst netip.Addr) (uint32, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.next++
	d.Log = append(d.Log, "alloc")
	return d.next, nil
}

// InstallSA implements provider.Dataplane; it keeps its own key copies.
func (d *Dataplane) InstallSA(_ context.Context, sa *provider.ChildSA) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.FailInstall != nil {
		return d.FailInstall
	}
	c := *sa
	c.EncKey, c.IntegKey = slices.Clone(sa.EncKey), slices.Clone(sa.IntegKey)
	d.SAs[provider.SAKey{Dst: sa.Dst, SPI: sa.SPI}] = &c
	if sa.Inbound {
		d.Log = append(d.Log, "sa-in")
	} else {
		d.Log = append(d.Log, "sa-out")
	}
	return nil
}

// DeleteSA implements provider.Dataplane.
func (d *Dataplane) DeleteSA(_ context.Context, key provider.SAKey) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.Log = append(d.Log, "del-sa")
	if _, ok := d.SAs[key]; !ok {
		return fmt.Errorf("no SA %v", key)
	}
	delete(d.SAs, key)
	return nil
}

// InstallPolicy implements provider.Dataplane.
func (d *Dataplane) InstallPolicy(_ context.Context, p *provider.Policy) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := *p
	d.Policies = append(d.Policies, &c)
	d.Log = append(d.Log, "policy")
	return nil
}

// DeletePolicy implements provider.Dataplane.
func (d *Dataplane) DeletePolicy(_ context.Context, p *provider.Policy) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.Log = append(d.Log, "del-policy")
	for i, q := range d.Policies {
		if *q == *p {
			d.Policies = slices.Delete(d.Policies, i, i+1)
			return nil
		}
	}
	return errors.New("no such policy")
}

// SetCounters sets what Counters reports for key.
func (d *Dataplane) SetCounters(key provider.SAKey, c provider.Counters) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.counts == nil {
		d.counts = map[provider.SAKey]provider.Counters{}
	}
	d.counts[key] = c
}

// Counters implements provider.Dataplane.
func (d *Dataplane) Counters(_ context.Context, keys []provider.SAKey) ([]provider.Counters, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]provider.Counters, len(keys))
	for i, k := range keys {
		out[i] = d.counts[k]
	}
	return out, nil
}

// Events implements provider.Dataplane.
func (d *Dataplane) Events(context.Context) (<-chan provider.Event, error) { return d.events, nil }

// Inbound returns the installed inbound SAs.
func (d *Dataplane) Inbound() []*provider.ChildSA { return d.filter(true) }

// Outbound returns the installed outbound SAs.
func (d *Dataplane) Outbound() []*provider.ChildSA { return d.filter(false) }

func (d *Dataplane) filter(in bool) []*provider.ChildSA {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*provider.ChildSA
	for _, s := range d.SAs {
		if s.Inbound == in {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b *provider.ChildSA) int { return int(a.SPI) - int(b.SPI) })
	return out
}

// PolicyCount returns the number of installed policies.
func (d *Dataplane) PolicyCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.Policies)
}

// CountingDataplane allocates SPIs and counts installs without keeping
// anything, for benchmarks that measure the engine's own memory.
type CountingDataplane struct {
	next                    uint32
	Installed, Policies     int
	DeletedSAs, DeletedPols int
}

// AllocateSPI implements provider.Dataplane.
func (d *CountingDataplane) AllocateSPI(context.Context, netip.Addr, netip.Addr) (uint32, error) {
	d.next++
	return d.next, nil
}

// InstallSA implements provider.Dataplane.
func (d *CountingDataplane) InstallSA(context.Context, *provider.ChildSA) error {
	d.Installed++
	return nil
}

// DeleteSA implements provider.Dataplane.
func (d *CountingDataplane) DeleteSA(context.Context, provider.SAKey) error {
	d.DeletedSAs++
	return nil
}

// InstallPolicy implements provider.Dataplane.
func (d *CountingDataplane) InstallPolicy(context.Context, *provider.Policy) error {
	d.Policies++
	return nil
}

// DeletePolicy implements provider.Dataplane.
func (d *CountingDataplane) DeletePolicy(context.Context, *provider.Policy) error {
	d.DeletedPols++
	return nil
}

// Counters implements provider.Dataplane.
func (d *CountingDataplane) Counters(_ context.Context, keys []provider.SAKey) ([]provider.Counters, error) {
	return make([]provider.Counters, len(keys)), nil
}

// Events implements provider.Dataplane.
func (d *CountingDataplane) Events(context.Context) (<-chan provider.Event, error) {
	return make(chan provider.Event), nil
}
