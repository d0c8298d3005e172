package e2e

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/test/netns"
)

// killLoads are the connections a churns through, each in its own loop of
// initiate and terminate; each comes from its own address of a, so its
// transport-mode Child SAs never overlap "lab"'s or each other's.
var killLoads = []struct{ name, addr string }{{"load1", "10.70.0.3"}, {"load2", "10.70.0.5"}}

// killConfig is a daemon with certificate authentication (so every
// handshake signs through the keystore plugin and has the x509 plugin
// check the peer's chain) and the userspace dataplane: connection "lab",
// which stays up, plus the load connections. For a (initiator) locals are
// a's addresses; for b (responder) remotes are.
func killConfig(sock string, listen []string, lab [2]string, loads [][2]string, lid, rid, cert, key, ca, start string) string {
	conn := func(name string, addrs [2]string, start string) string {
		return certConnection(name, addrs[0], addrs[1], lid, rid, cert, "file:"+key, ca, start)
	}
	cfg := daemonBlock(sock, listen...) + conn("lab", lab, start)
	for i, l := range loads {
		cfg += conn(killLoads[i].name, l, "none")
	}
	return cfg
}

// loadResult is one initiate (a handshake) of a load loop.
type loadResult struct {
	start, end time.Time
	err        error
	out        string
}

// TestPluginKillDuringHandshakes kills each kind of plugin of the responder
// with SIGKILL while handshakes run continuously: veild keeps running and
// restarts the plugin, the SAs established before stay (same IKE SPIs,
// traffic flows), handshakes during the outage fail with an answer instead
// of hanging, and new handshakes succeed after the restart.
func TestPluginKillDuringHandshakes(t *testing.T) {
	for _, k := range []struct{ kind, name string }{
		{"auth", "x509"},
		{"keystore", "file"},
		{"dataplane", "userspace"},
	} {
		t.Run(k.kind, func(t *testing.T) { testPluginKill(t, k.kind, k.name) })
	}
}

