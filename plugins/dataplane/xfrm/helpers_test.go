package xfrm

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netns"
)

// requireRoot skips host tests that need network namespaces.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2")
	}
}

func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newNS creates a named namespace (removed at cleanup) and returns its handle.
func newNS(t *testing.T, name string) netns.NsHandle {
	t.Helper()
	exec.Command("ip", "netns", "del", name).Run()
	sh(t, "ip", "netns", "add", name)
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		exec.Command("ip", "netns", "del", name).Run()
	})
	sh(t, "ip", "-n", name, "link", "set", "lo", "up")
	return h
}

// vethPair joins namespaces a and b: va in a (10.0.0.1, fd00::1), vb in b
// (10.0.0.2, fd00::2).
func vethPair(t *testing.T, a, b string) {
	t.Helper()
	sh(t, "ip", "link", "add", "va", "netns", a, "type", "veth", "peer", "name", "vb", "netns", b)
	sh(t, "ip", "-n", a, "addr", "add", "10.0.0.1/24", "dev", "va")
	sh(t, "ip", "-n", b, "addr", "add", "10.0.0.2/24", "dev", "vb")
	sh(t, "ip", "-n", a, "addr", "add", "fd00::1/64", "dev", "va", "nodad")
	sh(t, "ip", "-n", b, "addr", "add", "fd00::2/64", "dev", "vb", "nodad")
	sh(t, "ip", "-n", a, "link", "set", "va", "up")
	sh(t, "ip", "-n", b, "link", "set", "vb", "up")
}

// logBuffer is a slog handler target safe for concurrent writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newDataplane(t *testing.T, ns netns.NsHandle, logs *logBuffer) *Dataplane {
	t.Helper()
	opts := Options{NetNS: ns}
	if logs != nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

var bg = context.Background()

func reqidText(r uint32) string { return fmt.Sprintf("reqid %d", DefaultReqIDBase+r) }
