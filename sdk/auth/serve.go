package auth

import (
	"github.com/hashicorp/go-plugin"

	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/internal/grpcopt"
)

// Serve runs impl as an auth plugin; call it from the plugin's main. It
// returns when the host ends the plugin.
func Serve(impl Authenticator) {
	plugin.Serve(ServeConfig(impl))
}

// ServeConfig is Serve's go-plugin configuration (for tests and hosts that
// embed plugins).
func ServeConfig(impl Authenticator) *plugin.ServeConfig {
	return &plugin.ServeConfig{
		HandshakeConfig:  base.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{ProtocolVersion: PluginSet(impl)},
		GRPCServer:       grpcopt.NewServer,
	}
}

// PluginSet is the go-plugin plugin set of an auth plugin; the host passes
// PluginSet(nil).
func PluginSet(impl Authenticator) plugin.PluginSet {
	return plugin.PluginSet{PluginName: &GRPCPlugin{Impl: impl}}
}
