package engine

import (
	"testing"

	"github.com/veil-ipsec/veil/core/transform"
)

// The Child SA of IKE_AUTH has no key exchange of its own (RFC 7296 §1.2):
// a PFS group in our ESP proposals must not stop it against a peer that
// leaves groups out there (strongSwan strips them), in either role.
func TestPFSProposalInIKEAuth(t *testing.T) {
	for _, tc := range []struct {
		name   string
		pfsOnA bool // a initiates
	}{
		{"initiator configured with PFS", true},
		{"responder configured with PFS", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, func(a, b *Connection) {
				withPFS, without := a, b
				if !tc.pfsOnA {
					withPFS, without = b, a
				}
				withPFS.Children[0].ESPProposals = mustProposals(t, transform.ProtoESP, "aes128gcm16-x25519")
				without.Children[0].ESPProposals = mustProposals(t, transform.ProtoESP, "aes128gcm16")
			})
			p.up()
			for _, side := range []*peer{p.a, p.b} {
				snap := side.e.Snapshot()
				if len(snap) != 1 || len(snap[0].Children) != 1 || snap[0].Children[0].State != "INSTALLED" {
					t.Fatalf("%+v", snap)
				}
				if got := snap[0].Children[0].Proposal; got != "aes128gcm16" {
					t.Errorf("child proposal %q, want aes128gcm16 (no key exchange in IKE_AUTH)", got)
				}
			}
		})
	}
}