func testPluginKill(t *testing.T, kind, name string) {
	netns.Require(t)
	a, b := netns.New(t, "a"), netns.New(t, "b")
	aAddrs := []string{"10.70.0.1/24"}
	for _, l := range killLoads {
		aAddrs = append(aAddrs, l.addr+"/24")
	}
	netns.Link(t, a, aAddrs, b, []string{"10.70.0.2/24"})
	const aAddr, bAddr = "10.70.0.1", "10.70.0.2"

	dir := t.TempDir()
	ca := newTestCA(t, dir)
	ac, ak := ca.issue(t, dir, "a", "a.test", "ecdsa-p256")
	bc, bk := ca.issue(t, dir, "b", "b.test", "ecdsa-p256")
	aListen := []string{aAddr}
	var aLoads, bLoads [][2]string
	for _, l := range killLoads {
		aListen = append(aListen, l.addr)
		aLoads = append(aLoads, [2]string{l.addr, bAddr})
		bLoads = append(bLoads, [2]string{bAddr, l.addr})
	}
	aSock, bSock := dir+"/a/veil.sock", dir+"/b/veil.sock"
	db := startDaemonConfig(t, b, bSock, killConfig(bSock, []string{bAddr}, [2]string{bAddr, aAddr}, bLoads, "b.test", "a.test", bc, bk, ca.path, "none"))
	da := startDaemonConfig(t, a, aSock, killConfig(aSock, aListen, [2]string{aAddr, bAddr}, aLoads, "a.test", "b.test", ac, ak, ca.path, "start"))
	da.waitEstablished()
	db.waitEstablished()
	ping(t, a, bAddr)

	lab := func(d *daemon) (spiI, spiR, childIn string, ok bool) {
		for _, s := range d.sas().IKESAs {
			if s.Name == "lab" && s.State == "ESTABLISHED" && len(s.Children) == 1 && s.Children[0].State == "INSTALLED" {
				return s.SPIi, s.SPIr, s.Children[0].SPIIn, true
			}
		}
		return "", "", "", false
	}
	spiI, spiR, childIn, ok := lab(db)
	if !ok {
		t.Fatalf("b has no established lab SA: %+v", db.sas())
	}

	// The load: one loop per load connection, initiate then terminate, as
	// fast as the daemons go. A veilctl that times out is a hang.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var results []loadResult
	var terminateErrs []string
	for _, l := range killLoads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := loadResult{start: time.Now()}
				r.out, r.err = da.ctlErr("--timeout", "20s", "initiate", l.name+"/all")
				r.end = time.Now()
				out, err := da.ctlErr("--timeout", "20s", "terminate", l.name)
				mu.Lock()
				results = append(results, r)
				if err != nil {
					terminateErrs = append(terminateErrs, fmt.Sprintf("%s: %v: %s", l.name, err, out))
				}
				mu.Unlock()
			}
		}()
	}
	stopLoad := func() {
		select {
		case <-stop:
		default:
			close(stop)
			wg.Wait()
		}
	}
	t.Cleanup(stopLoad)
	successesSince := func(since time.Time) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range results {
			if r.err == nil && !r.start.Before(since) {
				n++
			}
		}
		return n
	}
	loadStart := time.Now()
	netns.WaitFor(t, "handshakes under way", 30*time.Second, func() bool { return successesSince(loadStart) >= 10 })

	// Kill the plugin while handshakes are in flight.
	pid := pluginPID(t, db, kind, name)
	killedAt := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var newPID int
	netns.WaitFor(t, kind+" plugin restarted", 30*time.Second, func() bool {
		st, restarts := pluginState(t, db, kind, name)
		if st != "running" || restarts < 1 {
			return false
		}
		newPID = pluginPIDs(db, kind, name)
		return newPID != 0 && newPID != pid
	})
	restartedAt := time.Now()
	// New handshakes go through the restarted plugin.
	netns.WaitFor(t, "handshakes after the restart", 30*time.Second, func() bool { return successesSince(restartedAt) >= 5 })
	stopLoad()

	if err := db.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("b's veild died: %v", err)
	}
	var before, outage, after, failed, failedAfter int
	var hangs, failures []string
	for _, r := range results {
		switch {
		case r.err != nil && strings.Contains(r.out, "deadline exceeded"):
			hangs = append(hangs, r.out)
		case r.err != nil:
			failed++
			if r.start.After(restartedAt) {
				failedAfter++
			}
			if len(failures) < 3 || r.start.After(restartedAt) {
				failures = append(failures, fmt.Sprintf("%v after the kill: %s", r.start.Sub(killedAt).Round(time.Millisecond), strings.TrimSpace(r.out)))
			}
		case r.end.Before(killedAt):
			before++
		case r.start.After(restartedAt):
			after++
		default:
			outage++
		}
	}
	t.Logf("%d handshakes: %d ok before the kill, %d ok across the outage, %d failed (%d of them begun after the restart), %d ok after the restart (plugin pid %d -> %d, restarted within %v)",
		len(results), before, outage, failed, failedAfter, after, pid, newPID, restartedAt.Sub(killedAt).Round(time.Millisecond))
	for _, f := range failures {
		t.Logf("failure: %s", f)
	}
	// The operator of the responder learns why from veilctl status.
	if st, want := db.ctl("status"), fmt.Sprintf("%s plugin %q is unavailable", kind, name); failed > 0 && !strings.Contains(st, want) {
		t.Errorf("handshakes failed but b's status does not say %q:\n%s", want, st)
	}
	if len(hangs) > 0 {
		t.Errorf("%d handshakes hung until veilctl's timeout: %q", len(hangs), hangs)
	}
	if len(terminateErrs) > 0 {
		t.Errorf("%d terminates failed: %q", len(terminateErrs), terminateErrs)
	}

	// The SAs from before the kill survived on both sides.
	for _, d := range []*daemon{da, db} {
		i, r, _, ok := lab(d)
		if !ok || i != spiI || r != spiR {
			t.Fatalf("%s: lab IKE SA %s_i %s_r replaced or gone after the %s plugin was killed: %+v", d.ns.Name, spiI, spiR, kind, d.sas())
		}
	}
	if kind == "dataplane" {
		// A new dataplane process starts sequence numbers and replay
		// windows from zero, so the host rekeys the child it reinstalled.
		netns.WaitFor(t, "lab's child rekeyed after the restart", 30*time.Second, func() bool {
			_, _, in, ok := lab(db)
			return ok && in != childIn
		})
	} else if _, _, in, _ := lab(db); in != childIn {
		t.Errorf("lab's Child SA changed (%s -> %s) though only the %s plugin restarted", childIn, in, kind)
	}
	res, err := a.Output("ping", "-c", "10", "-i", "0.2", "-W", "1", "-I", aAddr, bAddr)
	if err != nil || !strings.Contains(res, " 0% packet loss") {
		t.Fatalf("ping on lab's SA after the restart: %v\n%s", err, res)
	}
	// The load left nothing behind on the responder.
	netns.WaitFor(t, "load SAs gone on b", 20*time.Second, func() bool {
		return len(db.sas().IKESAs) == 1
	})
}

// pluginPIDs returns the PID of d's plugin process of that kind and name,
// or 0 if there is not exactly one.
func pluginPIDs(d *daemon, kind, name string) int {
	out, err := exec.Command("pgrep", "-P", strconv.Itoa(d.cmd.Process.Pid), "-f", "plugin "+kind+" "+name).Output()
	pids := strings.Fields(string(out))
	if err != nil || len(pids) != 1 {
		return 0
	}
	pid, _ := strconv.Atoi(pids[0])
	return pid
}

func pluginPID(t *testing.T, d *daemon, kind, name string) int {
	t.Helper()
	pid := pluginPIDs(d, kind, name)
	if pid == 0 {
		out, _ := exec.Command("pgrep", "-a", "-P", strconv.Itoa(d.cmd.Process.Pid)).Output()
		t.Fatalf("no single %s plugin %q under veild:\n%s", kind, name, out)
	}
	return pid
}

// pluginState reads veilctl plugins' line for the plugin.
func pluginState(t *testing.T, d *daemon, kind, name string) (state string, restarts int) {
	t.Helper()
	for _, line := range strings.Split(d.ctl("plugins"), "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == kind && f[1] == name {
			n, _ := strconv.Atoi(f[3])
			return f[2], n
		}
	}
	t.Fatalf("veilctl plugins lists no %s plugin %q", kind, name)
	return "", 0
}
