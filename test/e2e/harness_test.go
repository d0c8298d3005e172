package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/veil-ipsec/veil/test/netns"
)

// Binaries built once for the whole package, as an operator would run them;
// keystoreEnv is the example third-party plugin, built as `make build` does.
var veild, veilctl, keystoreEnv string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "veil-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	veild, veilctl = filepath.Join(dir, "veild"), filepath.Join(dir, "veilctl")
	keystoreEnv = filepath.Join(dir, "keystore-env")
	for _, b := range []struct{ out, pkg string }{{veild, "../../cmd/veild"}, {veilctl, "../../cmd/veilctl"},
		{keystoreEnv, "../../examples/plugins/keystore-env"}} {
		cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// peerConfig is one side of a connection between two daemons.
type peerConfig struct {
	Dir         string
	Socket      string
	Listen      string
	Local       string
	Remote      string
	LocalID     string
	RemoteID    string
	PSKFile     string
	IKEProposal string
	ESPProposal string
	StartAction string
	LocalTS     string
	RemoteTS    string
	Extra       string // more connection attributes
	ChildExtra  string // more attributes of child "all"
	Mode        string // of child "all": "transport" unless set
	ExtraConns  string // more connection blocks
	Metrics     string // metrics_listen, if set
	Daemon      string // more daemon attributes
	// KernelDataplane leaves the dataplane to the default, xfrm (needs a
	// kernel with ESP: the kernel lab).
	KernelDataplane bool
	// UserspaceConfig is the body of the userspace dataplane's config block.
	UserspaceConfig string
	// Env is more environment for veild ("NAME=value"), which passes it
	// on to its plugins.
	Env []string
}

var configTemplate = template.Must(template.New("cfg").Parse(`
daemon {
  control_socket = "{{.Socket}}"
  listen         = ["{{.Listen}}"]
  log_level      = "debug"
  {{if .Metrics}}metrics_listen = "{{.Metrics}}"{{end}}
  {{.Daemon}}
}
{{if not .KernelDataplane}}plugin "dataplane" "userspace" {
  {{if .UserspaceConfig}}config {
    {{.UserspaceConfig}}
  }{{end}}
}{{end}}
connection "lab" {
  local_addrs   = ["{{.Local}}"]
  remote_addrs  = ["{{.Remote}}"]
  {{if .IKEProposal}}ike_proposals = ["{{.IKEProposal}}"]{{end}}
  {{.Extra}}
  local  {
    auth = "psk"
    id   = "{{.LocalID}}"
    psk  = "file:{{.PSKFile}}"
  }
  remote {
    auth = "psk"
    id   = "{{.RemoteID}}"
    psk  = "file:{{.PSKFile}}"
  }
  child "all" {
    mode         = "{{or .Mode "transport"}}"
    {{if .ESPProposal}}esp_proposals = ["{{.ESPProposal}}"]{{end}}
    {{if .LocalTS}}local_ts = ["{{.LocalTS}}"]{{end}}
    {{if .RemoteTS}}remote_ts = ["{{.RemoteTS}}"]{{end}}
    start_action = "{{.StartAction}}"
    {{.ChildExtra}}
  }
}
{{.ExtraConns}}
`))

// daemon is a running veild inside a namespace.
type daemon struct {
	t    testing.TB
	ns   *netns.NS
	cfg  peerConfig
	path string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan error
}

func writeConfig(t testing.TB, c peerConfig, path string) {
	t.Helper()
	var b bytes.Buffer
	if err := configTemplate.Execute(&b, c); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func startDaemon(t testing.TB, ns *netns.NS, c peerConfig) *daemon {
	t.Helper()
	path := filepath.Join(c.Dir, "veil.hcl")
	writeConfig(t, c, path)
	return startDaemonPath(t, ns, c, path)
}

// startDaemonPath starts veild in ns with the configuration file at path;
// c gives the control socket.
func startDaemonPath(t testing.TB, ns *netns.NS, c peerConfig, path string) *daemon {
	t.Helper()
	d := &daemon{t: t, ns: ns, cfg: c, path: path, log: &bytes.Buffer{}, done: make(chan error, 1)}
	d.cmd = ns.Command(context.Background(), veild, "--config", path)
	if len(c.Env) > 0 {
		d.cmd.Env = append(os.Environ(), c.Env...)
	}
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("veild %s log:\n%s", ns.Name, d.log.String())
		}
	})
	netns.WaitFor(t, "control socket of "+ns.Name, 20*time.Second, func() bool {
		select {
		case err := <-d.done:
			t.Fatalf("veild exited: %v\n%s", err, d.log.String())
		default:
		}
		_, err := os.Stat(c.Socket)
		return err == nil
	})
	return d
}

func (d *daemon) stop() {
	if d.cmd.ProcessState != nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

// ctl runs veilctl against this daemon and returns stdout; it fails the test
// on a non-zero exit.
func (d *daemon) ctl(args ...string) string {
	d.t.Helper()
	out, err := d.ctlErr(args...)
	if err != nil {
		d.t.Fatalf("veilctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (d *daemon) ctlErr(args ...string) (string, error) {
	cmd := exec.Command(veilctl, append([]string{"--socket", d.cfg.Socket}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

type saList struct {
	IKESAs []struct {
		Name       string   `json:"name"`
		State      string   `json:"state"`
		Local      string   `json:"local"`
		Remote     string   `json:"remote"`
		Initiator  bool     `json:"initiator"`
		SPIi       string   `json:"spi_i"`
		SPIr       string   `json:"spi_r"`
		Proposal   string   `json:"proposal"`
		LocalVIPs  []string `json:"local_vips"`
		RemoteVIPs []string `json:"remote_vips"`
		DNS        []string `json:"dns"`
		Children   []struct {
			Name       string   `json:"name"`
			State      string   `json:"state"`
			Mode       string   `json:"mode"`
			Proposal   string   `json:"proposal"`
			SPIIn      string   `json:"spi_in"`
			SPIOut     string   `json:"spi_out"`
			LocalTS    []string `json:"local_ts"`
			RemoteTS   []string `json:"remote_ts"`
			BytesIn    uint64   `json:"bytes_in"`
			BytesOut   uint64   `json:"bytes_out"`
			PacketsIn  uint64   `json:"packets_in"`
			PacketsOut uint64   `json:"packets_out"`
		} `json:"children"`
	} `json:"ike_sas"`
}

func (d *daemon) sas() saList {
	d.t.Helper()
	var l saList
	if err := json.Unmarshal([]byte(d.ctl("sas", "--json")), &l); err != nil {
		d.t.Fatal(err)
	}
	return l
}

// established reports whether the daemon has an ESTABLISHED IKE SA with an
// INSTALLED child.
func (d *daemon) established() bool {
	l := d.sas()
	for _, s := range l.IKESAs {
		if s.State != "ESTABLISHED" {
			continue
		}
		for _, c := range s.Children {
			if c.State == "INSTALLED" {
				return true
			}
		}
	}
	return false
}

func (d *daemon) waitEstablished() {
	d.t.Helper()
	netns.WaitFor(d.t, d.ns.Name+" established", 30*time.Second, d.established)
}
