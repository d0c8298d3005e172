package engine

import "github.com/veil-ipsec/veil/core/ikesa"

// RekeyAllChildren starts a rekey of every installed Child SA of every
// established IKE SA and returns how many it started. The daemon calls it
// after the dataplane plugin restarted: the host re-installed the SAs, but a
// fresh process starts its outbound sequence numbers and inbound replay
// windows from zero, so the peer would drop our first packets as replays
// and old packets could be replayed to us. New SAs end both at once.
func (e *Engine) RekeyAllChildren() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, sa := range e.sas {
		if sa.State != ikesa.StateEstablished {
			continue
		}
		started := false
		for _, c := range sa.ChildSAs() {
			if c.State != ikesa.ChildInstalled || c.Config == nil {
				continue
			}
			if err := sa.RekeyChild(c.Config.Name); err != nil {
				e.cfg.Logger.Warn("rekey after dataplane restart failed", "conn", sa.Conn.Name, "child", c.Config.Name, "err", err)
				continue
			}
			started = true
			n++
		}
		if started {
			e.after(sa)
		}
	}
	if n > 0 {
		e.poke()
	}
	return n
}
