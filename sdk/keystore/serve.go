package keystore

import (
	"github.com/hashicorp/go-plugin"

	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/internal/grpcopt"
)

// Serve runs impl as a keystore plugin; call it from the plugin's main.
func Serve(impl Store) {
	plugin.Serve(ServeConfig(impl))
}

// ServeConfig is Serve's go-plugin configuration.
func ServeConfig(impl Store) *plugin.ServeConfig {
	return &plugin.ServeConfig{
		HandshakeConfig:  base.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{ProtocolVersion: PluginSet(impl)},
		GRPCServer:       grpcopt.NewServer,
	}
}

// PluginSet is the go-plugin plugin set of a keystore plugin; the host
// passes PluginSet(nil).
func PluginSet(impl Store) plugin.PluginSet {
	return plugin.PluginSet{PluginName: &GRPCPlugin{Impl: impl}}
}
