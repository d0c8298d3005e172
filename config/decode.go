package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/core/transform"
	"github.com/veil-ipsec/veil/core/ts"
)

// LoadFile reads a configuration file, or every *.hcl file of a directory
// (merged, in name order; hidden files are skipped). The returned Config is never nil: its Files are
// there for WriteDiagnostics even when diags has errors, but its other
// fields are only to be used when !diags.HasErrors().
func LoadFile(path string) (*Config, hcl.Diagnostics) {
	fail := func(summary, detail string) (*Config, hcl.Diagnostics) {
		return &Config{Files: map[string]*hcl.File{}}, hcl.Diagnostics{{
			Severity: hcl.DiagError, Summary: summary, Detail: detail,
		}}
	}
	st, err := os.Stat(path)
	if err != nil {
		return fail("Cannot read configuration", err.Error())
	}
	names := []string{path}
	if st.IsDir() {
		all, _ := filepath.Glob(filepath.Join(path, "*.hcl"))
		names = nil
		for _, n := range all {
			// Hidden files are editor locks and swap files, not configuration.
			if !strings.HasPrefix(filepath.Base(n), ".") {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		if len(names) == 0 {
			return fail("No configuration files", fmt.Sprintf("The directory %s has no *.hcl files.", path))
		}
	}
	var srcs []source
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return fail("Cannot read configuration", err.Error())
		}
		srcs = append(srcs, source{n, b})
	}
	return parseSources(srcs)
}

// Parse reads a configuration from src; filename is used in diagnostics.
func Parse(src []byte, filename string) (*Config, hcl.Diagnostics) {
	return parseSources([]source{{filename, src}})
}

type source struct {
	name string
	src  []byte
}

func parseSources(srcs []source) (*Config, hcl.Diagnostics) {
	c := &Config{Files: map[string]*hcl.File{}, orig: map[string][]byte{}}
	var files []*hcl.File
	var diags hcl.Diagnostics
	for _, s := range srcs {
		f, d := hclsyntax.ParseConfig(s.src, s.name, hcl.InitialPos)
		if oneLineBlockError(d) {
			if fixed, ok := splitOneLineBlocks(s.src); ok {
				f, d = hclsyntax.ParseConfig(fixed, s.name, hcl.InitialPos)
				c.orig[s.name] = s.src
				if f != nil {
					f.Bytes = s.src // snippets show what the operator wrote
				}
			}
		}
		for _, diag := range d {
			if strings.Contains(diag.Detail, "single-line block definition") {
				diag.Detail = "HCL allows one attribute in a block written on one line, and no nested block. " +
					"Put each attribute on its own line:\n\n  local {\n    auth = \"pubkey\"\n    id   = \"host.example.com\"\n  }"
			}
		}
		diags = append(diags, d...)
		if f != nil {
			files = append(files, f)
			c.Files[s.name] = f
		}
	}
	if !diags.HasErrors() {
		// With syntax errors the structure is not trustworthy enough to decode.
		d := decoder{diags: &diags}
		d.decode(c, hcl.MergeFiles(files))
	}
	c.remapRanges(diags)
	sortDiagnostics(diags)
	return c, diags
}

func oneLineBlockError(diags hcl.Diagnostics) bool {
	for _, d := range diags {
		if strings.Contains(d.Detail, "single-line block definition") {
			return true
		}
	}
	return false
}

