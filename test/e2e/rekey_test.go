package e2e

import (
	"testing"
	"time"

	"github.com/veil-ipsec/veil/test/netns"
)

// Child and IKE SA rekeys through veilctl: new SPIs on both sides, pairs
// still matching, traffic flowing after each, the child surviving the IKE
// rekey.
func TestPSKRekey(t *testing.T) {
	p := newDirectPair(t)
	p.start(t)
	p.da.waitEstablished()
	p.db.waitEstablished()
	ai, _, aIn, _ := firstIKE(t, p.da)

	p.da.ctl("rekey", "lab/all")
	netns.WaitFor(t, "child rekeyed on both sides", 20*time.Second, func() bool {
		_, _, in, out := firstIKE(t, p.da)
		_, _, bin, bout := firstIKE(t, p.db)
		return in != aIn && in == bout && out == bin
	})
	ping(t, p.a, p.bAddr)

	_, _, childIn, _ := firstIKE(t, p.da)
	p.db.ctl("rekey", "lab") // from the responder this time
	netns.WaitFor(t, "IKE SA rekeyed on both sides", 20*time.Second, func() bool {
		i, r, _, _ := firstIKE(t, p.da)
		bi, br, _, _ := firstIKE(t, p.db)
		return i != ai && i == bi && r == br
	})
	if _, _, in, _ := firstIKE(t, p.da); in != childIn {
		t.Errorf("the child changed with the IKE rekey: %s -> %s", childIn, in)
	}
	ping(t, p.a, p.bAddr)
	p.db.ctl("terminate", "lab")
	netns.WaitFor(t, "SAs deleted on both sides", 20*time.Second, func() bool {
		return len(p.da.sas().IKESAs) == 0 && len(p.db.sas().IKESAs) == 0
	})
}
