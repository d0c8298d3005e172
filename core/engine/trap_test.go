package engine

import (
	"testing"
	"time"

	"github.com/veil-ipsec/veil/core/engine/enginetest"
	"github.com/veil-ipsec/veil/core/provider"
)

// trapPolicies returns the Trap policies installed in dp.
func trapPolicies(dp *enginetest.Dataplane) []*provider.Policy {
	var out []*provider.Policy
	for _, p := range dp.Policies {
		if p.Action == provider.Trap {
			out = append(out, p)
		}
	}
	return out
}

func TestAcquireInitiatesTrappedChild(t *testing.T) {
	p := newPair(t, func(a, b *Connection) { a.Children[0].StartAction = "trap" })
	traps := trapPolicies(p.a.dp)
	if len(traps) != 1 || traps[0].Dir != provider.Out || traps[0].Local.Start != addrA || traps[0].Remote.Start != addrB {
		t.Fatalf("trap policies %+v", traps)
	}
	if len(trapPolicies(p.b.dp)) != 0 {
		t.Fatal("B has no start_action trap but installed a trap")
	}
	// An Acquire for another ReqID is not ours.
	p.a.e.HandleDataplaneEvent(provider.Event{Kind: provider.Acquire, ReqID: traps[0].ReqID + 100})
	if p.flush() != 0 || p.a.e.Stats().Drops["acquire-unknown-reqid"] != 1 {
		t.Fatal("unknown acquire initiated or was not counted")
	}
	p.a.e.HandleDataplaneEvent(provider.Event{Kind: provider.Acquire, ReqID: traps[0].ReqID})
	// A second Acquire while the first is being set up starts nothing more.
	p.a.e.HandleDataplaneEvent(provider.Event{Kind: provider.Acquire, ReqID: traps[0].ReqID})
	p.flush()
	p.established(t, 1)
	if n := len(trapPolicies(p.a.dp)); n != 0 {
		t.Fatalf("%d trap policies left beside the child's own", n)
	}
	// The peer deletes the SA: the trap comes back for the next packet.
	if _, err := p.b.e.StartTerminate("conn"); err != nil {
		t.Fatal(err)
	}
	p.flush()
	traps = trapPolicies(p.a.dp)
	if len(p.a.e.Snapshot()) != 0 || len(traps) != 1 {
		t.Fatalf("after delete: %d SAs, traps %+v", len(p.a.e.Snapshot()), traps)
	}
	p.a.e.HandleDataplaneEvent(provider.Event{Kind: provider.Acquire, ReqID: traps[0].ReqID})
	p.flush()
	p.established(t, 1)
	// Removing the connection removes its trap.
	p.a.e.SetConnections(nil)
	p.flush()
	if p.a.dp.PolicyCount() != 0 {
		t.Fatalf("policies left after removing the connection: %d", p.a.dp.PolicyCount())
	}
}

// A trapped child whose peer refuses it keeps its trap and can try again.
func TestAcquireFailedKeepsTrap(t *testing.T) {
	p := newPair(t, func(a, b *Connection) {
		a.Children[0].StartAction = "trap"
		b.Children[0].ESPProposals = mustProposals(t, 0, "aes256gcm16")
	})
	traps := trapPolicies(p.a.dp)
	p.a.e.HandleDataplaneEvent(provider.Event{Kind: provider.Acquire, ReqID: traps[0].ReqID})
	p.flush()
	if got := trapPolicies(p.a.dp); len(got) != 1 || got[0].ReqID != traps[0].ReqID {
		t.Fatalf("trap after a refused child: %+v", got)
	}
	if st := p.a.e.Status("conn"); st.LastFailure == "" {
		t.Fatal("no failure reported")
	}
}

func TestDPDTrap(t *testing.T) {
	p := newPair(t, func(a, b *Connection) { a.DPDDelay, a.DPDAction = 30*time.Second, "trap" })
	p.up()
	if len(trapPolicies(p.a.dp)) != 0 {
		t.Fatal("trap installed before DPD declared the peer dead")
	}
	// B loses its state: A's checks go unanswered.
	p.b.e.mu.Lock()
	for _, sa := range p.b.e.sas {
		sa.ForceDestroy("reboot")
		p.b.e.after(sa)
	}
	p.b.e.mu.Unlock()
	for i := 0; i < 10 && len(p.a.e.Snapshot()) != 0; i++ {
		p.advance(30 * time.Second)
		p.flush()
	}
	if s := p.a.e.Snapshot(); len(s) != 0 {
		t.Fatalf("dead peer's SA still there: %+v", s)
	}
	// Unlike restart, nothing is initiated until traffic hits the trap.
	if len(p.a.dp.SAs) != 0 {
		t.Fatalf("SAs left: %d", len(p.a.dp.SAs))
	}
	traps := trapPolicies(p.a.dp)
	if len(traps) != 1 || p.a.dp.PolicyCount() != 1 {
		t.Fatalf("want only the trap policy, have %d policies, traps %+v", p.a.dp.PolicyCount(), traps)
	}
	p.a.e.HandleDataplaneEvent(provider.Event{Kind: provider.Acquire, ReqID: traps[0].ReqID})
	p.flush()
	p.established(t, 1)
	if len(trapPolicies(p.a.dp)) != 0 {
		t.Fatal("trap left beside the child")
	}
}

// A child's dpd_action overrides the connection's.
func TestDPDActionPerChild(t *testing.T) {
	for _, tc := range []struct {
		conn, child string
		trap        bool
		restarted   bool
	}{
		{"clear", "trap", true, false},
		{"trap", "clear", false, false},
		{"clear", "restart", false, true},
		{"restart", "", false, true},
	} {
		p := newPair(t, func(a, b *Connection) {
			a.DPDDelay, a.DPDAction, a.Children[0].DPDAction = 30*time.Second, tc.conn, tc.child
		})
		p.up()
		first := p.a.e.Snapshot()[0].SPIi
		p.b.e.mu.Lock()
		for _, sa := range p.b.e.sas {
			sa.ForceDestroy("reboot")
			p.b.e.after(sa)
		}
		p.b.e.mu.Unlock()
		for i := 0; i < 10; i++ {
			p.advance(30 * time.Second)
			p.flush()
		}
		if got := len(trapPolicies(p.a.dp)) == 1; got != tc.trap {
			t.Errorf("conn %q child %q: trap installed %v", tc.conn, tc.child, got)
		}
		s := p.a.e.Snapshot()
		if restarted := len(s) == 1 && s[0].SPIi != first && s[0].State == "ESTABLISHED"; restarted != tc.restarted {
			t.Errorf("conn %q child %q: restarted %v (%+v)", tc.conn, tc.child, restarted, s)
		}
	}
}