// sortDiagnostics orders diagnostics by file and position, so they read
// top to bottom like the configuration.
func sortDiagnostics(diags hcl.Diagnostics) {
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		switch {
		case a == nil || b == nil:
			return a == nil && b != nil
		case a.Filename != b.Filename:
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
}

// remapRanges puts the original lines and columns back into every range
// from a file that splitOneLineBlocks rewrote.
func (c *Config) remapRanges(diags hcl.Diagnostics) {
	if len(c.orig) == 0 {
		return
	}
	for _, d := range diags {
		remap(d.Subject, c.orig)
		remap(d.Context, c.orig)
	}
	remap(&c.Daemon.Range, c.orig)
	for i := range c.Plugins {
		remap(&c.Plugins[i].Range, c.orig)
		remap(&c.Plugins[i].ConfigRange, c.orig)
	}
	for i := range c.Connections {
		conn := &c.Connections[i]
		remap(&conn.Range, c.orig)
		remap(&conn.Local.Range, c.orig)
		remap(&conn.Remote.Range, c.orig)
		for j := range conn.Children {
			remap(&conn.Children[j].Range, c.orig)
		}
	}
}

var (
	rootSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
		{Type: "daemon"},
		{Type: "plugin", LabelNames: []string{"kind", "name"}},
		{Type: "connection", LabelNames: []string{"name"}},
	}}
	daemonSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "control_socket"}, {Name: "control_group"}, {Name: "listen"}, {Name: "ike_port"},
		{Name: "natt_port"}, {Name: "log_level"}, {Name: "log_levels"}, {Name: "log_format"},
		{Name: "metrics_listen"}, {Name: "cookie_threshold"},
		{Name: "retransmit_timeout"}, {Name: "retransmit_tries"}, {Name: "fragment_size"},
	}}
	pluginSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "path"}},
		Blocks:     []hcl.BlockHeaderSchema{{Type: "config"}},
	}
	connectionSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "version"}, {Name: "local_addrs"}, {Name: "remote_addrs"}, {Name: "local_port"},
			{Name: "remote_port"}, {Name: "ike_proposals"}, {Name: "proposals_prefer"},
			{Name: "rekey_time"}, {Name: "rand_time"}, {Name: "over_time"}, {Name: "life_time"},
			{Name: "reauth_time"}, {Name: "dpd_delay"}, {Name: "dpd_timeout"}, {Name: "dpd_action"},
			{Name: "mobike"}, {Name: "fragmentation"}, {Name: "encap"}, {Name: "send_cert"},
			{Name: "keyingtries"}, {Name: "vips"}, {Name: "ppk_id"}, {Name: "ppk"}, {Name: "ppk_required"},
		},
		Blocks: []hcl.BlockHeaderSchema{
			{Type: "local"}, {Type: "remote"}, {Type: "child", LabelNames: []string{"name"}},
		},
	}
	authSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "auth", Required: true}, {Name: "id"}, {Name: "psk"}, {Name: "certificate"}, {Name: "key"},
		{Name: "cacerts"}, {Name: "revocation"}, {Name: "eap_id"},
	}}
	childSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "mode"}, {Name: "esp_proposals"}, {Name: "local_ts"}, {Name: "remote_ts"},
		{Name: "start_action"}, {Name: "close_action"}, {Name: "rekey_time"}, {Name: "rand_time"},
		{Name: "life_time"}, {Name: "rekey_bytes"}, {Name: "life_bytes"}, {Name: "rekey_packets"},
		{Name: "life_packets"}, {Name: "replay_window"}, {Name: "dpd_action"}, {Name: "offload"},
		{Name: "mark"}, {Name: "if_id"}, {Name: "pools"}, {Name: "dns"},
	}}
)

// Plugin kinds the daemon hosts.
var pluginKinds = []string{"auth", "dataplane", "keystore"}

type decoder struct {
	diags *hcl.Diagnostics
}

func (d *decoder) add(diag *hcl.Diagnostic) { *d.diags = append(*d.diags, diag) }

// duplicate reports a second definition, pointing at it and at the first.
func (d *decoder) duplicate(what string, second, first hcl.Range) {
	d.add(&hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Duplicate " + what,
		Detail:   fmt.Sprintf("%s is already defined at %s. Names must be unique; rename or remove one.", what, pos(first)),
		Subject:  second.Ptr(),
	})
}

func (d *decoder) decode(c *Config, body hcl.Body) {
	top, diags := content(body, rootSchema, "a configuration file")
	*d.diags = append(*d.diags, diags...)
	if top == nil {
		return
	}
	var daemonSeen *hcl.Block
	seenPlugin := map[string]hcl.Range{}
	var dataplane *hcl.Block
	for _, b := range top.Blocks {
		if b.Type != "plugin" {
			continue
		}
		key := b.Labels[0] + " " + b.Labels[1]
		if first, dup := seenPlugin[key]; dup {
			d.duplicate(fmt.Sprintf("plugin %q %q", b.Labels[0], b.Labels[1]), b.DefRange, first)
			continue
		}
		seenPlugin[key] = b.DefRange
		if b.Labels[0] == "dataplane" {
			if dataplane != nil {
				d.add(&hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "More than one dataplane",
					Detail:   fmt.Sprintf("plugin \"dataplane\" %q is already chosen at %s; one dataplane installs every SA.", dataplane.Labels[1], pos(dataplane.DefRange)),
					Subject:  b.DefRange.Ptr(),
				})
				continue
			}
			dataplane = b
		}
		if p, ok := d.plugin(b); ok {
			c.Plugins = append(c.Plugins, p)
		}
	}
	keystores := map[string]bool{builtinKeystore: true}
	for _, p := range c.Plugins {
		if p.Kind == "keystore" {
			keystores[p.Name] = true
		}
	}
	c.Daemon = defaultDaemon()
	for _, b := range top.Blocks {
		if b.Type != "daemon" {
			continue
		}
		if daemonSeen != nil {
			d.duplicate("daemon block", b.DefRange, daemonSeen.DefRange)
			continue
		}
		daemonSeen = b
		d.daemon(&c.Daemon, b)
	}
	seenConn := map[string]hcl.Range{}
	for _, b := range top.Blocks {
		if b.Type != "connection" {
			continue
		}
		name := b.Labels[0]
		if first, dup := seenConn[name]; dup {
			d.duplicate(fmt.Sprintf("connection %q", name), b.LabelRanges[0], first)
			continue
		}
		seenConn[name] = b.LabelRanges[0]
		if !validName(name) {
			d.add(&hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid connection name",
				Detail:  fmt.Sprintf("%q: use letters, digits, '-', '_' and '.' (it is used on the command line and in metrics).", name),
				Subject: b.LabelRanges[0].Ptr()})
		}
		c.Connections = append(c.Connections, d.connection(b, &c.Daemon, keystores))
	}
}

