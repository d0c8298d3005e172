package e2e

import (
	"testing"
	"time"

	"github.com/veil-ipsec/veil/test/netns"
)

// start_action = "trap" through veild and the userspace dataplane: nothing
// is negotiated until traffic hits the trap; the dataplane's Acquire
// brings the child up and traffic flows on it.
func TestTrapOnTraffic(t *testing.T) {
	p := newDirectPair(t)
	p.ca.StartAction = "trap"
	p.start(t)
	time.Sleep(300 * time.Millisecond)
	if l := p.da.sas(); len(l.IKESAs) != 0 {
		t.Fatalf("negotiated before any traffic: %+v", l)
	}
	// The first packets hit the trap (and are dropped, not sent in the clear).
	p.a.Output("ping", "-c", "2", "-i", "0.2", "-W", "1", p.bAddr)
	p.da.waitEstablished()
	p.db.waitEstablished()
	ping(t, p.a, p.bAddr)
}

// dpd_action = "trap": when the peer dies the SAs go and traps take their
// place; once the peer is back, traffic brings the tunnel up again.
func TestDPDTrapThroughDaemons(t *testing.T) {
	p := newDirectPair(t)
	p.ca.Extra = `dpd_delay = "1s"
  dpd_timeout = "3s"
  dpd_action = "trap"`
	p.ca.Daemon = `retransmit_timeout = "200ms"
  retransmit_tries = 2`
	p.start(t)
	p.da.waitEstablished()
	p.db.waitEstablished()
	p.db.cmd.Process.Kill() // no DELETE: a dead peer
	<-p.db.done
	netns.WaitFor(t, "a's SAs cleared by DPD", 30*time.Second, func() bool { return len(p.da.sas().IKESAs) == 0 })
	p.db = startDaemon(t, p.b, p.cb)
	netns.WaitFor(t, "traffic re-establishes through the trap", 30*time.Second, func() bool {
		p.a.Output("ping", "-c", "1", "-W", "1", p.bAddr)
		return p.da.established()
	})
	ping(t, p.a, p.bAddr)
}
