package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/veil-ipsec/veil/test/netns"
)

// Binaries built once for the whole package, as an operator would run them.
var veild, veilctl string

const (
	charonBin  = "/usr/sbin/charon-systemd"
	swanctlBin = "/usr/sbin/swanctl"
	psk        = "interop psk 0123456789 abcdefghij"
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "veil-interop-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	veild, veilctl = filepath.Join(dir, "veild"), filepath.Join(dir, "veilctl")
	for _, b := range []struct{ out, pkg string }{{veild, "../../cmd/veild"}, {veilctl, "../../cmd/veilctl"}} {
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

// requireStrongSwan skips when the test cannot run at all: not root, or no
// strongSwan. CI installs strongSwan and runs as root, so nothing skips there.
func requireStrongSwan(t *testing.T) {
	t.Helper()
	netns.Require(t)
	for _, b := range []string{charonBin, swanctlBin, "/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so", "/usr/lib/ipsec/plugins/libstrongswan-gcm.so"} {
		if _, err := os.Stat(b); err != nil {
			t.Skipf("needs strongSwan (%s): %v", b, err)
		}
	}
	for _, b := range []string{"ping"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("needs %s", b)
		}
	}
}

// setup is the shared shape of every case: two hosts on one link, veil on
// one, charon on the other, each with its own inner address for tunnel-mode
// traffic.
type setup struct {
	Mode        string // "transport" or "tunnel"
	IKEProposal string // same string for both sides
	ESPProposal string
	VeilStarts  bool   // veil initiates (start_action = "start"); else charon does
	IPv6        bool   // IPv6 outside and inside the tunnel
	VeilExtra   string // more attributes of veil's connection
	CharonExtra string // more attributes of charon's connection
	VeilDaemon  string // more attributes of veil's daemon block
	CharonConf  string // more settings in charon's section of strongswan.conf
	VeilID      string // veil's identity, if not veilID
	CharonID    string // charon's identity, if not charonID
	CharonIKE   string // charon's IKE proposal, if not IKEProposal
	CharonPSK   string // charon's pre-shared key, if not psk
	Dataplane   string // attributes of veil's userspace dataplane block, if any
	Certs       *certs // certificate authentication instead of the PSK, if set
	CharonAuth  string // charon's auth with certificates (both rounds), if not "pubkey"

	// Raw authentication attributes of each side's local and remote
	// blocks (all but id), instead of the PSK or Certs ones: EAP.
	VeilLocal, VeilRemote     string
	CharonLocal, CharonRemote string
	VeilTop                   string            // more top-level blocks of veil's configuration
	CharonFiles               map[string]string // more credential files: path under charon's folder -> source
	CharonSecrets             string            // more entries of charon's secrets section
	// Prepare, if set, runs once both namespaces are up and before either
	// daemon starts, and may fill in the rest (servers veil needs).
	Prepare func(veilNS, charonNS *netns.NS, s *setup)
}

// addressing is one family's plan: outer addresses on the link, inner
// addresses (on lo) and networks behind each host for tunnel mode.
type addressing struct {
	veil, charon           string // outer
	prefix                 string // of the link, e.g. "/24"
	veilInner, charonInner string
	veilNet, charonNet     string
	host                   string // host prefix length, e.g. "/32"
}

var (
	ipv4 = addressing{"10.80.0.1", "10.80.0.2", "/24", "10.81.1.1", "10.81.2.1", "10.81.1.0/24", "10.81.2.0/24", "/32"}
	ipv6 = addressing{"fd80::1", "fd80::2", "/64", "fd81:1::1", "fd81:2::1", "fd81:1::/64", "fd81:2::/64", "/128"}
)

const veilID, charonID = "veil.interop", "charon.interop"

func (s setup) veilID() string {
	if s.VeilID != "" {
		return s.VeilID
	}
	return veilID
}

func (s setup) charonID() string {
	if s.CharonID != "" {
		return s.CharonID
	}
	return charonID
}

func (s setup) addrs() addressing {
	if s.IPv6 {
		return ipv6
	}
	return ipv4
}

// ts returns the traffic selectors for one side: the hosts' own addresses
// in transport mode, the inner networks in tunnel mode.
func (s setup) ts(veilSide bool) (local, remote string) {
	a := s.addrs()
	if s.Mode == "transport" {
		local, remote = a.veil+a.host, a.charon+a.host
	} else {
		local, remote = a.veilNet, a.charonNet
	}
	if !veilSide {
		local, remote = remote, local
	}
	return local, remote
}

// lab is one running case.
type lab struct {
	t      *testing.T
	veilNS *netns.NS
	chNS   *netns.NS
	veil   *veilDaemon
	charon *charon

	veilStarts bool
	addrs      addressing
}

func newLab(t *testing.T, s setup) *lab {
	t.Helper()
	requireStrongSwan(t)
	l := &lab{t: t, veilNS: netns.New(t, "veil"), chNS: netns.New(t, "charon")}
	a := s.addrs()
	l.addrs = a
	netns.Link(t, l.veilNS, []string{a.veil + a.prefix}, l.chNS, []string{a.charon + a.prefix})
	l.veilNS.Run("ip", "addr", "add", a.veilInner+a.host, "dev", "lo")
	l.chNS.Run("ip", "addr", "add", a.charonInner+a.host, "dev", "lo")
	// strongSwan 5.9's kernel-libipsec only sends ESP inside UDP (it fakes
	// a NAT to force encapsulation); veild shares port 4500 with the
	// userspace dataplane (SO_REUSEPORT, ESP steered by the non-ESP marker),
	// so the dataplane's default configuration carries it.
	if s.Prepare != nil {
		s.Prepare(l.veilNS, l.chNS, &s)
	}
	dir := t.TempDir()
	l.charon = startCharon(t, l.chNS, filepath.Join(dir, "charon"), s)
	l.veil = startVeil(t, l.veilNS, filepath.Join(dir, "veil"), s)
	l.veilStarts = s.VeilStarts
	return l
}

// ---- veil side ----

var veilTemplate = template.Must(template.New("cfg").Parse(`
daemon {
  control_socket = "{{.Socket}}"
  listen         = ["{{.Local}}"]
  log_level      = "debug"
  {{.S.VeilDaemon}}
}
plugin "dataplane" "userspace" {
  {{.S.Dataplane}}
}
{{.S.VeilTop}}
connection "interop" {
  local_addrs   = ["{{.Local}}"]
  remote_addrs  = ["{{.Remote}}"]
  ike_proposals = ["{{.S.IKEProposal}}"]
  {{.S.VeilExtra}}
  local  {
    id   = "{{.LocalID}}"
{{- if .S.VeilLocal}}
    {{.S.VeilLocal}}
{{- else if .S.Certs}}
    auth        = "pubkey"
    certificate = "{{.S.Certs.VeilCert}}"
    key         = "file:{{.S.Certs.VeilKey}}"
{{- else}}
    auth = "psk"
    psk  = "file:{{.PSKFile}}"
{{- end}}
  }
  remote {
    id   = "{{.RemoteID}}"
{{- if .S.VeilRemote}}
    {{.S.VeilRemote}}
{{- else if .S.Certs}}
    auth    = "pubkey"
    cacerts = ["{{.S.Certs.VeilCA}}"]
{{- else}}
    auth = "psk"
    psk  = "file:{{.PSKFile}}"
{{- end}}
  }
  child "net" {
    mode          = "{{.S.Mode}}"
    esp_proposals = ["{{.S.ESPProposal}}"]
    local_ts      = ["{{.LocalTS}}"]
    remote_ts     = ["{{.RemoteTS}}"]
    start_action  = "{{if .S.VeilStarts}}start{{else}}none{{end}}"
  }
}
`))

type veilDaemon struct {
	t      *testing.T
	ns     *netns.NS
	path   string // configuration
	socket string
	cmd    *exec.Cmd
	log    *bytes.Buffer
	done   chan error
}

func startVeil(t *testing.T, ns *netns.NS, dir string, s setup) *veilDaemon {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	pskFile := filepath.Join(dir, "interop.psk")
	if err := os.WriteFile(pskFile, []byte(psk+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	lts, rts := s.ts(true)
	var b bytes.Buffer
	err := veilTemplate.Execute(&b, map[string]any{
		"Socket": filepath.Join(dir, "veil.sock"), "Local": s.addrs().veil, "Remote": s.addrs().charon,
		"LocalID": s.veilID(), "RemoteID": s.charonID(), "PSKFile": pskFile,
		"LocalTS": lts, "RemoteTS": rts, "S": s,
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "veil.hcl")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return runVeil(t, ns, path, filepath.Join(dir, "veil.sock"))
}

// runVeil starts veild on a written configuration.
func runVeil(t *testing.T, ns *netns.NS, path, socket string) *veilDaemon {
	t.Helper()
	d := &veilDaemon{t: t, ns: ns, path: path, socket: socket, log: &bytes.Buffer{}, done: make(chan error, 1)}
	d.cmd = ns.Command(context.Background(), veild, "--config", path)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("veild log:\n%s", d.log.String())
		}
	})
	netns.WaitFor(t, "veil control socket", 20*time.Second, func() bool {
		select {
		case err := <-d.done:
			t.Fatalf("veild exited: %v\n%s", err, d.log.String())
		default:
		}
		_, err := os.Stat(d.socket)
		return err == nil
	})
	return d
}

// crash kills veild and its plugin processes at once (every process in its
// namespace), without a word to the peer, and returns a fresh veild on the
// same configuration.
func (d *veilDaemon) crash() *veilDaemon {
	d.t.Helper()
	pids, _ := exec.Command("ip", "netns", "pids", d.ns.Name).Output()
	for _, pid := range strings.Fields(string(pids)) {
		exec.Command("kill", "-9", pid).Run()
	}
	<-d.done
	// The stale socket file would satisfy runVeil's wait before the new
	// veild listens.
	os.Remove(d.socket)
	return runVeil(d.t, d.ns, d.path, d.socket)
}

func (d *veilDaemon) stop() {
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

func (d *veilDaemon) ctl(args ...string) string {
	d.t.Helper()
	cmd := exec.Command(veilctl, append([]string{"--socket", d.socket}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		d.t.Fatalf("veilctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ikeSA is what both daemons report about one IKE SA, normalised so the two
// views compare directly: SPIs as 16 lower-case hex digits, child SPIs as 8.
type ikeSA struct {
	State     string
	SPIi      string
	SPIr      string
	Initiator bool
	Proposal  string // veil: its proposal string; charon: the key exchange (dh-group)
	Children  []childSA
}

type childSA struct {
	State   string
	Mode    string
	SPIIn   string
	SPIOut  string
	Packets uint64 // in + out
}

func normSPI(s string, digits int) string {
	s = strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"))
	for len(s) < digits {
		s = "0" + s
	}
	return s
}

func (d *veilDaemon) sas() []ikeSA {
	d.t.Helper()
	var l struct {
		IKESAs []struct {
			State     string `json:"state"`
			Initiator bool   `json:"initiator"`
			SPIi      string `json:"spi_i"`
			SPIr      string `json:"spi_r"`
			Proposal  string `json:"proposal"`
			Children  []struct {
				State      string `json:"state"`
				Mode       string `json:"mode"`
				SPIIn      string `json:"spi_in"`
				SPIOut     string `json:"spi_out"`
				PacketsIn  uint64 `json:"packets_in"`
				PacketsOut uint64 `json:"packets_out"`
			} `json:"children"`
		} `json:"ike_sas"`
	}
	if err := json.Unmarshal([]byte(d.ctl("sas", "--json")), &l); err != nil {
		d.t.Fatal(err)
	}
	var out []ikeSA
	for _, s := range l.IKESAs {
		sa := ikeSA{State: s.State, SPIi: normSPI(s.SPIi, 16), SPIr: normSPI(s.SPIr, 16), Initiator: s.Initiator, Proposal: s.Proposal}
		for _, c := range s.Children {
			sa.Children = append(sa.Children, childSA{State: c.State, Mode: strings.ToLower(c.Mode),
				SPIIn: normSPI(c.SPIIn, 8), SPIOut: normSPI(c.SPIOut, 8), Packets: c.PacketsIn + c.PacketsOut})
		}
		out = append(out, sa)
	}
	return out
}

// ---- charon side ----

// charon is one charon-systemd in its own namespace with a private
// strongswan.conf, log and vici socket.
type charon struct {
	t    *testing.T
	dir  string
	conf string // strongswan.conf, given to charon and swanctl alike
	cmd  *exec.Cmd
	done chan error
}

var strongswanConfTemplate = template.Must(template.New("ss").Parse(`
charon {
  load_modular = no
  # kernel-libipsec: ESP in userspace over TUN, since this kernel has no ESP.
  # It must come before kernel-netlink, which then only handles routes and
  # addresses. ml (ML-KEM) exists from strongSwan 6 on; older versions log
  # that it failed to load and go on.
  load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey constraints eap-identity eap-md5 eap-tls curve25519 gmp aes sha1 sha2 hmac gcm chapoly kdf ml kernel-libipsec kernel-netlink socket-default vici
  install_virtual_ip = no
  retransmit_tries = 3
  retransmit_timeout = 1
  {{.S.CharonConf}}
  plugins {
    vici { socket = unix://{{.Dir}}/charon.vici }
  }
  filelog {
    interop {
      path = {{.Dir}}/charon.log
      time_format = %T
      default = 1
      ike = 2
      knl = 2
      esp = 2
      flush_line = yes
    }
  }
}
charon-systemd {
  journal { default = -1 }
}
swanctl {
  socket = unix://{{.Dir}}/charon.vici
}
`))

var swanctlConfTemplate = template.Must(template.New("sw").Parse(`
connections {
  veil {
    version = 2
    local_addrs = {{.Local}}
    remote_addrs = {{.Remote}}
    proposals = {{.IKE}}
    {{.S.CharonExtra}}
    local {
      id = {{.LocalID}}
{{- if .S.CharonLocal}}
      {{.S.CharonLocal}}
{{- else if .S.Certs}}
      auth = {{or .S.CharonAuth "pubkey"}}
      certs = charon.pem
{{- else}}
      auth = psk
{{- end}}
    }
    remote {
      id = {{.RemoteID}}
{{- if .S.CharonRemote}}
      {{.S.CharonRemote}}
{{- else if .S.Certs}}
      auth = {{or .S.CharonAuth "pubkey"}}
      cacerts = ca.pem
{{- else}}
      auth = psk
{{- end}}
    }
    children {
      net {
        mode = {{.S.Mode}}
        esp_proposals = {{.S.ESPProposal}}
        local_ts = {{.LocalTS}}
        remote_ts = {{.RemoteTS}}
        start_action = none
      }
    }
  }
}
secrets {
  ike-interop {
    id-veil = {{.RemoteID}}
    id-charon = {{.LocalID}}
    secret = "{{.PSK}}"
  }
  {{.S.CharonSecrets}}
}
`))

func startCharon(t *testing.T, ns *netns.NS, dir string, s setup) *charon {
	t.Helper()
	// charon and swanctl refuse to start without their credential folders.
	for _, sub := range []string{"x509", "x509ca", "x509ocsp", "x509aa", "x509ac", "x509crl", "pubkey", "private", "rsa", "ecdsa", "bliss", "pkcs8", "pkcs12"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// swanctl --load-all reads credentials from the folders next to
	// swanctl.conf; a key is found by its certificate's public key.
	files := map[string]string{}
	if s.Certs != nil {
		files["x509/charon.pem"], files["private/charon.key"], files["x509ca/ca.pem"] = s.Certs.CharonCert, s.Certs.CharonKey, s.Certs.CharonCA
	}
	for to, from := range s.CharonFiles {
		files[to] = from
	}
	for to, from := range files {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, to), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := &charon{t: t, dir: dir, conf: filepath.Join(dir, "strongswan.conf"), done: make(chan error, 1)}
	writeTemplate(t, strongswanConfTemplate, c.conf, map[string]any{"Dir": dir, "S": s})
	lts, rts := s.ts(false)
	writeTemplate(t, swanctlConfTemplate, filepath.Join(dir, "swanctl.conf"), map[string]any{
		"Local": s.addrs().charon, "Remote": s.addrs().veil, "LocalID": s.charonID(), "RemoteID": s.veilID(),
		"LocalTS": lts, "RemoteTS": rts, "PSK": or(s.CharonPSK, psk), "IKE": or(s.CharonIKE, s.IKEProposal), "S": s,
	})
	var stdout bytes.Buffer
	c.cmd = ns.Command(context.Background(), "env", "STRONGSWAN_CONF="+c.conf, charonBin)
	c.cmd.Stdout, c.cmd.Stderr = &stdout, &stdout
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() {
		c.stop()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "charon.log"))
			t.Logf("charon output:\n%s\ncharon log:\n%s", stdout.String(), log)
		}
	})
	netns.WaitFor(t, "charon vici socket", 20*time.Second, func() bool {
		select {
		case err := <-c.done:
			t.Fatalf("charon exited: %v\n%s", err, stdout.String())
		default:
		}
		_, err := os.Stat(filepath.Join(dir, "charon.vici"))
		return err == nil
	})
	c.swanctl("--load-all", "--noprompt", "--file", filepath.Join(dir, "swanctl.conf"))
	return c
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func writeTemplate(t *testing.T, tmpl *template.Template, path string, data any) {
	t.Helper()
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// kill ends charon without a word to its peer, as a crash or a cut cable
// would.
func (c *charon) kill() {
	c.cmd.Process.Kill()
	<-c.done
}

// log returns charon's log so far.
func (c *charon) log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "charon.log"))
	return string(b)
}

func (c *charon) stop() {
	if c.cmd.ProcessState != nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// swanctl runs swanctl against this charon's vici socket.
func (c *charon) swanctl(args ...string) string {
	c.t.Helper()
	out, err := c.swanctlErr(args...)
	if err != nil {
		c.t.Fatalf("swanctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (c *charon) swanctlErr(args ...string) (string, error) {
	cmd := exec.Command(swanctlBin, args...)
	if c.conf != "" {
		cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+c.conf)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

var (
	// swanctl --list-sas --raw prints each IKE SA as one vici message:
	//   list-sa event {veil {uniqueid=1 ... state=ESTABLISHED ...
	//   initiator-spi=... responder-spi=... child-sas {net-1 {... state=INSTALLED
	//   mode=TUNNEL ... spi-in=... spi-out=... packets-in=... }}}}
	rawEvent = regexp.MustCompile(`(?m)^list-sa event \{.*$`)
	ikeField = regexp.MustCompile(`\b(state|initiator|initiator-spi|responder-spi|dh-group)=(\S+)`)
	rawChild = regexp.MustCompile(`child-sas \{(.*)\}`)
	chField  = regexp.MustCompile(`\b(state|mode|spi-in|spi-out|packets-in|packets-out)=([^\s}]+)`)
)

// sas lists charon's IKE SAs through vici.
func (c *charon) sas() []ikeSA {
	c.t.Helper()
	var out []ikeSA
	for _, ev := range rawEvent.FindAllString(c.swanctl("--list-sas", "--raw"), -1) {
		head, children := ev, ""
		if i := strings.Index(ev, "child-sas {"); i >= 0 {
			head, children = ev[:i], ev[i:]
		}
		var sa ikeSA
		for _, m := range ikeField.FindAllStringSubmatch(head, -1) {
			switch m[1] {
			case "state":
				if sa.State == "" {
					sa.State = m[2]
				}
			case "initiator":
				sa.Initiator = m[2] == "yes"
			case "initiator-spi":
				sa.SPIi = normSPI(m[2], 16)
			case "responder-spi":
				sa.SPIr = normSPI(m[2], 16)
			case "dh-group":
				sa.Proposal = m[2]
			}
		}
		if m := rawChild.FindStringSubmatch(children); m != nil {
			// Each child starts with "NAME {" and its fields; split on the
			// uniqueid every child carries first.
			for _, part := range strings.Split(m[1], "uniqueid=")[1:] {
				var ch childSA
				for _, f := range chField.FindAllStringSubmatch(part, -1) {
					switch f[1] {
					case "state":
						ch.State = f[2]
					case "mode":
						ch.Mode = strings.ToLower(f[2])
					case "spi-in":
						ch.SPIIn = normSPI(f[2], 8)
					case "spi-out":
						ch.SPIOut = normSPI(f[2], 8)
					case "packets-in", "packets-out":
						var n uint64
						fmt.Sscan(f[2], &n)
						ch.Packets += n
					}
				}
				sa.Children = append(sa.Children, ch)
			}
		}
		out = append(out, sa)
	}
	return out
}