// pos prints where a range starts as file:line:col.
func pos(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func defaultDaemon() Daemon {
	return Daemon{
		ControlSocket:     DefaultControlSocket,
		Listen:            []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()},
		IKEPort:           DefaultIKEPort,
		NATTPort:          DefaultNATTPort,
		LogLevel:          DefaultLogLevel,
		LogFormat:         DefaultLogFormat,
		CookieThreshold:   DefaultCookieThreshold,
		RetransmitTimeout: DefaultRetransmitTimeout,
		RetransmitTries:   DefaultRetransmitTries,
	}
}

var logLevels = []string{"debug", "info", "warn", "error"}

func (d *decoder) daemon(out *Daemon, b *hcl.Block) {
	c, diags := content(b.Body, daemonSchema, "the daemon block")
	*d.diags = append(*d.diags, diags...)
	a := &attrs{m: c.Attributes, diags: d.diags}
	out.Range = b.DefRange
	out.ControlSocket = a.str("control_socket", out.ControlSocket)
	if !filepath.IsAbs(out.ControlSocket) {
		a.errorf(a.rng("control_socket"), "Invalid value", "control_socket must be an absolute path, like %q.", DefaultControlSocket)
	}
	out.ControlGroup = a.str("control_group", "")
	if a.has("listen") {
		out.Listen = a.addrs("listen", true)
		if len(out.Listen) == 0 && !hasErrorsAt(d.diags, a.rng("listen")) {
			a.errorf(a.rng("listen"), "Invalid value", "listen needs at least one address; leave it out to listen on every address (\"0.0.0.0\", \"::\").")
		}
	}
	out.IKEPort = uint16(a.integer("ike_port", DefaultIKEPort, 1, 65535))
	out.NATTPort = uint16(a.integer("natt_port", DefaultNATTPort, 1, 65535))
	if out.IKEPort == out.NATTPort {
		rng := a.rng("natt_port")
		if !a.has("natt_port") {
			rng = a.rng("ike_port")
		}
		a.errorf(rng, "Invalid value", "natt_port must differ from ike_port (%d).", out.IKEPort)
	}
	out.LogLevel = a.oneOf("log_level", DefaultLogLevel, logLevels...)
	if m, ok := a.stringMap("log_levels"); ok {
		out.LogLevels = map[string]string{}
		for sub, lv := range m {
			if !contains(logLevels, lv) {
				a.errorf(a.rng("log_levels"), "Invalid value", "log_levels: the level for %q must be one of %s; got %q.", sub, quoteList(logLevels), lv)
				continue
			}
			out.LogLevels[sub] = lv
		}
	}
	out.LogFormat = a.oneOf("log_format", DefaultLogFormat, "text", "json")
	if s := a.str("metrics_listen", ""); s != "" {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			a.errorf(a.rng("metrics_listen"), "Invalid value", "metrics_listen must be an IP address and port, like \"127.0.0.1:9750\" or \"[::1]:9750\"; got %q.", s)
		} else {
			out.MetricsListen = ap
		}
	}
	out.CookieThreshold = int(a.integer("cookie_threshold", DefaultCookieThreshold, 0, 1<<20))
	out.RetransmitTimeout = a.duration("retransmit_timeout", DefaultRetransmitTimeout)
	if out.RetransmitTimeout <= 0 {
		a.errorf(a.rng("retransmit_timeout"), "Invalid value", "retransmit_timeout must be positive.")
		out.RetransmitTimeout = DefaultRetransmitTimeout
	}
	out.RetransmitTries = int(a.integer("retransmit_tries", DefaultRetransmitTries, 1, 20))
	out.FragmentSize = int(a.integer("fragment_size", 0, 0, 65535))
	if out.FragmentSize != 0 && out.FragmentSize < MinFragmentSize {
		a.errorf(a.rng("fragment_size"), "Invalid value", "fragment_size must be at least %d (a 576-byte IPv4 datagram less its IP and UDP headers), or 0 for the default.", MinFragmentSize)
		out.FragmentSize = 0
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func hasErrorsAt(diags *hcl.Diagnostics, rng hcl.Range) bool {
	for _, d := range *diags {
		if d.Subject != nil && d.Subject.Overlaps(rng) {
			return true
		}
	}
	return false
}

func (d *decoder) plugin(b *hcl.Block) (Plugin, bool) {
	p := Plugin{Kind: b.Labels[0], Name: b.Labels[1], Range: b.DefRange, Body: hcl.EmptyBody()}
	ok := true
	if !contains(pluginKinds, p.Kind) {
		d.add(&hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown plugin kind",
			Detail:  fmt.Sprintf("plugin kind %q: must be %s.", p.Kind, quoteList(pluginKinds)),
			Subject: b.LabelRanges[0].Ptr()})
		ok = false
	}
	if !validName(p.Name) {
		d.add(&hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid plugin name",
			Detail: fmt.Sprintf("%q: use letters, digits, '-', '_' and '.'.", p.Name), Subject: b.LabelRanges[1].Ptr()})
		ok = false
	}
	c, diags := content(b.Body, pluginSchema, fmt.Sprintf("plugin %q %q", p.Kind, p.Name))
	*d.diags = append(*d.diags, diags...)
	a := &attrs{m: c.Attributes, diags: d.diags}
	p.Path = a.str("path", "")
	if p.Path != "" && !filepath.IsAbs(p.Path) {
		a.errorf(a.rng("path"), "Invalid value", "path must be the absolute path of the plugin executable.")
	}
	for i, cb := range c.Blocks {
		if i > 0 {
			d.duplicate("config block", cb.DefRange, c.Blocks[0].DefRange)
			continue
		}
		p.Body = cb.Body
		p.ConfigRange = cb.DefRange
	}
	return p, ok
}

