package kernellab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestESPInGuest boots the lab once: the guest kernel must accept an ESP SA
// (this machine's kernel refuses it), traffic between two namespaces must be
// carried by it, and the script's own exit status must come back.
func TestESPInGuest(t *testing.T) {
	script := filepath.Join(t.TempDir(), "esp.sh")
	err := os.WriteFile(script, []byte(`#!/bin/sh
set -e
ip netns add A; ip netns add B
ip link add va netns A type veth peer name vb netns B
ip -n A addr add 10.9.0.1/24 dev va; ip -n B addr add 10.9.0.2/24 dev vb
ip -n A link set va up; ip -n B link set vb up
K=0x0102030405060708090a0b0c0d0e0f1011121314
for ns in A B; do
  ip -n $ns xfrm state add src 10.9.0.1 dst 10.9.0.2 proto esp spi 0x101 reqid 1 mode transport aead 'rfc4106(gcm(aes))' $K 128
  ip -n $ns xfrm state add src 10.9.0.2 dst 10.9.0.1 proto esp spi 0x102 reqid 1 mode transport aead 'rfc4106(gcm(aes))' $K 128
done
ip -n A xfrm policy add src 10.9.0.1 dst 10.9.0.2 dir out tmpl proto esp reqid 1 mode transport
ip -n B xfrm policy add src 10.9.0.1 dst 10.9.0.2 dir in tmpl proto esp reqid 1 mode transport
ip -n A xfrm policy add src 10.9.0.2 dst 10.9.0.1 dir in tmpl proto esp reqid 1 mode transport
ip -n B xfrm policy add src 10.9.0.2 dst 10.9.0.1 dir out tmpl proto esp reqid 1 mode transport
ip netns exec A ping -c2 -W2 10.9.0.2
ip -n A -s xfrm state list spi 0x101
echo "guest-args: $*"
exit 7
`), 0o755)
	if err != nil {
		t.Fatal(err)
	}
	code, out := Run(t, script, "one", "two words")
	if code != 7 {
		t.Fatalf("exit status %d, want 7 (the script's own):\n%s", code, out)
	}
	for _, want := range []string{"rfc4106(gcm(aes))", "2 received", "guest-args: one two words"} {
		if !strings.Contains(out, want) {
			t.Errorf("guest output lacks %q:\n%s", want, out)
		}
	}
}
