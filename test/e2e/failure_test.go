package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/test/netns"
)

// waitStatus waits until `veilctl status lab` on d mentions every want.
func waitStatus(t *testing.T, d *daemon, what string, wants ...string) string {
	t.Helper()
	var out string
	netns.WaitFor(t, what, 40*time.Second, func() bool {
		out = d.ctl("status", "lab")
		for _, w := range wants {
			if !strings.Contains(strings.ToLower(out), strings.ToLower(w)) {
				return false
			}
		}
		return true
	})
	return out
}

func TestFailureWrongPSK(t *testing.T) {
	p := newDirectPair(t)
	other := filepath.Join(t.TempDir(), "other.psk")
	os.WriteFile(other, []byte("a different secret of sufficient length!\n"), 0o600)
	p.cb.PSKFile = other
	p.start(t)
	// The responder checked the initiator's AUTH and says which check failed.
	waitStatus(t, p.db, "b's auth failure", "auth", "pre-shared key")
	waitStatus(t, p.da, "a's auth failure", "auth")
}

func TestFailureSelectorMismatch(t *testing.T) {
	p := newDirectPair(t)
	p.ca.LocalTS, p.ca.RemoteTS = p.aAddr+"/32[tcp/5432]", p.bAddr+"/32[tcp]"
	p.cb.LocalTS, p.cb.RemoteTS = p.bAddr+"/32[udp/53]", p.aAddr+"/32[udp]"
	p.start(t)
	// Both sides' selectors appear in the responder's reason.
	waitStatus(t, p.db, "b's selector failure", "selector", "tcp", "udp")
}

func TestFailureSilentPeer(t *testing.T) {
	p := newDirectPair(t)
	// No daemon on b: a's requests go unanswered.
	p.ca.Daemon = `retransmit_timeout = "200ms"
  retransmit_tries = 3`
	p.da = startDaemon(t, p.a, p.ca)
	waitStatus(t, p.da, "a's silent-peer failure", "did not answer", "transmissions", "500", "4500", "NAT")
}
