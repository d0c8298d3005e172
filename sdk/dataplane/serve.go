package dataplane

import (
	"github.com/hashicorp/go-plugin"

	"github.com/veil-ipsec/veil/sdk/base"
)

// Serve runs impl as a dataplane plugin; call it from the plugin's main.
func Serve(impl Dataplane) {
	plugin.Serve(ServeConfig(impl))
}

// ServeConfig is Serve's go-plugin configuration.
func ServeConfig(impl Dataplane) *plugin.ServeConfig {
	return &plugin.ServeConfig{
		HandshakeConfig:  base.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{ProtocolVersion: PluginSet(impl)},
		GRPCServer:       plugin.DefaultGRPCServer,
	}
}

// PluginSet is the go-plugin plugin set of a dataplane plugin; the host
// passes PluginSet(nil).
func PluginSet(impl Dataplane) plugin.PluginSet {
	return plugin.PluginSet{PluginName: &GRPCPlugin{Impl: impl}}
}
