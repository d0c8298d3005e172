package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/core/engine/enginetest"
	"github.com/veil-ipsec/veil/core/provider"
)

// childInstaller is a dataplane with provider.ChildInstaller (what a
// plugin of dataplane protocol version 2 looks like to the engine).
type childInstaller struct {
	*enginetest.Dataplane
	calls [][2]int // SAs and policies per InstallChild
	fail  bool
}

func (d *childInstaller) InstallChild(ctx context.Context, sas []*provider.ChildSA, policies []*provider.Policy) error {
	d.calls = append(d.calls, [2]int{len(sas), len(policies)})
	if d.fail {
		return errors.New("refused by the test dataplane")
	}
	for _, sa := range sas {
		if err := d.InstallSA(ctx, sa); err != nil {
			return err
		}
	}
	for _, p := range policies {
		if err := d.InstallPolicy(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

func withChildInstaller(c *Config) {
	c.Dataplane = &childInstaller{Dataplane: c.Dataplane.(*enginetest.Dataplane)}
}

// With a ChildInstaller the engine installs a child in one call: both SAs
// and the policies; a rekey brings new SAs and keeps the policies; a
// refused install leaves no child and is not deleted later.
func TestInstallChildInOneCall(t *testing.T) {
	p := newPairCfg(t, nil, withChildInstaller)
	a, b := p.a.e.cfg.Dataplane.(*childInstaller), p.b.e.cfg.Dataplane.(*childInstaller)
	p.up()
	checkKeys(t, p.a.dp, p.b.dp, 1)
	for _, d := range []*childInstaller{a, b} {
		if len(d.calls) != 1 || d.calls[0] != [2]int{2, 2} {
			t.Fatalf("InstallChild calls %v, want one with 2 SAs and 2 policies (transport: out, in)", d.calls)
		}
		if d.PolicyCount() != 2 {
			t.Fatalf("%d policies installed", d.PolicyCount())
		}
	}
	p.wait(p.a.e.StartRekey("conn", "c1"))
	checkKeys(t, p.a.dp, p.b.dp, 1)
	if len(a.calls) != 2 || a.calls[1] != [2]int{2, 0} || a.PolicyCount() != 2 {
		t.Fatalf("after a rekey: calls %v, %d policies; want new SAs and the old policies kept", a.calls, a.PolicyCount())
	}

	q := newPairCfg(t, nil, withChildInstaller)
	q.b.e.cfg.Dataplane.(*childInstaller).fail = true
	ch := q.a.e.StartInitiate("conn", "")
	q.flush()
	if err, done := result(ch); !done || err == nil {
		t.Fatalf("initiate with a refused install: done %v, err %v", done, err)
	}
	if n := len(q.b.dp.Inbound()) + len(q.b.dp.Outbound()) + q.b.dp.PolicyCount(); n != 0 {
		t.Fatalf("the responder's dataplane has %d SAs and policies after a refused install", n)
	}
}

// gatedInstaller holds InstallChild until its gate opens.
type gatedInstaller struct {
	*childInstaller
	entered, gate chan struct{}
}

func (g *gatedInstaller) InstallChild(ctx context.Context, sas []*provider.ChildSA, policies []*provider.Policy) error {
	g.entered <- struct{}{}
	<-g.gate
	return g.childInstaller.InstallChild(ctx, sas, policies)
}

// The responder installs the child of IKE_AUTH without the engine lock (it
// is a plugin round trip): the engine answers API calls meanwhile, and the
// IKE_AUTH response leaves only once the install is done.
func TestInstallChildRunsOffTheLock(t *testing.T) {
	p := newPairCfg(t, nil, withChildInstaller)
	gated := &gatedInstaller{childInstaller: p.b.e.cfg.Dataplane.(*childInstaller), entered: make(chan struct{}, 1), gate: make(chan struct{})}
	p.b.e.cfg.Dataplane, p.b.e.env.Dataplane = gated, gated
	go func() {
		<-gated.entered
		snap := make(chan int, 1)
		go func() { snap <- len(p.b.e.Snapshot()) }()
		select {
		case n := <-snap:
			if n != 1 {
				t.Errorf("Snapshot during the install: %d SAs, want 1", n)
			}
		case <-time.After(10 * time.Second):
			t.Error("the engine did not answer Snapshot while the responder installed a child: the install holds its lock")
		}
		if got := len(p.a.dp.Inbound()); got != 0 {
			t.Errorf("the initiator installed %d SAs before the responder's install finished", got)
		}
		close(gated.gate)
	}()
	p.up()
	p.established(t, 1)
	checkKeys(t, p.a.dp, p.b.dp, 1)
}
