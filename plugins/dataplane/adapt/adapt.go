// Package adapt serves a bundled dataplane written against core/provider
// (userspace, xfrm) as an sdk/dataplane plugin. The two sets of structs have
// the same fields; the SDK keeps its own so third parties never import core.
package adapt

import (
	"context"
	"net/netip"

	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/dataplane"
)

// Impl is a provider.Dataplane that also speaks the SDK's base protocol
// (info, config schema, configure, health).
type Impl interface {
	provider.Dataplane
	Info() base.Info
	ConfigSchema() base.Schema
	Configure(ctx context.Context, configJSON []byte) error
	Health(ctx context.Context) error
}

// Dataplane wraps impl as an sdk/dataplane.Dataplane.
func Dataplane(impl Impl) dataplane.Dataplane { return &plugin{impl} }

type plugin struct{ Impl }

func (p *plugin) AllocateSPI(ctx context.Context, src, dst netip.Addr) (uint32, error) {
	return p.Impl.AllocateSPI(ctx, src, dst)
}

func (p *plugin) InstallSA(ctx context.Context, sa *dataplane.ChildSA) error {
	return p.Impl.InstallSA(ctx, ChildSA(sa))
}

func (p *plugin) DeleteSA(ctx context.Context, k dataplane.SAKey) error {
	return p.Impl.DeleteSA(ctx, provider.SAKey(k))
}

func (p *plugin) InstallPolicy(ctx context.Context, pol *dataplane.Policy) error {
	return p.Impl.InstallPolicy(ctx, Policy(pol))
}

func (p *plugin) DeletePolicy(ctx context.Context, pol *dataplane.Policy) error {
	return p.Impl.DeletePolicy(ctx, Policy(pol))
}

func (p *plugin) Counters(ctx context.Context, keys []dataplane.SAKey) ([]dataplane.Counters, error) {
	pk := make([]provider.SAKey, len(keys))
	for i, k := range keys {
		pk[i] = provider.SAKey(k)
	}
	cs, err := p.Impl.Counters(ctx, pk)
	if err != nil {
		return nil, err
	}
	out := make([]dataplane.Counters, len(cs))
	for i, c := range cs {
		out[i] = dataplane.Counters(c)
	}
	return out, nil
}

func (p *plugin) Events(ctx context.Context) (<-chan dataplane.Event, error) {
	in, err := p.Impl.Events(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan dataplane.Event, 16)
	go func() {
		defer close(out)
		for e := range in {
			ev := dataplane.Event{Kind: dataplane.EventKind(e.Kind), ReqID: e.ReqID, SA: dataplane.SAKey(e.SA),
				Addr: e.Addr, AddrUp: e.AddrUp, NewPort: e.NewPort}
			if e.Policy != nil {
				ev.Policy = sdkPolicy(e.Policy)
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// ChildSA converts an SDK SA to the provider's.
func ChildSA(s *dataplane.ChildSA) *provider.ChildSA {
	c := &provider.ChildSA{ReqID: s.ReqID, SPI: s.SPI, Inbound: s.Inbound, Src: s.Src, Dst: s.Dst,
		Mode: provider.Mode(s.Mode), Encryption: s.Encryption, EncKey: s.EncKey, Integrity: s.Integrity,
		IntegKey: s.IntegKey, ESN: s.ESN, ReplayWindow: s.ReplayWindow,
		LocalTS: selectors(s.LocalTS), RemoteTS: selectors(s.RemoteTS),
		Soft: provider.Lifetime(s.Soft), Hard: provider.Lifetime(s.Hard), Mark: s.Mark, IfID: s.IfID, Offload: s.Offload}
	if s.Encap != nil {
		e := provider.UDPEncap(*s.Encap)
		c.Encap = &e
	}
	return c
}

// Policy converts an SDK policy to the provider's.
func Policy(p *dataplane.Policy) *provider.Policy {
	return &provider.Policy{ReqID: p.ReqID, Dir: provider.Direction(p.Dir), Action: provider.PolicyAction(p.Action),
		Local: provider.TrafficSelector(p.Local), Remote: provider.TrafficSelector(p.Remote), Priority: p.Priority,
		Mode: provider.Mode(p.Mode), TmplSrc: p.TmplSrc, TmplDst: p.TmplDst, Mark: p.Mark, IfID: p.IfID}
}

func sdkPolicy(p *provider.Policy) *dataplane.Policy {
	return &dataplane.Policy{ReqID: p.ReqID, Dir: dataplane.Direction(p.Dir), Action: dataplane.PolicyAction(p.Action),
		Local: dataplane.TrafficSelector(p.Local), Remote: dataplane.TrafficSelector(p.Remote), Priority: p.Priority,
		Mode: dataplane.Mode(p.Mode), TmplSrc: p.TmplSrc, TmplDst: p.TmplDst, Mark: p.Mark, IfID: p.IfID}
}

func selectors(ts []dataplane.TrafficSelector) []provider.TrafficSelector {
	out := make([]provider.TrafficSelector, len(ts))
	for i, t := range ts {
		out[i] = provider.TrafficSelector(t)
	}
	return out
}
