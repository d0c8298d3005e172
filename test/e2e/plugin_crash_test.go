package e2e

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/test/netns"
)

// A dataplane plugin killed with SIGKILL is restarted by veild, the SAs stay
// up, and traffic flows again.
func TestDataplaneCrashKeepsSAs(t *testing.T) {
	p := newDirectPair(t)
	p.start(t)
	p.da.waitEstablished()
	ping(t, p.a, p.bAddr)
	spiI, _, in0, _ := firstIKE(t, p.da)

	out, err := exec.Command("pgrep", "-P", strconv.Itoa(p.da.cmd.Process.Pid), "-f", "plugin dataplane userspace").Output()
	pids := strings.Fields(string(out))
	if err != nil || len(pids) != 1 {
		t.Fatalf("dataplane plugin of a: %q %v", out, err)
	}
	exec.Command("kill", "-9", pids[0]).Run()

	netns.WaitFor(t, "dataplane plugin restarted", 20*time.Second, func() bool {
		return strings.Contains(p.da.ctl("plugins"), "running") && !strings.Contains(p.da.ctl("plugins"), "down")
	})
	if s := p.da.ctl("plugins"); !strings.Contains(s, "userspace") {
		t.Fatalf("plugins:\n%s", s)
	}
	// The IKE SA and child survived the crash...
	if i, _, in, _ := firstIKE(t, p.da); i != spiI {
		t.Fatalf("IKE SA replaced after a plugin crash: %s -> %s (child %s -> %s)", spiI, i, in0, in)
	}
	// ...the child is rekeyed, because the new plugin process starts its
	// sequence numbers and replay windows from zero...
	netns.WaitFor(t, "child rekeyed after the restart", 30*time.Second, func() bool {
		l := p.da.sas()
		return len(l.IKESAs) == 1 && len(l.IKESAs[0].Children) == 1 && l.IKESAs[0].Children[0].SPIIn != in0
	})
	// ...and traffic flows without loss on the new SAs.
	res, err := p.a.Output("ping", "-c", "10", "-i", "0.2", "-W", "1", p.bAddr)
	if err != nil || !strings.Contains(res, " 0% packet loss") {
		t.Fatalf("ping after the restart: %v\n%s", err, res)
	}
}
