// Package kernellab runs tests against a real Linux kernel with ESP: it boots
// Debian's stock kernel under qemu (TCG, one vCPU) with this machine's root
// filesystem shared read-only over 9p, and runs a script or a test binary in
// it as root. The build machines' own kernel has XFRM but no ESP, so every
// dataplane test that moves packets runs here.
//
// The work is done by klab.sh next to this file (usable by hand too:
// `test/kernellab/klab.sh sh 'ip xfrm state'`); the cache lives in
// $TMPDIR/veil-klab-cache and is prepared on first use.
//
// A test that needs the lab boots it once and runs itself inside:
//
//	func TestLab(t *testing.T) {
//		if !kernellab.InGuest() {
//			kernellab.RunSelf(t, "^TestLab$")
//			return
//		}
//		t.Run("transport", ...) // runs in the guest
//	}
package kernellab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// InGuest reports whether this process runs inside the lab's guest.
func InGuest() bool { return os.Getenv("KLAB_GUEST") == "1" }

// Script is the path of klab.sh.
func Script() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "klab.sh")
}

// Require skips the test when the lab cannot run here: not root (9p export
// of / and netns need it) or no qemu-system-x86_64. CI installs qemu (see
// .ci/run), so nothing skips there.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel lab needs root")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("kernel lab needs qemu-system-x86_64 (apt-get install qemu-system-x86)")
	}
	if _, err := os.Stat(Script()); err != nil {
		t.Skipf("kernel lab script not found (built with -trimpath?): %v", err)
	}
}

// Run boots the guest, runs script with args there as root (working
// directory: the caller's), and returns the script's exit status and the
// guest console. Exit 124 means the lab timed out, 125 that the guest never
// reported a status. Harness failures (prepare, qemu) fail t.
func Run(t testing.TB, script string, args ...string) (int, string) {
	t.Helper()
	return RunDir(t, t.TempDir(), script, args...)
}

// RunDir is Run with the shared output directory chosen by the caller: what
// the script writes under $KLAB_OUT (same path in the guest) is in out
// afterwards, for the test to check.
func RunDir(t testing.TB, out, script string, args ...string) (int, string) {
	t.Helper()
	Require(t)
	cmd := exec.Command(Script(), append([]string{"run", script}, args...)...)
	cmd.Env = append(os.Environ(), "KLAB_OUT="+out, "KLAB_QUIET=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	console, _ := os.ReadFile(filepath.Join(out, "console.log"))
	code := 0
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("klab: %v\n%s", err, stderr.String())
	}
	if len(console) == 0 {
		t.Fatalf("klab produced no console output (exit %d):\n%s", code, stderr.String())
	}
	t.Logf("%s", strings.TrimSpace(lastLine(stderr.String())))
	return code, string(console)
}

// RunSelf boots the guest once and runs the current test binary there with
// -test.run=run (plus -test.v), failing t unless it passes. The guest sees
// the binary through the shared host filesystem, so nothing is copied.
func RunSelf(t testing.TB, run string, extraArgs ...string) string {
	t.Helper()
	Require(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-test.run=" + run, "-test.v", "-test.count=1"}, extraArgs...)
	code, console := Run(t, self, args...)
	if code != 0 {
		t.Fatalf("guest test run failed with exit %d:\n%s", code, console)
	}
	t.Logf("guest output:\n%s", console)
	return console
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// Ensure is `klab.sh prepare`: idempotent, for callers that want to time or
// pre-warm the cache.
func Ensure() error {
	out, err := exec.Command(Script(), "prepare").CombinedOutput()
	if err != nil {
		return fmt.Errorf("klab prepare: %v\n%s", err, out)
	}
	return nil
}
