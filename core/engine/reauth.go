package engine

import "github.com/veil-ipsec/veil/core/ikesa"

// Reauthentication is break-before-make: the old IKE SA is deleted first and
// the new one set up as soon as it is gone. Making the new one first would
// install a second set of policies for the same selectors on both ends (the
// responder cannot tell a reauthentication from a new client), and deleting
// the old set afterwards would remove what the new children rely on. The gap
// is one Delete exchange plus one handshake; rekeying (which is lossless)
// keeps keys fresh in between, reauthentication only rechecks credentials.

// reauthState is kept for an IKE SA being reauthenticated (retiring) and for
// its replacement (not retiring) until that is established.
type reauthState struct {
	children []string
	retiring bool
}

// startReauth deletes sa and remembers which children to bring back.
func (e *Engine) startReauth(sa *ikesa.SA) {
	if e.conns[sa.Conn.Name] != sa.Conn {
		return // the configuration changed: SetConnections handles the SA
	}
	var names []string
	for _, c := range sa.ChildSAs() {
		if c.State == ikesa.ChildInstalled && c.Config != nil {
			names = append(names, c.Config.Name)
		}
	}
	if e.reauth == nil {
		e.reauth = map[*ikesa.SA]reauthState{}
	}
	e.reauth[sa] = reauthState{children: names, retiring: true}
	sa.Delete("reauthentication")
}

// reauthGone runs for every dead IKE SA: a retiring one is replaced now; a
// replacement that died before it was established is left to the usual
// failure handling (keyingtries, DPD action).
func (e *Engine) reauthGone(old *ikesa.SA) {
	st, ok := e.reauth[old]
	if !ok {
		return
	}
	delete(e.reauth, old)
	if !st.retiring || e.conns[old.Conn.Name] != old.Conn {
		return
	}
	if s := old.Successor(); s != nil && !s.Dead() {
		// A rekey (the peer's) finished first: retire its result instead.
		e.reauth[s] = st
		s.Delete("reauthentication")
		e.after(s)
		return
	}
	names := st.children
	first := ""
	if len(names) > 0 {
		first = names[0]
	}
	n, err := e.initiateLocked(old.Conn, first, nil)
	if err != nil {
		e.setFailure(old.Conn.Name, "reauthentication: "+err.Error())
		return
	}
	if len(names) > 1 && !n.Dead() {
		e.reauth[n] = reauthState{children: names[1:]}
	}
}

// reauthUp adds the remaining children once the new IKE SA is established.
func (e *Engine) reauthUp(sa *ikesa.SA) {
	st, ok := e.reauth[sa]
	if !ok || st.retiring {
		return
	}
	delete(e.reauth, sa)
	defer e.after(sa)
	for _, name := range st.children {
		for i := range sa.Conn.Children {
			if sa.Conn.Children[i].Name == name {
				if err := sa.CreateChild(&sa.Conn.Children[i]); err != nil {
					e.cfg.Logger.Warn("child after reauthentication failed", "conn", sa.Conn.Name, "child", name, "err", err)
				}
			}
		}
	}
}
