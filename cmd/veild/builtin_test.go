package main

import (
	"net/netip"
	"os"
	"os/exec"
	"testing"

	"github.com/veil-ipsec/veil/sdk/dataplane"
	"github.com/veil-ipsec/veil/sdk/plugintest"
	"github.com/veil-ipsec/veil/test/netns"
)

// The bundled plugins, as veild serves them, pass the SDK's conformance
// suites over real gRPC.

// TestBundledUserspaceConformance runs inside a throwaway network
// namespace: the test binary re-executes itself there, so every thread of
// the dataplane (TUN, routing rules) lives in it.
func TestBundledUserspaceConformance(t *testing.T) {
	if os.Getenv("VEIL_CONFORMANCE_NETNS") == "" {
		netns.Require(t)
		ns := netns.New(t, "conf")
		ns.Run("ip", "link", "add", "dummy0", "type", "veth", "peer", "name", "dummy1")
		ns.Run("ip", "addr", "add", "10.77.0.1/24", "dev", "dummy0")
		ns.Run("ip", "link", "set", "dummy0", "up")
		exe, _ := os.Executable()
		cmd := exec.Command("ip", "netns", "exec", ns.Name, exe, "-test.run", "^TestBundledUserspaceConformance$", "-test.v")
		cmd.Env = append(os.Environ(), "VEIL_CONFORMANCE_NETNS=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("conformance in %s: %v\n%s", ns.Name, err, out)
		}
		return
	}
	impl := builtinPlugins["dataplane/userspace"]().(dataplane.Dataplane)
	plugintest.RunDataplaneConformance(t, impl, plugintest.DataplaneCase{
		Config: []byte(`{"tun_name":"veilconf0"}`),
		Src:    netip.MustParseAddr("10.77.0.2"), Dst: netip.MustParseAddr("10.77.0.1"),
	})
}