var authMethods = []string{"psk", "pubkey", "eap-mschapv2", "eap-tls", "eap-md5", "eap"}

func (d *decoder) connection(b *hcl.Block, dm *Daemon, keystores map[string]bool) Connection {
	conn := Connection{Name: b.Labels[0], Range: b.DefRange}
	c, diags := content(b.Body, connectionSchema, fmt.Sprintf("connection %q", conn.Name))
	*d.diags = append(*d.diags, diags...)
	a := &attrs{m: c.Attributes, diags: d.diags}

	conn.Version = int(a.integer("version", 2, 0, 255))
	if conn.Version != 2 {
		a.errorf(a.rng("version"), "Unsupported IKE version", "Veil speaks IKEv2 only (version = 2); IKEv1 is obsolete (RFC 9395).")
	}
	conn.LocalAddrs = a.addrs("local_addrs", false)
	conn.RemoteAddrs = a.addrs("remote_addrs", false)
	checkListening(a, dm)
	conn.LocalPort = uint16(a.integer("local_port", int64(dm.IKEPort), 1, 65535))
	if conn.LocalPort != dm.IKEPort && conn.LocalPort != dm.NATTPort {
		a.errorf(a.rng("local_port"), "Port not listened on",
			"local_port %d: veild has IKE sockets on ike_port %d and natt_port %d only (daemon block).", conn.LocalPort, dm.IKEPort, dm.NATTPort)
	}
	conn.RemotePort = uint16(a.integer("remote_port", DefaultIKEPort, 1, 65535))
	conn.IKEProposals = d.proposals(a, "ike_proposals", true)
	conn.ProposalsPrefer = a.oneOf("proposals_prefer", "responder", "responder", "initiator")

	conn.RekeyTime, conn.RandTime, conn.LifeTime = d.lifetimes(a, DefaultIKELifeTime, true)
	conn.ReauthTime = a.duration("reauth_time", 0)
	conn.DPDDelay = a.duration("dpd_delay", 0)
	conn.DPDTimeout = a.duration("dpd_timeout", DefaultDPDTimeoutFactor*conn.DPDDelay)
	if a.has("dpd_timeout") && !a.has("dpd_delay") {
		a.errorf(a.rng("dpd_timeout"), "dpd_timeout without dpd_delay", "Dead peer detection is off unless dpd_delay is set; set dpd_delay (e.g. \"30s\") or remove dpd_timeout.")
	}
	conn.DPDAction = a.oneOf("dpd_action", "clear", "clear", "restart", "trap")
	conn.MOBIKE = a.boolean("mobike", false)
	conn.Fragmentation = a.boolean("fragmentation", true)
	conn.Encap = a.boolean("encap", false)
	conn.SendCert = a.oneOf("send_cert", "ifasked", "always", "ifasked", "never")
	conn.KeyingTries = int(a.integer("keyingtries", DefaultKeyingTries, 0, 1<<20))
	conn.VIPs = a.addrs("vips", true)
	conn.PPKID = a.str("ppk_id", "")
	if a.has("ppk") {
		conn.PPK = a.str("ppk", "")
		checkRef(a, "ppk", listItem{conn.PPK, a.rng("ppk")}, keystores)
	}
	conn.PPKRequired = a.boolean("ppk_required", false)
	if (conn.PPKID == "") != (conn.PPK == "") {
		name := "ppk_id"
		if conn.PPK == "" {
			name = "ppk"
		}
		a.errorf(a.rng(firstSet(a, "ppk_id", "ppk")), "Incomplete PPK", "A post-quantum preshared key needs both ppk_id (its identity, as the peer knows it) and ppk (a reference to the key); %s is missing.", name)
	}
	if conn.PPKRequired && conn.PPK == "" {
		a.errorf(a.rng("ppk_required"), "ppk_required without a PPK", "Set ppk_id and ppk, or remove ppk_required.")
	}

	var local, remote *hcl.Block
	seenChild := map[string]hcl.Range{}
	for _, cb := range c.Blocks {
		switch cb.Type {
		case "local", "remote":
			first := &local
			if cb.Type == "remote" {
				first = &remote
			}
			if *first != nil {
				d.duplicate(cb.Type+" block", cb.DefRange, (*first).DefRange)
				continue
			}
			*first = cb
		case "child":
			name := cb.Labels[0]
			if first, dup := seenChild[name]; dup {
				d.duplicate(fmt.Sprintf("child %q in connection %q", name, conn.Name), cb.LabelRanges[0], first)
				continue
			}
			seenChild[name] = cb.LabelRanges[0]
			if !validName(name) {
				d.add(&hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid child name",
					Detail:  fmt.Sprintf("%q: use letters, digits, '-', '_' and '.'.", name),
					Subject: cb.LabelRanges[0].Ptr()})
			}
			conn.Children = append(conn.Children, d.child(cb, &conn))
		}
	}
	for _, side := range []struct {
		name  string
		block *hcl.Block
		out   *Auth
	}{{"local", local, &conn.Local}, {"remote", remote, &conn.Remote}} {
		if side.block == nil {
			d.add(&hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Missing " + side.name + " block",
				Detail: fmt.Sprintf("connection %q needs a %s { auth = ... } block saying how the %s side authenticates.",
					conn.Name, side.name, side.name),
				Subject: b.DefRange.Ptr()})
			continue
		}
		*side.out = d.auth(side.block, side.name == "local", keystores)
	}
	d.checkConnection(a, &conn)
	return conn
}

