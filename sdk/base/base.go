// Package base is what every Veil plugin has whatever its kind: who it is
// (Info), the HCL config it accepts (ConfigSchema), taking that config
// (Configure) and saying whether it can work (Health). The kind packages
// (sdk/auth, sdk/keystore, sdk/dataplane) embed Plugin in their interfaces.
package base

import (
	"context"

	"github.com/hashicorp/go-plugin"
)

// ProtocolVersion is the plugin protocol version this SDK speaks. A host and
// a plugin must agree on it; go-plugin negotiates it at start-up and a
// mismatch is an error naming both versions.
const ProtocolVersion = 1

// Plugin kinds.
const (
	KindAuth      = "auth"
	KindKeystore  = "keystore"
	KindDataplane = "dataplane"
)

// Handshake is go-plugin's handshake for Veil plugins. The magic cookie only
// stops a plugin binary from being run by hand by mistake; it is not a
// secret and not a security measure (the channel's AutoMTLS is).
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "VEIL_PLUGIN",
	MagicCookieValue: "c2f8f3a0-veil-ipsec-plugin",
}

// Info names a plugin.
type Info struct {
	Name    string // e.g. "psk"
	Kind    string // KindAuth, KindKeystore or KindDataplane
	Version string // the plugin's own version, free form
}

// Attribute is one attribute of a plugin's config block. Type is a cty type
// expression as written in HCL: "string", "number", "bool", "list(string)",
// "map(string)", "object({a=string})".
type Attribute struct {
	Name        string
	Type        string
	Required    bool
	Description string
}

// Block is a nested block; Multiple lets it repeat (decoded as a list).
type Block struct {
	Name        string
	Body        Schema
	Multiple    bool
	Description string
}

// Schema is a plugin's config block: what the operator may write inside
// plugin "kind" "name" { config { ... } }.
type Schema struct {
	Attributes []Attribute
	Blocks     []Block
}

// Plugin is the part every plugin implements.
type Plugin interface {
	Info() Info
	ConfigSchema() Schema
	// Configure receives the config block decoded with ConfigSchema, as the
	// JSON form of the cty value: an object whose keys are the attribute and
	// block names (absent optional attributes are null). It is called once
	// after start and again after every restart, before any other call.
	Configure(ctx context.Context, configJSON []byte) error
	// Health returns nil when the plugin can serve calls.
	Health(ctx context.Context) error
}
