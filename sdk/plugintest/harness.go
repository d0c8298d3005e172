// Package plugintest runs plugins in-process over real gRPC (go-plugin's
// TestPluginGRPCConn: a unix socket, the same client and server code as a
// plugin process, without the process) and checks them with a conformance
// suite per kind. Every bundled plugin passes its suite; third-party
// plugins should too:
//
//	func TestConformance(t *testing.T) {
//		plugintest.RunKeystoreConformance(t, mystore.New(), plugintest.KeystoreCase{...})
//	}
package plugintest

import (
	"testing"

	"github.com/hashicorp/go-plugin"

	"github.com/veil-ipsec/veil/sdk/auth"
	"github.com/veil-ipsec/veil/sdk/dataplane"
	"github.com/veil-ipsec/veil/sdk/keystore"
)

func dispense(t testing.TB, kind string, ps plugin.PluginSet) any {
	t.Helper()
	client, server := plugin.TestPluginGRPCConn(t, false, ps)
	t.Cleanup(func() {
		client.Close()
		server.Stop()
	})
	raw, err := client.Dispense(kind)
	if err != nil {
		t.Fatalf("dispensing %s plugin: %v", kind, err)
	}
	return raw
}

// AuthClient serves impl over in-process gRPC and returns the host's client.
func AuthClient(t testing.TB, impl auth.Authenticator) *auth.Client {
	c := dispense(t, auth.PluginName, auth.PluginSet(impl)).(*auth.Client)
	t.Cleanup(c.Close)
	return c
}

// KeystoreClient serves impl over in-process gRPC and returns the host's
// client.
func KeystoreClient(t testing.TB, impl keystore.Store) *keystore.Client {
	c := dispense(t, keystore.PluginName, keystore.PluginSet(impl)).(*keystore.Client)
	t.Cleanup(c.Close)
	return c
}

// DataplaneClient serves impl over in-process gRPC and returns the host's
// client.
func DataplaneClient(t testing.TB, impl dataplane.Dataplane) *dataplane.Client {
	c := dispense(t, dataplane.PluginName, dataplane.PluginSet(impl)).(*dataplane.Client)
	t.Cleanup(c.Close)
	return c
}