// lifetimes reads rekey_time, rand_time, over_time/life_time. With none
// set, the SA lives def and rekeys DefaultMarginPercent earlier; rand_time
// defaults to the same fraction of rekey_time.
func (d *decoder) lifetimes(a *attrs, def time.Duration, ike bool) (rekey, rnd, life time.Duration) {
	margin := func(x time.Duration) time.Duration { return x * DefaultMarginPercent / 100 }
	rekey = a.duration("rekey_time", 0)
	life = a.duration("life_time", 0)
	over := time.Duration(0)
	if ike {
		over = a.duration("over_time", 0)
		if a.has("over_time") && a.has("life_time") {
			a.errorf(a.rng("over_time"), "Conflicting lifetimes", "Set life_time (the hard limit) or over_time (how long after rekey_time the SA may live), not both.")
		}
	}
	switch {
	case !a.has("rekey_time") && !a.has("life_time") && over == 0:
		life = def
		rekey = life - margin(life)
	case !a.has("rekey_time"):
		if life == 0 {
			life = def
		}
		rekey = life - margin(life)
	case over > 0:
		life = rekey + over
	case !a.has("life_time"):
		life = rekey + margin(rekey)
	}
	rnd = a.duration("rand_time", margin(rekey))
	if rekey > 0 && life > 0 && rekey >= life {
		a.errorf(a.rng("rekey_time"), "Rekey after expiry", "rekey_time (%s) must be shorter than life_time (%s), or the SA expires before it is rekeyed.",
			FormatDuration(rekey), FormatDuration(life))
	}
	if rnd >= rekey && rekey > 0 && a.has("rand_time") {
		a.errorf(a.rng("rand_time"), "Invalid value", "rand_time (%s) must be shorter than rekey_time (%s).", FormatDuration(rnd), FormatDuration(rekey))
	}
	return rekey, rnd, life
}

