package dataplane

import (
	"github.com/hashicorp/go-plugin"

	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/internal/grpcopt"
)

// Serve runs impl as a dataplane plugin; call it from the plugin's main.
func Serve(impl Dataplane) {
	plugin.Serve(ServeConfig(impl))
}

// ServeConfig is Serve's go-plugin configuration: every protocol version
// in ProtocolVersions, so older hosts keep working.
func ServeConfig(impl Dataplane) *plugin.ServeConfig {
	sets := map[int]plugin.PluginSet{}
	for _, v := range ProtocolVersions {
		sets[v] = PluginSetVersion(impl, v)
	}
	return &plugin.ServeConfig{
		HandshakeConfig:  base.Handshake,
		VersionedPlugins: sets,
		GRPCServer:       grpcopt.NewServer,
	}
}

// PluginSet is the go-plugin plugin set of a dataplane plugin at
// ProtocolVersion; the host passes PluginSet(nil).
func PluginSet(impl Dataplane) plugin.PluginSet {
	return PluginSetVersion(impl, ProtocolVersion)
}

// PluginSetVersion is the plugin set for protocol version v: the host's
// client uses the stream only from version 2 on.
func PluginSetVersion(impl Dataplane, v int) plugin.PluginSet {
	return plugin.PluginSet{PluginName: &GRPCPlugin{Impl: impl, Version: v}}
}
