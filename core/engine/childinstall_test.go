package engine

import (
	"context"
	"errors"
	"testing"

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
