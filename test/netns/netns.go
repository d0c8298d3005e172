// Package netns builds throwaway network topologies for end-to-end tests:
// named network namespaces joined by veth pairs, optionally through a router
// namespace that masquerades (NAT) or limits the path MTU. Everything a test
// creates is removed by t.Cleanup, and names carry the test's PID so parallel
// runs and leftovers from a crashed run cannot collide.
package netns

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var seq atomic.Int32

// Require skips the test when it cannot create namespaces (not root, or no
// ip command). CI runs as root with iproute2 installed, so nothing skips there.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2")
	}
}

// NS is one network namespace.
type NS struct {
	Name string
	t    testing.TB
}

// New creates a namespace with loopback up.
func New(t testing.TB, role string) *NS {
	t.Helper()
	name := fmt.Sprintf("veil-%s-%d-%d", role, os.Getpid(), seq.Add(1))
	mustRun(t, "ip", "netns", "add", name)
	ns := &NS{Name: name, t: t}
	t.Cleanup(func() {
		// Kill whatever still runs inside before removing the namespace.
		out, _ := exec.Command("ip", "netns", "pids", name).Output()
		for _, pid := range strings.Fields(string(out)) {
			exec.Command("kill", "-9", pid).Run()
		}
		exec.Command("ip", "netns", "del", name).Run()
	})
	ns.Run("ip", "link", "set", "lo", "up")
	return ns
}

// Run runs a command inside the namespace and fails the test on error.
func (n *NS) Run(args ...string) string {
	n.t.Helper()
	out, err := n.Output(args...)
	if err != nil {
		n.t.Fatalf("%s: %s: %v\n%s", n.Name, strings.Join(args, " "), err, out)
	}
	return out
}

// Output runs a command inside the namespace and returns its combined output.
func (n *NS) Output(args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Command prepares a long-running command inside the namespace.
func (n *NS) Command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name}, args...)...)
}

// Link joins a and b with a veth pair, addressing each end with the given
// CIDR addresses (e.g. "10.0.0.1/24", "fd00::1/64"), and brings both up.
func Link(t testing.TB, a *NS, aAddrs []string, b *NS, bAddrs []string) (aIf, bIf string) {
	t.Helper()
	n := seq.Add(1)
	aIf, bIf = fmt.Sprintf("va%d", n), fmt.Sprintf("vb%d", n)
	mustRun(t, "ip", "link", "add", aIf, "netns", a.Name, "type", "veth", "peer", "name", bIf, "netns", b.Name)
	for _, x := range []struct {
		ns    *NS
		ifc   string
		addrs []string
	}{{a, aIf, aAddrs}, {b, bIf, bAddrs}} {
		for _, addr := range x.addrs {
			args := []string{"ip", "addr", "add", addr, "dev", x.ifc}
			if strings.Contains(addr, ":") {
				args = append(args, "nodad")
			}
			x.ns.Run(args...)
		}
		x.ns.Run("ip", "link", "set", x.ifc, "up")
	}
	return aIf, bIf
}

// WaitFor polls cond until it returns true or the deadline passes.
func WaitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", d, what)
}

func mustRun(t testing.TB, args ...string) {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
}
