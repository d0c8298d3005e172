package dataplane

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	"github.com/veil-ipsec/veil/sdk/base"
)

// PolicyKey identifies a policy the way a kernel does: direction,
// selectors, mark and interface ID.
type PolicyKey struct {
	Dir           Direction
	Local, Remote TrafficSelector
	Mark, IfID    uint32
}

// KeyOf returns p's PolicyKey.
func KeyOf(p *Policy) PolicyKey {
	return PolicyKey{Dir: p.Dir, Local: p.Local, Remote: p.Remote, Mark: p.Mark, IfID: p.IfID}
}

// Mock is an in-memory Dataplane: it records SAs and policies, allocates
// SPIs from a counter and delivers events passed to Emit. OnChange, when
// set, is called after every change (test plugins use it to expose their
// state). For tests.
type Mock struct {
	InfoValue   base.Info
	ConfigureFn func(ctx context.Context, configJSON []byte) error
	OnChange    func(m *Mock)

	mu       sync.Mutex
	nextSPI  uint32
	reserved map[uint32]bool // allocated, not installed
	sas      map[SAKey]ChildSA
	policies map[PolicyKey]Policy
	subs     map[chan Event]struct{}
}

var _ Dataplane = (*Mock)(nil)

func (m *Mock) Info() base.Info {
	if m.InfoValue == (base.Info{}) {
		return base.Info{Name: "mock", Kind: base.KindDataplane, Version: "0"}
	}
	return m.InfoValue
}

func (m *Mock) ConfigSchema() base.Schema { return base.Schema{} }

func (m *Mock) Configure(ctx context.Context, configJSON []byte) error {
	if m.ConfigureFn != nil {
		return m.ConfigureFn(ctx, configJSON)
	}
	return nil
}

func (m *Mock) Health(context.Context) error { return nil }

func (m *Mock) changed() {
	if m.OnChange != nil {
		m.OnChange(m)
	}
}

func (m *Mock) AllocateSPI(_ context.Context, _, _ netip.Addr) (uint32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.nextSPI < 0x1000 {
		m.nextSPI = 0x1000
	}
	m.nextSPI++
	if m.reserved == nil {
		m.reserved = make(map[uint32]bool)
	}
	m.reserved[m.nextSPI] = true
	return m.nextSPI, nil
}

func (m *Mock) InstallSA(_ context.Context, sa *ChildSA) error {
	if sa.SPI == 0 || !sa.Dst.IsValid() {
		return fmt.Errorf("SA needs an SPI and a destination")
	}
	m.mu.Lock()
	if m.sas == nil {
		m.sas = make(map[SAKey]ChildSA)
	}
	c := *sa
	c.EncKey = append([]byte(nil), sa.EncKey...)
	c.IntegKey = append([]byte(nil), sa.IntegKey...)
	m.sas[SAKey{Dst: sa.Dst, SPI: sa.SPI}] = c
	delete(m.reserved, sa.SPI)
	m.mu.Unlock()
	m.changed()
	return nil
}

func (m *Mock) DeleteSA(_ context.Context, key SAKey) error {
	m.mu.Lock()
	_, ok := m.sas[key]
	delete(m.sas, key)
	if !ok && m.reserved[key.SPI] {
		delete(m.reserved, key.SPI)
		m.mu.Unlock()
		return nil
	}
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("no SA %s/%#x", key.Dst, key.SPI)
	}
	m.changed()
	return nil
}

func (m *Mock) InstallPolicy(_ context.Context, p *Policy) error {
	m.mu.Lock()
	if m.policies == nil {
		m.policies = make(map[PolicyKey]Policy)
	}
	m.policies[KeyOf(p)] = *p
	m.mu.Unlock()
	m.changed()
	return nil
}

func (m *Mock) DeletePolicy(_ context.Context, p *Policy) error {
	m.mu.Lock()
	_, ok := m.policies[KeyOf(p)]
	delete(m.policies, KeyOf(p))
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("no such policy (req id %d)", p.ReqID)
	}
	m.changed()
	return nil
}

func (m *Mock) Counters(_ context.Context, keys []SAKey) ([]Counters, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Counters, len(keys))
	for i, k := range keys {
		if _, ok := m.sas[k]; !ok {
			return nil, fmt.Errorf("no SA %s/%#x", k.Dst, k.SPI)
		}
		out[i] = Counters{}
	}
	return out, nil
}

func (m *Mock) Events(ctx context.Context) (<-chan Event, error) {
	ch := make(chan Event, EventBuffer)
	m.mu.Lock()
	if m.subs == nil {
		m.subs = make(map[chan Event]struct{})
	}
	m.subs[ch] = struct{}{}
	m.mu.Unlock()
	go func() {
		<-ctx.Done()
		m.mu.Lock()
		delete(m.subs, ch)
		close(ch)
		m.mu.Unlock()
	}()
	return ch, nil
}

// Emit delivers e to every subscriber (dropping it for a full one).
func (m *Mock) Emit(e Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for ch := range m.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

// SAs returns the installed SAs.
func (m *Mock) SAs() map[SAKey]ChildSA {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[SAKey]ChildSA, len(m.sas))
	for k, v := range m.sas {
		out[k] = v
	}
	return out
}

// Policies returns the installed policies.
func (m *Mock) Policies() map[PolicyKey]Policy {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[PolicyKey]Policy, len(m.policies))
	for k, v := range m.policies {
		out[k] = v
	}
	return out
}
