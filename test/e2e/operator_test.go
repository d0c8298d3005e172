package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/test/netns"
)

// What an operator watches: plugins, live events, Prometheus metrics, and
// logs that never show the secret; after shutdown nothing is left behind.
func TestOperatorSurface(t *testing.T) {
	p := newDirectPair(t)
	p.ca.Extra = "dpd_delay = \"30s\""
	p.ca.StartAction = "none"
	p.cb.Remote = p.aAddr
	p.ca.Metrics = "127.0.0.1:9750" // on a's own loopback
	p.start(t)
	a := p.da

	plugins := a.ctl("plugins")
	for _, want := range []string{"dataplane", "userspace", "keystore", "file", "auth", "psk", "running"} {
		if !strings.Contains(plugins, want) {
			t.Errorf("veilctl plugins lacks %q:\n%s", want, plugins)
		}
	}

	// Live events while the connection comes up.
	ev := exec.Command(veilctl, "--socket", p.ca.Socket, "events")
	stdout, _ := ev.StdoutPipe()
	if err := ev.Start(); err != nil {
		t.Fatal(err)
	}
	defer ev.Process.Kill()
	lines := make(chan string, 16)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	time.Sleep(300 * time.Millisecond)
	a.ctl("initiate", "lab/all")
	var sawUp, sawChild bool
	deadline := time.After(10 * time.Second)
	for !(sawUp && sawChild) {
		select {
		case l := <-lines:
			sawUp = sawUp || strings.Contains(l, " up lab")
			sawChild = sawChild || strings.Contains(l, "child-up lab/all")
		case <-deadline:
			t.Fatalf("events: up=%v child-up=%v", sawUp, sawChild)
		}
	}

	body := scrape(t, p.a, "http://127.0.0.1:9750/metrics")
	for _, want := range []string{`veil_ike_sas{state="ESTABLISHED"} 1`, `veil_child_sas{state="INSTALLED"} 1`, `veil_handshakes_total{result="ok"}`, "veil_child_bytes_total",
		`veil_plugin_rpc_seconds_count{kind="auth",method="make",name="psk",result="ok"} 1`, `veil_plugin_rpc_seconds_count{kind="dataplane",method="install child"`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// Shutdown: the peer hears the Delete, and the dataplane's TUN device
	// and routing rules are gone.
	a.stop()
	netns.WaitFor(t, "peer saw the delete", 10*time.Second, func() bool { return len(p.db.sas().IKESAs) == 0 })
	if out, _ := p.a.Output("ip", "link", "show", "veil0"); !strings.Contains(out, "does not exist") {
		t.Errorf("TUN device left behind:\n%s", out)
	}
	if out := p.a.Run("ip", "rule", "show"); strings.Contains(out, "0x7e11") || strings.Contains(out, "32273") {
		t.Errorf("routing rules left behind:\n%s", out)
	}
	secret, _ := os.ReadFile(p.ca.PSKFile)
	if strings.Contains(a.log.String(), strings.TrimSpace(string(secret))) || strings.Contains(p.db.log.String(), strings.TrimSpace(string(secret))) {
		t.Error("the pre-shared key reached the log")
	}
}

// scrape fetches a URL from inside a namespace (the metrics endpoint is on
// that namespace's loopback), with curl if present, else bash's /dev/tcp.
func scrape(t *testing.T, ns *netns.NS, url string) string {
	t.Helper()
	if _, err := exec.LookPath("curl"); err == nil {
		out, err := ns.Output("curl", "-sf", url)
		if err != nil {
			t.Fatalf("curl %s: %v\n%s", url, err, out)
		}
		return out
	}
	hostPath := strings.TrimPrefix(url, "http://")
	host, path, _ := strings.Cut(hostPath, "/")
	h, port, _ := strings.Cut(host, ":")
	out, err := ns.Output("bash", "-c", "exec 3<>/dev/tcp/"+h+"/"+port+"; printf 'GET /"+path+" HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3")
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return out
}
