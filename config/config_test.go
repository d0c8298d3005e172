package config

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"

	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/core/transform"
	"github.com/veil-ipsec/veil/core/ts"
)

func load(t *testing.T, path string) *Config {
	t.Helper()
	c, diags := LoadFile(path)
	if len(diags) > 0 {
		var b bytes.Buffer
		c.WriteDiagnostics(&b, diags)
		t.Fatalf("%s: unexpected diagnostics:\n%s", path, b.String())
	}
	return c
}

func proposals(t *testing.T, proto transform.Protocol, ss ...string) []transform.Proposal {
	t.Helper()
	var out []transform.Proposal
	for _, s := range ss {
		p, err := transform.ParseProposal(proto, s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func sels(ss ...string) []provider.TrafficSelector {
	var out []provider.TrafficSelector
	for _, s := range ss {
		out = append(out, ts.MustParse(s))
	}
	return out
}

// The contract example decodes to exactly these values.
func TestContractExample(t *testing.T) {
	c := load(t, "testdata/good/contract.hcl")
	d := c.Daemon
	if d.ControlSocket != "/run/veil/veil.sock" || !reflect.DeepEqual(d.Listen, addrs("0.0.0.0", "::")) ||
		d.LogLevel != "info" || d.MetricsListen != netip.MustParseAddrPort("127.0.0.1:9750") ||
		d.IKEPort != 500 || d.NATTPort != 4500 || d.LogFormat != "text" || d.ControlGroup != "" {
		t.Errorf("daemon = %+v", d)
	}
	if d.Range.Start.Line != 3 {
		t.Errorf("daemon range = %s", d.Range)
	}
	if len(c.Plugins) != 2 || c.Plugins[0].Kind != "dataplane" || c.Plugins[0].Name != "userspace" ||
		c.Plugins[1].Kind != "keystore" || c.Plugins[1].Name != "vault" {
		t.Fatalf("plugins = %+v", c.Plugins)
	}
	if c.Dataplane() != "userspace" {
		t.Errorf("dataplane = %s", c.Dataplane())
	}
	if len(c.Connections) != 1 {
		t.Fatalf("connections = %d", len(c.Connections))
	}
	conn := c.Connections[0]
	want := Connection{
		Name: "db-replication", Version: 2,
		LocalAddrs: addrs("10.0.0.1"), RemoteAddrs: addrs("10.0.0.2"),
		LocalPort: 500, RemotePort: 500,
		IKEProposals:    proposals(t, transform.ProtoIKE, "aes256gcm16-prfsha384-x25519-ke1_mlkem768"),
		ProposalsPrefer: "responder",
		RekeyTime:       4 * time.Hour, RandTime: 24 * time.Minute, LifeTime: 4*time.Hour + 24*time.Minute,
		DPDDelay: 30 * time.Second, DPDTimeout: 150 * time.Second, DPDAction: "clear",
		Fragmentation: true, SendCert: "ifasked", KeyingTries: 1,
		Local: Auth{Auth: "pubkey", ID: "db1.example.com", Certificate: "/etc/veil/db1.pem",
			Key: "vault:transit/db1", Revocation: "prefer"},
		Remote: Auth{Auth: "pubkey", ID: "db2.example.com", Revocation: "prefer"},
		Children: []Child{{
			Name: "postgres", Mode: provider.Transport,
			ESPProposals: proposals(t, transform.ProtoESP, "aes256gcm16", "chacha20poly1305"),
			LocalTS:      sels("10.0.0.1/32[tcp/5432]"), RemoteTS: sels("10.0.0.2/32[tcp]"),
			StartAction: "start", CloseAction: "none",
			RekeyTime: 54 * time.Minute, RandTime: 324 * time.Second, LifeTime: time.Hour,
			ReplayWindow: 32, Offload: "off",
		}},
	}
	if !conn.Equal(&want) {
		t.Errorf("connection =\n%+v\nwant\n%+v", conn, want)
	}
	// Ranges point at the original lines even though the one-line blocks
	// were split to parse them.
	if conn.Local.Range.Start.Line != 17 || conn.Local.Range.Start.Column != 3 ||
		conn.Remote.Range.Start.Line != 18 || conn.Children[0].Range.Start.Line != 19 {
		t.Errorf("ranges: local %s remote %s child %s", conn.Local.Range, conn.Remote.Range, conn.Children[0].Range)
	}
	if c.Plugins[1].ConfigRange.Start.Line != 10 {
		t.Errorf("vault config range %s", c.Plugins[1].ConfigRange)
	}
}

func TestDefaults(t *testing.T) {
	c := load(t, "testdata/good/minimal.hcl")
	d := c.Daemon
	if d.ControlSocket != DefaultControlSocket || !reflect.DeepEqual(d.Listen, addrs("0.0.0.0", "::")) ||
		d.IKEPort != 500 || d.NATTPort != 4500 || d.LogLevel != "info" || d.LogFormat != "text" ||
		d.MetricsListen.IsValid() || d.CookieThreshold != DefaultCookieThreshold {
		t.Errorf("daemon defaults = %+v", d)
	}
	if c.Dataplane() != "xfrm" {
		t.Errorf("default dataplane = %s", c.Dataplane())
	}
	conn := c.Connections[0]
	if !reflect.DeepEqual(conn.IKEProposals, transform.DefaultIKEProposals()) || conn.Version != 2 ||
		conn.LifeTime != 24*time.Hour || conn.RekeyTime != 24*time.Hour*9/10 || conn.RandTime != conn.RekeyTime/10 ||
		conn.DPDDelay != 0 || conn.DPDTimeout != 0 || conn.ReauthTime != 0 || conn.MOBIKE || !conn.Fragmentation ||
		conn.Encap || conn.LocalPort != 500 || conn.RemotePort != 500 || conn.ProposalsPrefer != "responder" ||
		conn.KeyingTries != 1 || len(conn.LocalAddrs) != 0 {
		t.Errorf("connection defaults = %+v", conn)
	}
	ch := conn.Children[0]
	if ch.Mode != provider.Transport || !reflect.DeepEqual(ch.ESPProposals, transform.DefaultESPProposals()) ||
		len(ch.LocalTS) != 1 || !ts.IsDynamic(ch.LocalTS[0]) || len(ch.RemoteTS) != 1 || !ts.IsDynamic(ch.RemoteTS[0]) ||
		ch.LifeTime != time.Hour || ch.RekeyTime != 54*time.Minute || ch.StartAction != "none" ||
		ch.CloseAction != "none" || ch.ReplayWindow != 32 || ch.Offload != "off" || ch.DPDAction != "" ||
		ch.RekeyBytes != 0 || ch.LifeBytes != 0 {
		t.Errorf("child defaults = %+v", ch)
	}
}

func TestEveryAttribute(t *testing.T) {
	c := load(t, "testdata/good/everything.hcl")
	d := c.Daemon
	if d.ControlSocket != "/tmp/veil-a/veil.sock" || d.ControlGroup != "veil" || !reflect.DeepEqual(d.Listen, addrs("127.0.0.1", "::1")) ||
		d.IKEPort != 5500 || d.NATTPort != 5501 || d.LogLevel != "warn" ||
		!reflect.DeepEqual(d.LogLevels, map[string]string{"ike": "debug", "dataplane": "error"}) ||
		d.LogFormat != "json" || d.CookieThreshold != 0 {
		t.Errorf("daemon = %+v", d)
	}
	p := c.Plugins[0]
	if p.Path != "/usr/lib/veil/plugins/veil-keystore-pkcs11" || c.Dataplane() != "xfrm" {
		t.Errorf("plugin = %+v", p)
	}
	conn := c.Connections[0]
	want := Connection{
		Name: "gw", Version: 2, LocalAddrs: addrs("127.0.0.1"), RemoteAddrs: addrs("127.0.0.2"),
		LocalPort: 5500, RemotePort: 5600,
		IKEProposals:    proposals(t, transform.ProtoIKE, "chacha20poly1305-prfsha256-x25519", "aes128-sha256-prfsha256-ecp256"),
		ProposalsPrefer: "initiator",
		RekeyTime:       24 * time.Hour, LifeTime: 26 * time.Hour, RandTime: 30 * time.Minute,
		ReauthTime: 7 * 24 * time.Hour, DPDDelay: 10 * time.Second, DPDTimeout: time.Minute, DPDAction: "restart",
		MOBIKE: true, Fragmentation: false, Encap: true, SendCert: "always", KeyingTries: 0,
		Local: Auth{Auth: "eap-tls", ID: "client@example.com", EAPID: "client", Certificate: "pkcs11:token=veil;object=client",
			Key: "pkcs11:token=veil;object=client;type=private", Revocation: "prefer"},
		Remote: Auth{Auth: "pubkey", ID: "gw.example.com", CACerts: []string{"/etc/veil/ca.pem", "/etc/veil/ca2.pem"}, Revocation: "require"},
		Children: []Child{{
			Name: "net", Mode: provider.Tunnel,
			ESPProposals: proposals(t, transform.ProtoESP, "aes256-sha512-esn", "aes256gcm16-x25519"),
			LocalTS:      append([]provider.TrafficSelector{ts.Dynamic()}, sels("2001:db8:1::/48")...),
			RemoteTS:     sels("10.0.0.0/8", "10.20.0.1-10.20.0.9[udp/1000-2000]"),
			StartAction:  "trap", CloseAction: "start",
			RekeyTime: 108 * time.Minute, RandTime: 648 * time.Second, LifeTime: 2 * time.Hour,
			RekeyBytes: 1 << 30, LifeBytes: (1 << 30) + (1<<30)/10, RekeyPackets: 1 << 20, LifePackets: 5000000,
			ReplayWindow: 1024, DPDAction: "trap", Offload: "preferred", Mark: 42, IfID: 7,
			Pools: []netip.Prefix{netip.MustParsePrefix("10.99.0.0/24")},
		}},
	}
	if !conn.Equal(&want) {
		t.Errorf("connection =\n%+v\nwant\n%+v", conn, want)
	}
}

// A directory is every *.hcl file in it, merged in name order.
func TestDirectoryMerge(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("00-daemon.hcl", "daemon {\n  log_level = \"debug\"\n}\nplugin \"dataplane\" \"userspace\" {}\n")
	write("10-a.hcl", `connection "a" {
  remote_addrs = ["192.0.2.2"]
  local {
    auth = "psk"
    psk  = "file:/etc/veil/a.psk"
  }
  remote {
    auth = "psk"
    psk  = "file:/etc/veil/a.psk"
  }
}
`)
	write("20-b.hcl", strings.ReplaceAll(strings.ReplaceAll(
		"connection \"b\" {\n  remote_addrs = [\"192.0.2.3\"]\n  local {\n    auth = \"psk\"\n    psk = \"file:/k\"\n  }\n  remote {\n    auth = \"psk\"\n    psk = \"file:/k\"\n  }\n}\n",
		"\\n", "\n"), "\r", ""))
	write("notes.txt", "not configuration {")
	write(".#10-a.hcl", "an editor's lock file {")
	c := load(t, dir)
	if c.Daemon.LogLevel != "debug" || c.Dataplane() != "userspace" || len(c.Connections) != 2 ||
		c.Connections[0].Name != "a" || c.Connections[1].Name != "b" {
		t.Fatalf("merged config = %+v", c)
	}
	if got := c.Connections[1].Range.Filename; got != filepath.Join(dir, "20-b.hcl") {
		t.Errorf("connection b from %s", got)
	}
	if c.Connection("b") == nil || c.Connection("zz") != nil {
		t.Error("Connection lookup")
	}
	if len(c.Files) != 3 {
		t.Errorf("files = %d", len(c.Files))
	}

	empty := t.TempDir()
	if _, diags := LoadFile(empty); !diags.HasErrors() || !strings.Contains(diags.Error(), "no *.hcl files") {
		t.Errorf("empty directory: %v", diags)
	}
	if _, diags := LoadFile(filepath.Join(dir, "missing.hcl")); !diags.HasErrors() {
		t.Error("missing file loaded")
	}
}

// Every shipped example is a valid configuration.
func TestExamplesLoad(t *testing.T) {
	files, _ := filepath.Glob("../examples/*.hcl")
	if len(files) == 0 {
		t.Skip("no examples in this tree")
	}
	for _, f := range files {
		load(t, f)
	}
}

// Reload keeps connections that are Equal: moving or re-indenting a block
// does not change it, changing a value does.
func TestConnectionEqual(t *testing.T) {
	src, err := os.ReadFile("testdata/good/contract.hcl")
	if err != nil {
		t.Fatal(err)
	}
	a, diags := Parse(src, "a.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	b, _ := Parse(append([]byte("\n\n# moved down\n"), src...), "b.hcl")
	ca, cb := &a.Connections[0], &b.Connections[0]
	if ca.Range == cb.Range || !ca.Equal(cb) {
		t.Error("same connection at another place is not Equal")
	}
	changed, _ := Parse(bytes.Replace(src, []byte(`"10.0.0.2/32[tcp]"`), []byte(`"10.0.0.2/32[udp]"`), 1), "c.hcl")
	if ca.Equal(&changed.Connections[0]) {
		t.Error("changed remote_ts is still Equal")
	}
	changed, _ = Parse(bytes.Replace(src, []byte(`"30s"`), []byte(`"31s"`), 1), "c.hcl")
	if ca.Equal(&changed.Connections[0]) {
		t.Error("changed dpd_delay is still Equal")
	}
	var nilConn *Connection
	if ca.Equal(nil) || !nilConn.Equal(nil) {
		t.Error("nil handling")
	}
}

func TestWarningsDoNotFail(t *testing.T) {
	src := `connection "c" {
  remote_addrs = ["10.0.0.2"]
  mobike       = true
  local {
    auth = "psk"
    psk  = "file:/etc/veil/c.psk"
    key  = "file:/etc/veil/c.key"
  }
  remote {
    auth = "psk"
    psk  = "file:/etc/veil/c.psk"
  }
  child "x" {
    replay_window = 0
  }
}
`
	c, diags := Parse([]byte(src), "w.hcl")
	if diags.HasErrors() || len(diags) != 3 {
		t.Fatalf("want 3 warnings, got %v", diags)
	}
	var b bytes.Buffer
	c.WriteDiagnostics(&b, diags)
	for _, want := range []string{"Warning: MOBIKE with transport mode", "Warning: Attribute not used", "Warning: Replay protection off", "w.hcl:7:12"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in\n%s", want, b.String())
		}
	}
	if c.Connections[0].Children[0].ReplayWindow != 0 {
		t.Error("replay_window = 0 not kept")
	}
}

// Two-stage decoding: a plugin supplies its spec and its config body is
// decoded with it; errors point inside the plugin block.
func TestDecodePluginConfigs(t *testing.T) {
	vaultSpec := &hcldec.ObjectSpec{
		"address":   &hcldec.AttrSpec{Name: "address", Type: cty.String, Required: true},
		"namespace": &hcldec.AttrSpec{Name: "namespace", Type: cty.String},
		"timeout":   &hcldec.DefaultSpec{Primary: &hcldec.AttrSpec{Name: "timeout", Type: cty.Number}, Default: &hcldec.LiteralSpec{Value: cty.NumberIntVal(10)}},
	}
	schemas := func(kind, name string) (hcldec.Spec, error) {
		switch kind + "/" + name {
		case "keystore/vault":
			return vaultSpec, nil
		case "dataplane/userspace":
			return nil, nil // takes no configuration
		}
		return nil, os.ErrNotExist
	}

	good := `plugin "dataplane" "userspace" {}
plugin "keystore" "vault" {
  config {
    address = "https://vault:8200"
  }
}
`
	c, diags := Parse([]byte(good), "good.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if diags := c.DecodePluginConfigs(schemas); diags.HasErrors() {
		t.Fatal(diags)
	}
	v := c.Plugins[1].Value
	if v.GetAttr("address").AsString() != "https://vault:8200" || !v.GetAttr("namespace").IsNull() {
		t.Errorf("vault config = %#v", v)
	}
	if n, _ := v.GetAttr("timeout").AsBigFloat().Int64(); n != 10 {
		t.Errorf("timeout default = %d", n)
	}

	bad := `plugin "dataplane" "userspace" {
  config {
    mtu = 1400
  }
}
plugin "keystore" "vault" {
  config {
    namespace = ["a"]
    adress    = "https://vault:8200"
  }
}
plugin "auth" "radius" {}
`
	c, diags = Parse([]byte(bad), "bad.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	pd := c.DecodePluginConfigs(schemas)
	var b bytes.Buffer
	c.WriteDiagnostics(&b, pd)
	out := b.String()
	for _, want := range []string{
		`bad.hcl:3:5, in plugin "dataplane" "userspace"`, `An argument named "mtu" is not expected here`,
		`bad.hcl:9:5, in plugin "keystore" "vault"`, `Did you mean "address"?`,
		`bad.hcl:8:17`, // namespace has the wrong type
		`bad.hcl:12:1`, "Plugin unavailable",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	for _, d := range pd {
		if d.Subject == nil {
			t.Errorf("diagnostic without range: %s", d.Summary)
		}
	}
	if c.Plugins[1].Value != cty.NilVal {
		t.Error("a plugin with a bad config got a value")
	}
}

// Plugin configs written on one line still report their original place.
func TestDecodePluginConfigsOneLine(t *testing.T) {
	c, diags := Parse([]byte("\nplugin \"keystore\" \"vault\" { config { adress = \"x\" } }\n"), "one.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	pd := c.DecodePluginConfigs(func(string, string) (hcldec.Spec, error) {
		return &hcldec.ObjectSpec{"address": &hcldec.AttrSpec{Name: "address", Type: cty.String}}, nil
	})
	if len(pd) != 1 || pd[0].Subject.Start != (hcl.Pos{Line: 2, Column: 38, Byte: 38}) {
		t.Fatalf("diagnostics %v at %v", pd, pd[0].Subject)
	}
}

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{
		"0": 0, "30s": 30 * time.Second, "4h": 4 * time.Hour, "1d": 24 * time.Hour, "1w": 7 * 24 * time.Hour,
		"1h30m": 90 * time.Minute, "1.5h": 90 * time.Minute, "250ms": 250 * time.Millisecond, " 2m ": 2 * time.Minute,
		"1d12h": 36 * time.Hour,
	}
	for in, want := range good {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
		if err == nil {
			back, err := ParseDuration(FormatDuration(got))
			if err != nil || back != got {
				t.Errorf("FormatDuration(%v) = %q does not read back", got, FormatDuration(got))
			}
		}
	}
	for _, in := range []string{"", "30", "4 hours", "-5s", "1y", "h", "1..5h", "9999999999999d"} {
		if d, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want error", in, d)
		}
	}
	if s := FormatDuration(21*time.Hour + 36*time.Minute); s != "21h36m" {
		t.Errorf("FormatDuration = %s", s)
	}
}

func TestParseSize(t *testing.T) {
	good := map[string]uint64{"0": 0, "1000": 1000, "1K": 1024, "500M": 500 << 20, "1G": 1 << 30, "1g": 1 << 30,
		"2GiB": 2 << 30, "1GB": 1 << 30, "3T": 3 << 40, "10B": 10}
	for in, want := range good {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "1 gigabyte", "1X", "-1", "99999999999999999999", "17179869184T", "1i"} {
		if n, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want error", in, n)
		}
	}
}

func TestWeakAlgorithm(t *testing.T) {
	for in, want := range map[string]string{
		"aes128-sha1-modp2048": "sha1", "aes256gcm16-prfsha256-ke1_modp1024": "ke1_modp1024",
		"3des-sha256": "3des", "aes256gcm16-prfsha384-x25519": "",
	} {
		if got, _ := WeakAlgorithm(in); got != want {
			t.Errorf("WeakAlgorithm(%q) = %q, want %q", in, got, want)
		}
	}
}

// The proposal seam: pointing it at another parser (core/transform's) is
// what the daemon does; its errors become diagnostics at the element.
func TestProposalParserSeam(t *testing.T) {
	old := ParseIKEProposal
	defer func() { ParseIKEProposal = old }()
	ParseIKEProposal = func(s string) (transform.Proposal, error) {
		if s == "aes256gcm16-prfsha384-x25519-ke1_mlkem768" {
			return transform.Proposal{}, os.ErrInvalid
		}
		return old(s)
	}
	src, _ := os.ReadFile("testdata/good/contract.hcl")
	_, diags := Parse(src, "seam.hcl")
	if !diags.HasErrors() || diags[0].Subject.Start.Line != 14 || !strings.Contains(diags[0].Detail, "invalid argument") {
		t.Fatalf("diags = %v", diags)
	}
}

// Proposals come from core/transform: what the engine negotiates is what
// the configuration said, and it prints back the same way.
func TestProposalsFromTransform(t *testing.T) {
	c := load(t, "testdata/good/contract.hcl")
	conn := c.Connections[0]
	if got := conn.IKEProposals[0].String(); got != "aes256gcm16-prfsha384-x25519-ke1_mlkem768" {
		t.Errorf("IKE proposal prints as %q", got)
	}
	if conn.IKEProposals[0].Protocol != transform.ProtoIKE || conn.Children[0].ESPProposals[1].Protocol != transform.ProtoESP {
		t.Error("protocols")
	}
}

// README.md documents every block and attribute the decoder accepts.
func TestReadmeCoversSchema(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*hcl.BodySchema{rootSchema, daemonSchema, pluginSchema, connectionSchema, authSchema, childSchema} {
		for _, a := range s.Attributes {
			if !bytes.Contains(readme, []byte("| `"+a.Name+"`")) && !bytes.Contains(readme, []byte("| `"+a.Name+"` (")) {
				t.Errorf("README.md has no row for attribute %q", a.Name)
			}
		}
		for _, b := range s.Blocks {
			heading := map[string]string{"local": "## local and remote", "remote": "## local and remote", "config": "| `config { }` |"}[b.Type]
			if heading == "" {
				heading = "## " + b.Type
			}
			if !bytes.Contains(readme, []byte(heading)) {
				t.Errorf("README.md does not describe block %q (%q)", b.Type, heading)
			}
		}
	}
}

// Loading runs at start and on every reload.
func BenchmarkParseContract(b *testing.B) {
	src, err := os.ReadFile("testdata/good/contract.hcl")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, diags := Parse(src, "contract.hcl"); diags.HasErrors() {
			b.Fatal(diags)
		}
	}
}