func (d *decoder) proposals(a *attrs, name string, isIKE bool) []transform.Proposal {
	if !a.has(name) {
		if isIKE {
			return transform.DefaultIKEProposals()
		}
		return transform.DefaultESPProposals()
	}
	items := a.list(name)
	if len(items) == 0 && !hasErrorsAt(a.diags, a.rng(name)) {
		a.errorf(a.rng(name), "Invalid value", "%s is empty; leave it out for the defaults.", name)
	}
	parse, kind, example := ParseESPProposal, "ESP", "aes256gcm16"
	if isIKE {
		parse, kind, example = ParseIKEProposal, "IKE", "aes256gcm16-prfsha384-x25519"
	}
	var out []transform.Proposal
	for _, it := range items {
		if alg, why := WeakAlgorithm(it.s); alg != "" {
			a.errorf(it.rng, "Weak algorithm", "%q uses %s: %s. Use AEAD (aes256gcm16, chacha20poly1305) with sha2 PRFs and x25519/ecp256 or larger, e.g. %q.",
				it.s, alg, why, example)
			continue
		}
		if !isIKE && strings.Contains("-"+strings.ToLower(it.s), "-prf") {
			a.errorf(it.rng, "Invalid proposal", "ESP proposal %q: ESP has no PRF; remove the prf... keyword.", it.s)
			continue
		}
		p, err := parse(it.s)
		if err != nil {
			a.errorf(it.rng, "Invalid proposal", "%s %v. Proposals are algorithm keywords joined by '-', like %q (config/README.md lists them).",
				kind, err, example)
			continue
		}
		out = append(out, p)
	}
	return out
}

func (d *decoder) auth(b *hcl.Block, local bool, keystores map[string]bool) Auth {
	side := map[bool]string{true: "local", false: "remote"}[local]
	c, diags := content(b.Body, authSchema, "the "+side+" block")
	*d.diags = append(*d.diags, diags...)
	a := &attrs{m: c.Attributes, diags: d.diags}
	out := Auth{Range: b.DefRange}
	if a.has("auth") {
		out.Auth = a.oneOf("auth", "", authMethods...)
	}
	out.ID = a.str("id", "")
	out.EAPID = a.str("eap_id", "")
	out.Certificate = a.str("certificate", "")
	out.CACerts = a.strings("cacerts")
	out.Revocation = a.oneOf("revocation", "prefer", "off", "prefer", "require")
	for _, name := range []string{"certificate"} {
		if s := a.str(name, ""); s != "" && !filepath.IsAbs(s) && !strings.HasPrefix(s, "pkcs11:") {
			a.errorf(a.rng(name), "Invalid value", "%s must be an absolute path (or a pkcs11: URI).", name)
		}
	}
	for _, it := range a.list("cacerts") {
		if !filepath.IsAbs(it.s) {
			a.errorf(it.rng, "Invalid value", "cacerts entries must be absolute paths of PEM files.")
		}
	}
	refAttr := func(name string) string {
		if !a.has(name) {
			return ""
		}
		s := a.str(name, "")
		checkRef(a, name, listItem{s, a.rng(name)}, keystores)
		return s
	}
	out.PSK = refAttr("psk")
	out.Key = refAttr("key")

	need := func(name, why string) {
		if !a.has(name) {
			*d.diags = append(*d.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Missing key reference",
				Detail: fmt.Sprintf("%s auth = %q needs %s = \"...\": %s", side, out.Auth, name, why), Subject: a.rng("auth").Ptr()})
		}
	}
	unused := func(name string) {
		if a.has(name) {
			a.warnf(a.rng(name), "Attribute not used", "%s is not used with %s auth = %q.", name, side, out.Auth)
		}
	}
	switch out.Auth {
	case "psk":
		need("psk", `a reference to the pre-shared key, like "file:/etc/veil/peer.psk".`)
		unused("key")
	case "pubkey":
		if local {
			need("key", `a reference to the private key, like "file:/etc/veil/host.key", "vault:transit/host" or "pkcs11:...".`)
		} else {
			unused("key")
		}
		unused("psk")
	case "eap-mschapv2", "eap-md5":
		if local {
			need("psk", "a reference to the EAP password.")
		}
	case "eap-tls":
		if local {
			need("key", "a reference to the client key.")
			need("certificate", "the client certificate.")
		}
	}
	return out
}

