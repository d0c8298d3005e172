package engine

import (
	"context"

	"github.com/veil-ipsec/veil/core/ikesa"
	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/core/ts"
)

// A trap is the outbound Trap policies of one configured child without a
// Child SA: the dataplane raises Acquire for their traffic and the engine
// initiates the child. Traps exist for start_action = "trap" children and,
// after DPD declared the peer dead, for every child of a dpd_action = "trap"
// connection. A trap makes way (ReleaseTrap) when its child installs its own
// policies, because a dataplane holds one policy per selector, and comes
// back when the child's IKE SA is gone.
type trap struct {
	reqID      uint32
	policies   []*provider.Policy
	initiating bool
}

type trapKey struct{ conn, child string }

// wantsTrap says whether child ch of c is trapped while it has no SA.
func (e *Engine) wantsTrap(c *Connection, ch *Child) bool {
	return len(c.RemoteAddrs) > 0 && (ch.StartAction == "trap" || e.dpdTrapped[c.Name] && dpdAction(c, ch) == "trap")
}

// dpdAction is what a dead peer means for child ch: its own dpd_action,
// else the connection's.
func dpdAction(c *Connection, ch *Child) string {
	if ch.DPDAction != "" {
		return ch.DPDAction
	}
	return c.DPDAction
}

// dpdVerdict acts on DPD declaring c's peer dead, once its IKE SA (and
// with it every child) is gone: "trap" children get traps (installed as
// the SA is dropped), the first "restart" child is initiated again,
// "clear" ones stay down.
func (e *Engine) dpdVerdict(c *Connection) {
	restart, again := "", len(c.Children) == 0 && c.DPDAction == "restart"
	for i := range c.Children {
		switch dpdAction(c, &c.Children[i]) {
		case "trap":
			e.dpdTrapped[c.Name] = true
		case "restart":
			if !again {
				restart, again = c.Children[i].Name, true
			}
		}
	}
	if again {
		if _, err := e.initiateLocked(c, restart, nil); err != nil {
			e.setFailure(c.Name, err.Error())
		}
	}
}

// ensureTraps installs the missing traps of c's children that have no
// Child SA, and lets a failed initiation's trap raise Acquire again.
func (e *Engine) ensureTraps(c *Connection) {
	local, remote, err := e.addrs(c)
	if err != nil {
		return
	}
	for i := range c.Children {
		ch := &c.Children[i]
		k := trapKey{c.Name, ch.Name}
		if !e.wantsTrap(c, ch) || e.childActive(c.Name, ch.Name) {
			continue
		}
		if t := e.traps[k]; t != nil {
			t.initiating = false
			continue
		}
		t := &trap{reqID: e.env.NextReqID()}
		for _, l := range ch.LocalTS {
			for _, r := range ch.RemoteTS {
				p := &provider.Policy{ReqID: t.reqID, Dir: provider.Out, Action: provider.Trap,
					Local: ts.Resolve(l, local.Addr()), Remote: ts.Resolve(r, remote.Addr()), Mode: ch.Mode,
					TmplSrc: local.Addr(), TmplDst: remote.Addr()}
				if p.Local.Start.Is4() != p.Remote.Start.Is4() {
					continue
				}
				if err := e.cfg.Dataplane.InstallPolicy(context.Background(), p); err != nil {
					e.cfg.Logger.Warn("installing a trap policy failed", "conn", c.Name, "child", ch.Name, "err", err)
					continue
				}
				t.policies = append(t.policies, p)
			}
		}
		e.traps[k] = t
	}
}

// childActive says whether a live IKE SA of conn carries or negotiates child.
func (e *Engine) childActive(conn, child string) bool {
	for _, sa := range e.sasOf(conn) {
		for _, c := range sa.ChildSAs() {
			if c.Config.Name == child && c.State != ikesa.ChildFailed && c.State != ikesa.ChildDeleted {
				return true
			}
		}
	}
	return false
}

// removeTrap deletes one trap's policies.
func (e *Engine) removeTrap(k trapKey) {
	t := e.traps[k]
	if t == nil {
		return
	}
	for _, p := range t.policies {
		if err := e.cfg.Dataplane.DeletePolicy(context.Background(), p); err != nil {
			e.cfg.Logger.Debug("deleting a trap policy failed", "err", err)
		}
	}
	delete(e.traps, k)
}

// removeTraps deletes every trap of a connection.
func (e *Engine) removeTraps(conn string) {
	for k := range e.traps {
		if k.conn == conn {
			e.removeTrap(k)
		}
	}
}

// releaseTrap is ikesa.Env.ReleaseTrap: the child is about to install its
// own policies for the same selectors.
func (e *Engine) releaseTrap(c *Connection, child string) {
	e.removeTrap(trapKey{c.Name, child})
}

// acquire initiates the trapped child whose policy traffic hit.
func (e *Engine) acquire(reqID uint32) bool {
	for k, t := range e.traps {
		if t.reqID != reqID {
			continue
		}
		if t.initiating {
			return true
		}
		c := e.conns[k.conn]
		if c == nil {
			return true
		}
		t.initiating = true
		if _, err := e.initiateLocked(c, k.child, nil); err != nil {
			e.setFailure(c.Name, err.Error())
		}
		return true
	}
	return false
}
