package adapt_test

import (
	"context"
	"net/netip"
	"os/exec"
	"testing"

	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/plugins/dataplane/adapt"
	"github.com/veil-ipsec/veil/plugins/dataplane/xfrm"
	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/plugintest"
	"github.com/veil-ipsec/veil/test/kernellab"
)

// TestXFRMConformanceInKernelLab runs the SDK's dataplane conformance suite
// against the xfrm dataplane as veild serves it (adapt.Lazy over
// xfrm.New, over real gRPC) inside the kernel lab: this machine's kernel
// has no ESP. Besides the basics (idempotent installs: the host installs
// every SA and policy again after a restart) it covers protocol version 2:
// AllocateSPI and InstallChild on the stream, and an SPI allocated for one
// peer taking another's SA (the host's SPI pool relies on it: a larval SA
// is found by destination and SPI).
func TestXFRMConformanceInKernelLab(t *testing.T) {
	if !kernellab.InGuest() {
		kernellab.RunSelf(t, "^TestXFRMConformanceInKernelLab$")
		return
	}
	for _, args := range [][]string{
		{"link", "add", "conf0", "type", "dummy"},
		{"addr", "add", "10.77.0.1/24", "dev", "conf0"},
		{"link", "set", "conf0", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	impl := adapt.Lazy(base.Info{Name: "xfrm", Kind: base.KindDataplane, Version: "test"}, base.Schema{},
		func(context.Context, []byte) (provider.Dataplane, error) { return xfrm.New(xfrm.Options{}) })
	t.Cleanup(func() { impl.Close() })
	plugintest.RunDataplaneConformance(t, adapt.Dataplane(impl), plugintest.DataplaneCase{
		Src: netip.MustParseAddr("10.77.0.2"), Dst: netip.MustParseAddr("10.77.0.1"),
	})
}
