package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veil-ipsec/veil/test/netns"
)

// TestMakeDemo runs the README's first command, so a broken demo fails CI.
func TestMakeDemo(t *testing.T) {
	netns.Require(t)
	for _, c := range []string{"tcpdump", "iperf3", "ping"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("needs %s", c)
		}
	}
	root, _ := filepath.Abs("../..")
	cmd := exec.Command("make", "demo")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make demo: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "demo passed") || !strings.Contains(string(out), "cleartext ICMP/TCP: 0") {
		t.Fatalf("make demo output:\n%s", out)
	}
}
