package engine

import (
	"context"

	"github.com/veil-ipsec/veil/core/ikesa"
	"github.com/veil-ipsec/veil/core/provider"
)

// watchDataplane feeds dataplane events into the engine until ctx ends.
func (e *Engine) watchDataplane(ctx context.Context) {
	ch, err := e.cfg.Dataplane.Events(ctx)
	if err != nil {
		e.cfg.Logger.Warn("dataplane events unavailable", "err", err)
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-ch:
			if !ok {
				return
			}
			e.HandleDataplaneEvent(ev)
		}
	}
}

// HandleDataplaneEvent acts on one dataplane event: rekey on soft expiry
// or sequence exhaustion, cleanup on hard expiry, initiate on Acquire.
func (e *Engine) HandleDataplaneEvent(ev provider.Event) {
	defer e.poke() // an SA initiated or rekeyed here has timers for Run
	e.mu.Lock()
	defer e.mu.Unlock()
	switch ev.Kind {
	case provider.SoftExpire, provider.HardExpire, provider.SeqExhausted:
		for _, sa := range e.sas {
			if sa.Dead() || sa.State != ikesa.StateEstablished {
				continue
			}
			if c := sa.FindChild(ev.SA); c != nil {
				sa.DataplaneEvent(ev.Kind, c)
				e.after(sa)
				return
			}
		}
		e.stats.Drop("dataplane-event-unknown-sa")
	case provider.AddressChange:
		if ev.AddrUp {
			return
		}
		for _, sa := range e.sas {
			if sa.Dead() || sa.Local.Addr() != ev.Addr || !sa.MobikeActive() || !sa.Initiator {
				continue
			}
			for _, ap := range e.cfg.Transport.LocalAddrs() {
				a := ap.Addr()
				if a != ev.Addr && !a.IsUnspecified() && a.Is4() == ev.Addr.Is4() && ap.Port() == sa.Local.Port() {
					if err := sa.UpdateAddress(a); err == nil {
						e.after(sa)
					}
					break
				}
			}
		}
	case provider.Acquire:
		if !e.acquire(ev.ReqID) {
			e.stats.Drop("acquire-unknown-reqid")
		}
	}
}