var actions = []string{"none", "trap", "start"}

func (d *decoder) child(b *hcl.Block, conn *Connection) Child {
	ch := Child{Name: b.Labels[0], Range: b.DefRange}
	c, diags := content(b.Body, childSchema, fmt.Sprintf("child %q", ch.Name))
	*d.diags = append(*d.diags, diags...)
	a := &attrs{m: c.Attributes, diags: d.diags}

	switch mode := a.str("mode", "transport"); mode {
	case "transport":
		ch.Mode = provider.Transport
	case "tunnel":
		ch.Mode = provider.Tunnel
	default:
		a.errorf(a.rng("mode"), "Invalid mode", "mode must be \"transport\" (host to host, the default) or \"tunnel\" (networks, remote access); got %q.", mode)
	}
	ch.ESPProposals = d.proposals(a, "esp_proposals", false)
	var localRanges, remoteRanges []hcl.Range
	ch.LocalTS, localRanges = d.selectors(a, "local_ts")
	ch.RemoteTS, remoteRanges = d.selectors(a, "remote_ts")
	ch.StartAction = a.oneOf("start_action", "none", actions...)
	ch.CloseAction = a.oneOf("close_action", "none", actions...)
	ch.RekeyTime, ch.RandTime, ch.LifeTime = d.lifetimes(a, DefaultChildLifeTime, false)
	ch.RekeyBytes = a.size("rekey_bytes", 0)
	ch.LifeBytes = a.size("life_bytes", ch.RekeyBytes+ch.RekeyBytes*DefaultMarginPercent/100)
	ch.RekeyPackets = a.size("rekey_packets", 0)
	ch.LifePackets = a.size("life_packets", ch.RekeyPackets+ch.RekeyPackets*DefaultMarginPercent/100)
	if ch.RekeyBytes > 0 && ch.LifeBytes <= ch.RekeyBytes {
		a.errorf(a.rng("life_bytes"), "Rekey after expiry", "life_bytes must be larger than rekey_bytes.")
	}
	if ch.RekeyPackets > 0 && ch.LifePackets <= ch.RekeyPackets {
		a.errorf(a.rng("life_packets"), "Rekey after expiry", "life_packets must be larger than rekey_packets.")
	}
	ch.ReplayWindow = uint32(a.integer("replay_window", DefaultReplayWindow, 0, 1<<20))
	if a.has("replay_window") && ch.ReplayWindow == 0 {
		a.warnf(a.rng("replay_window"), "Replay protection off", "replay_window = 0 turns off anti-replay protection.")
	}
	if a.has("dpd_action") {
		ch.DPDAction = a.oneOf("dpd_action", "", "clear", "restart", "trap")
	}
	ch.Offload = a.oneOf("offload", "off", "off", "preferred", "required")
	ch.Mark = a.uint32Value("mark")
	ch.IfID = a.uint32Value("if_id")
	if conn.RemoteAddrs == nil && (ch.StartAction != "none" || ch.CloseAction != "none") {
		name := "start_action"
		if ch.StartAction == "none" {
			name = "close_action"
		}
		a.errorf(a.rng(name), "Nothing to initiate to", "%s = %q initiates the connection, but connection %q has no remote_addrs. "+
			"Set remote_addrs, or leave %s out to wait for the peer.", name, a.str(name, ""), conn.Name, name)
	}
	if ch.Mode == provider.Transport {
		checkTransportTS(a, "local_ts", ch.LocalTS, localRanges, conn.LocalAddrs, "local_addrs")
		checkTransportTS(a, "remote_ts", ch.RemoteTS, remoteRanges, conn.RemoteAddrs, "remote_addrs")
		if a.has("pools") {
			a.errorf(a.rng("pools"), "Pools need tunnel mode", "Virtual IP pools hand clients inner addresses; that needs mode = \"tunnel\".")
		}
	}
	for _, it := range a.list("pools") {
		p, err := netip.ParsePrefix(it.s)
		if err != nil {
			a.errorf(it.rng, "Invalid pool", "pools entries are address prefixes like \"10.99.0.0/24\"; got %q.", it.s)
			continue
		}
		ch.Pools = append(ch.Pools, p.Masked())
	}
	ch.DNS = a.addrs("dns", false)
	if len(ch.DNS) > 0 && len(ch.Pools) == 0 {
		a.errorf(a.rng("dns"), "DNS servers without pools", "dns lists the DNS servers handed to clients together with a pool address; add pools = [\"10.99.0.0/24\"] to this child, or remove dns.")
	}
	return ch
}

