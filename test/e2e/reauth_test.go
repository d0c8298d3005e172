package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/test/netns"
)

// reauth_time makes the initiator replace the IKE SA with a freshly
// authenticated one (new IKE and child SPIs on both daemons) and traffic
// flows on the new SAs.
func TestReauthentication(t *testing.T) {
	p := newDirectPair(t)
	p.ca.Extra = `reauth_time = "8s"`
	p.start(t)
	p.da.waitEstablished()
	p.db.waitEstablished()
	ping(t, p.a, p.bAddr)
	spiI, _, in0, _ := firstIKE(t, p.da)

	netns.WaitFor(t, "reauthentication", 30*time.Second, func() bool {
		for _, d := range []*daemon{p.da, p.db} {
			l := d.sas()
			if len(l.IKESAs) != 1 || l.IKESAs[0].SPIi == spiI || l.IKESAs[0].State != "ESTABLISHED" || len(l.IKESAs[0].Children) != 1 {
				return false
			}
		}
		return true
	})
	if _, _, in, _ := firstIKE(t, p.da); in == in0 {
		t.Fatal("child SA kept its SPI across reauthentication")
	}
	ping(t, p.a, p.bAddr)
	if !strings.Contains(p.da.log.String(), "reauthenticating") {
		t.Fatal("no reauthentication in the initiator's log")
	}
}
