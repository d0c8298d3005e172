package e2e

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/test/netns"
)

// Reload under traffic: an unchanged connection keeps its SAs (same SPIs,
// no lost packets), a broken file changes nothing, a removed connection's
// SAs are deleted on both sides.
func TestReloadUnderTraffic(t *testing.T) {
	p := newDirectPair(t)
	// A second connection that is never up; removing it must not disturb lab.
	p.ca.ExtraConns = `connection "spare" {
  local_addrs  = ["` + p.aAddr + `"]
  remote_addrs = ["10.70.0.99"]
  local  {
    auth = "psk"
    id   = "a.test"
    psk  = "file:` + p.ca.PSKFile + `"
  }
  remote {
    auth = "psk"
    id   = "spare.test"
    psk  = "file:` + p.ca.PSKFile + `"
  }
  child "c" {
    start_action = "none"
  }
}`
	p.start(t)
	p.da.waitEstablished()
	p.db.waitEstablished()
	i0, r0, in0, out0 := firstIKE(t, p.da)

	// Steady traffic through the SA for the whole test.
	ctx, stop := context.WithCancel(context.Background())
	pinger := p.a.Command(ctx, "ping", "-i", "0.05", "-W", "1", p.bAddr)
	pinger.Cancel = func() error { return pinger.Process.Signal(os.Interrupt) } // ping prints its summary
	var pingOut strings.Builder
	pinger.Stdout = &pingOut
	if err := pinger.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)

	// 1. A broken file is refused with diagnostics; nothing changes.
	good, _ := os.ReadFile(p.da.path)
	os.WriteFile(p.da.path, append(append([]byte{}, good...), []byte("connection \"broken\" {\n  mode = 7\n")...), 0o600)
	out, err := p.da.ctlErr("reload")
	if err == nil || !strings.Contains(out, p.da.path+":") {
		t.Errorf("broken config reload: err=%v\n%s", err, out)
	}

	// 2. Remove only the spare connection: lab's SAs stay as they are.
	cfg := p.ca
	cfg.ExtraConns = ""
	writeConfig(t, cfg, p.da.path)
	if out, err := p.da.ctlErr("reload"); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	time.Sleep(time.Second)
	if i, r, in, out := firstIKE(t, p.da); i != i0 || r != r0 || in != in0 || out != out0 {
		t.Errorf("unchanged connection's SAs changed: %s/%s %s/%s -> %s/%s %s/%s", i0, r0, in0, out0, i, r, in, out)
	}
	if st := p.da.ctl("status"); strings.Contains(st, "spare") {
		t.Errorf("removed connection still listed:\n%s", st)
	}

	// 3. SIGHUP with lab removed: its SAs are deleted on both sides.
	stop()
	pinger.Wait()
	if strings.Contains(pingOut.String(), "Unreachable") {
		t.Errorf("traffic disturbed during reloads:\n%s", pingOut.String())
	}
	assertNoLoss(t, pingOut.String())
	cfg.ExtraConns = ""
	os.WriteFile(p.da.path, []byte(`daemon {
  control_socket = "`+p.ca.Socket+`"
  listen         = ["`+p.ca.Listen+`"]
}
plugin "dataplane" "userspace" {}
`), 0o600)
	p.da.cmd.Process.Signal(syscall.SIGHUP)
	netns.WaitFor(t, "removed connection's SAs deleted on both sides", 20*time.Second, func() bool {
		return len(p.da.sas().IKESAs) == 0 && len(p.db.sas().IKESAs) == 0
	})
}

// assertNoLoss checks ping's summary: every packet sent was answered.
func assertNoLoss(t *testing.T, out string) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "packets transmitted") {
			if !strings.Contains(line, " 0% packet loss") {
				t.Errorf("loss during reload: %s", line)
			}
			return
		}
	}
	t.Errorf("ping printed no summary:\n%s", out)
}
