// Package config reads Veil's HCL configuration: one file, or every *.hcl
// file of a directory merged into one. Problems come back as hcl.Diagnostics,
// all of them at once, each with the source range it is about, so
// WriteDiagnostics can show file:line:col and the offending line.
//
// Plugin blocks keep their config { ... } body undecoded (hcl.Body): each
// plugin supplies its own schema later and DecodePluginConfigs decodes it
// with the same kind of diagnostics (HCL's two-stage "partial decoding").
//
// README.md in this directory is the operator's reference for every block
// and attribute.
package config

import (
	"net/netip"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/core/transform"
)

// Defaults that README.md documents.
const (
	DefaultControlSocket   = "/run/veil/veil.sock"
	DefaultIKEPort         = 500
	DefaultNATTPort        = 4500
	DefaultLogLevel        = "info"
	DefaultLogFormat       = "text"
	DefaultCookieThreshold = 30
	// Requests are resent after RetransmitTimeout x 1.8^n, RetransmitTries
	// sends in all (strongSwan's defaults): a silent peer is given up on
	// after about 90 seconds.
	DefaultRetransmitTimeout = 4 * time.Second
	DefaultRetransmitTries   = 5
	// MinFragmentSize is the smallest IKE fragment size accepted: every
	// IPv4 host takes a 576-byte datagram (RFC 791), less 28 header bytes.
	MinFragmentSize  = 548
	DefaultDataplane = "xfrm"

	DefaultIKELifeTime   = 24 * time.Hour
	DefaultChildLifeTime = time.Hour
	// Rekeying starts this fraction of the lifetime early, and the same
	// fraction of the rekey time is the random jitter subtracted from it
	// (so two peers rarely rekey at once).
	DefaultMarginPercent = 10
	// dpd_timeout defaults to this many dpd_delay intervals.
	DefaultDPDTimeoutFactor = 5
	DefaultReplayWindow     = 32
	DefaultKeyingTries      = 1
)

// Config is a whole decoded configuration.
type Config struct {
	Daemon      Daemon
	Plugins     []Plugin
	Connections []Connection
	// Files are the parsed source files by name, for WriteDiagnostics.
	Files map[string]*hcl.File

	// orig holds the source of files that splitOneLineBlocks rewrote.
	orig map[string][]byte
}

// Daemon is the daemon block.
type Daemon struct {
	ControlSocket   string
	ControlGroup    string // empty: socket mode 0600; else 0660 with this group
	Listen          []netip.Addr
	IKEPort         uint16
	NATTPort        uint16
	LogLevel        string
	LogLevels       map[string]string // subsystem -> level
	LogFormat       string            // "text" or "json"
	MetricsListen   netip.AddrPort    // invalid: no metrics endpoint
	CookieThreshold int               // half-open IKE SAs before cookies; 0: always
	// RetransmitTimeout is the wait before the first resend of a request;
	// each further wait is 1.8 times longer; RetransmitTries sends in all.
	RetransmitTimeout time.Duration
	RetransmitTries   int
	// FragmentSize is the largest IKE datagram sent unfragmented, and the
	// size of RFC 7383 fragments (0: the engine's default, 1228).
	FragmentSize int
	Range        hcl.Range // the block header; zero when absent
}

// Plugin is one plugin "kind" "name" block.
type Plugin struct {
	Kind string // "auth", "keystore", "dataplane"
	Name string
	// Path is the plugin executable; empty means the bundled plugin.
	Path string
	// Body is the config { ... } block, undecoded until DecodePluginConfigs;
	// an empty body when the block has no config.
	Body hcl.Body
	// Value is the config decoded with the plugin's schema (cty.NilVal
	// before DecodePluginConfigs).
	Value       cty.Value
	Range       hcl.Range // the block header
	ConfigRange hcl.Range // the config block header, zero when absent
}

// Connection is one connection "name" block: an IKE SA and its children.
type Connection struct {
	Name            string
	Version         int
	LocalAddrs      []netip.Addr // empty: any local address
	RemoteAddrs     []netip.Addr // empty: any peer (responder only)
	LocalPort       uint16
	RemotePort      uint16
	IKEProposals    []transform.Proposal // in preference order
	ProposalsPrefer string               // "responder" (our order) or "initiator"
	RekeyTime       time.Duration
	RandTime        time.Duration
	LifeTime        time.Duration
	ReauthTime      time.Duration // 0: never
	DPDDelay        time.Duration // 0: no dead peer detection
	DPDTimeout      time.Duration
	DPDAction       string // "clear", "restart", "trap"
	MOBIKE          bool
	Fragmentation   bool
	Encap           bool
	SendCert        string // "always", "ifasked", "never"
	// VIPs asks the peer for virtual IPs through a configuration payload
	// (remote access client): 0.0.0.0 and :: mean "any address you give".
	VIPs []netip.Addr
	// Post-quantum preshared key (RFC 8784): its identity, a key reference,
	// and whether the SA must fail without it.
	PPKID       string
	PPK         string
	PPKRequired bool
	KeyingTries int // 0: forever
	Local       Auth
	Remote      Auth
	Children    []Child
	Range       hcl.Range
}

// Auth is a local or remote block.
type Auth struct {
	Auth        string // "psk", "pubkey", "eap-mschapv2", "eap-tls", "eap-md5", "eap"
	ID          string
	PSK         string // a key reference, never the secret
	Certificate string
	Key         string // a key reference
	CACerts     []string
	Revocation  string // "off", "prefer", "require"
	EAPID       string
	Range       hcl.Range
}

// Child is one child "name" block: a Child SA.
type Child struct {
	Name         string
	Mode         provider.Mode
	ESPProposals []transform.Proposal
	LocalTS      []provider.TrafficSelector // ts.IsDynamic: the local IKE address
	RemoteTS     []provider.TrafficSelector
	StartAction  string // "none", "trap", "start"
	CloseAction  string // "none", "trap", "start"
	RekeyTime    time.Duration
	RandTime     time.Duration
	LifeTime     time.Duration
	RekeyBytes   uint64
	LifeBytes    uint64
	RekeyPackets uint64
	LifePackets  uint64
	ReplayWindow uint32
	DPDAction    string // empty: the connection's
	Offload      string // "off", "preferred", "required"
	Mark         uint32
	IfID         uint32
	Pools        []netip.Prefix
	DNS          []netip.Addr // handed to clients with a pool address
	Range        hcl.Range
}

// Dataplane is the name of the dataplane plugin in use: the one a
// plugin "dataplane" block names, else DefaultDataplane.
func (c *Config) Dataplane() string {
	for _, p := range c.Plugins {
		if p.Kind == "dataplane" {
			return p.Name
		}
	}
	return DefaultDataplane
}

// Connection returns the connection with that name, or nil.
func (c *Config) Connection(name string) *Connection {
	for i := range c.Connections {
		if c.Connections[i].Name == name {
			return &c.Connections[i]
		}
	}
	return nil
}
