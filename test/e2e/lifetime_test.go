package e2e

import (
	"testing"
	"time"

	"github.com/veil-ipsec/veil/test/netns"
)

// rekey_bytes through veild and the userspace dataplane: traffic past the
// soft byte limit makes the dataplane raise SoftExpire and the engine rekey
// the child, with no operator action; traffic flows on the new SA.
func TestSoftByteLimitRekeys(t *testing.T) {
	p := newDirectPair(t)
	p.ca.ChildExtra = `rekey_bytes = 40000
    life_bytes  = "100M"`
	p.start(t)
	p.da.waitEstablished()
	p.db.waitEstablished()
	_, _, oldIn, _ := firstIKE(t, p.da)
	// Well under the limit: no rekey.
	ping(t, p.a, p.bAddr)
	if _, _, in, _ := firstIKE(t, p.da); in != oldIn {
		t.Fatalf("rekeyed below the byte limit: %s -> %s", oldIn, in)
	}
	// About 100 kB each way, over the 40 kB limit.
	if out, err := p.a.Output("ping", "-c", "100", "-i", "0.01", "-s", "1000", "-W", "2", p.bAddr); err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	netns.WaitFor(t, "child rekeyed at its byte limit", 20*time.Second, func() bool {
		a, b := p.da.sas(), p.db.sas()
		if len(a.IKESAs) != 1 || len(b.IKESAs) != 1 || len(a.IKESAs[0].Children) != 1 || len(b.IKESAs[0].Children) != 1 {
			return false
		}
		ca, cb := a.IKESAs[0].Children[0], b.IKESAs[0].Children[0]
		return ca.SPIIn != oldIn && ca.SPIIn == cb.SPIOut && ca.SPIOut == cb.SPIIn
	})
	ping(t, p.a, p.bAddr)
	if !p.da.established() {
		t.Fatal("child gone after the rekey")
	}
}