// selectors reads a list of traffic selectors and the range of each.
func (d *decoder) selectors(a *attrs, name string) ([]provider.TrafficSelector, []hcl.Range) {
	if !a.has(name) {
		return []provider.TrafficSelector{ts.Dynamic()}, []hcl.Range{{}}
	}
	items := a.list(name)
	if len(items) == 0 && !hasErrorsAt(a.diags, a.rng(name)) {
		a.errorf(a.rng(name), "Invalid value", "%s is empty; leave it out for \"dynamic\" (this side's IKE address).", name)
	}
	var out []provider.TrafficSelector
	var ranges []hcl.Range
	for _, it := range items {
		t, err := ts.Parse(it.s)
		if err != nil {
			a.errorf(it.rng, "Invalid traffic selector", "%v. Examples: \"10.0.0.1/32[tcp/5432]\", \"10.0.0.0/24\", \"2001:db8::/64[udp]\", \"10.0.0.1-10.0.0.9\", \"dynamic\".", err)
			continue
		}
		out = append(out, t)
		ranges = append(ranges, it.rng)
	}
	return out, ranges
}

// checkTransportTS enforces what transport mode means: the SA protects the
// hosts' own traffic, so each selector is one address, and that address is
// one of the connection's IKE addresses when those are given.
func checkTransportTS(a *attrs, name string, sels []provider.TrafficSelector, ranges []hcl.Range, ikeAddrs []netip.Addr, addrsName string) {
	for i, t := range sels {
		if ts.IsDynamic(t) {
			continue
		}
		if t.Start != t.End {
			example := t.Start
			if len(ikeAddrs) > 0 {
				example = ikeAddrs[0]
			}
			a.errorf(ranges[i], "Traffic selector too wide for transport mode",
				"%s %s covers more than one address, but a transport-mode SA only carries traffic of the hosts themselves. "+
					"Use a single address (like %s) or mode = \"tunnel\" for networks.", name, ts.Format(t), ts.Format(ts.FromAddr(example)))
			continue
		}
		if len(ikeAddrs) > 0 && !slices.Contains(ikeAddrs, t.Start) {
			a.errorf(ranges[i], "Traffic selector not on this connection's hosts",
				"In transport mode %s must be the IKE address in %s (%s); %s is not. Use \"dynamic\" or the address itself.",
				name, addrsName, joinAddrs(ikeAddrs), t.Start)
		}
	}
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, x := range as {
		s[i] = x.String()
	}
	return strings.Join(s, ", ")
}

// checkConnection checks what involves several attributes or blocks.
func (d *decoder) checkConnection(a *attrs, conn *Connection) {
	if len(conn.LocalAddrs) > 0 && len(conn.RemoteAddrs) > 0 {
		common := false
		for _, l := range conn.LocalAddrs {
			for _, r := range conn.RemoteAddrs {
				common = common || l.Is4() == r.Is4()
			}
		}
		if !common {
			a.errorf(a.rng("remote_addrs"), "No common address family", "local_addrs and remote_addrs have no IPv4 or IPv6 in common, so no IKE SA can be set up.")
		}
	}
	if conn.MOBIKE {
		for _, ch := range conn.Children {
			if ch.Mode == provider.Transport {
				a.warnf(a.rng("mobike"), "MOBIKE with transport mode",
					"MOBIKE (RFC 4555) moves tunnel-mode SAs; child %q is in transport mode, whose selectors name the old addresses.", ch.Name)
				break
			}
		}
	}
}

// checkListening reports local_addrs that no IKE socket listens on.
func checkListening(a *attrs, dm *Daemon) {
	any4, any6 := false, false
	for _, l := range dm.Listen {
		any4 = any4 || l == netip.IPv4Unspecified()
		any6 = any6 || l == netip.IPv6Unspecified()
	}
	for _, it := range a.list("local_addrs") {
		ip, err := netip.ParseAddr(it.s)
		if err != nil {
			continue // reported by addrs
		}
		ip = ip.Unmap()
		if ip.Is4() && any4 || ip.Is6() && any6 || slices.Contains(dm.Listen, ip) {
			continue
		}
		a.errorf(it.rng, "Address not listened on",
			"%s is in local_addrs, but the daemon block's listen (%s) has no socket for it. Add it to listen.", ip, joinAddrs(dm.Listen))
	}
}

// firstSet returns the first of names that is set (or the last name).
func firstSet(a *attrs, names ...string) string {
	for _, n := range names {
		if a.has(n) {
			return n
		}
	}
	return names[len(names)-1]
}
