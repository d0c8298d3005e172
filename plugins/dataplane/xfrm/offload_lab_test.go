package xfrm

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/veil-ipsec/veil/core/provider"
)

// offloadNetlink sends XFRMA_OFFLOAD_DEV to a real kernel. No device here
// does ESP offload, so the probe is told the device does, and the kernel
// decides:
//   - veth has no xfrmdev_ops: the kernel accepts the crypto-offload SAs
//     and runs them in software; they carry traffic.
//   - a bond (active-backup over a veth) has xfrmdev_ops and hands the
//     request to its slave, which cannot: the kernel refuses, so the
//     request reached the device veil named. "required" fails; "preferred"
//     installs in software and warns.
//   - packet offload (XFRM_OFFLOAD_PACKET) on veth is refused the same way.
func (l *lab) offloadNetlink(t *testing.T) {
	defer l.reset(t)
	probe, packetOff := l.dpA.probe, l.dpA.packetOff
	defer func() { l.dpA.probe, l.dpA.packetOff = probe, packetOff }()
	l.dpA.probe = func(string) (bool, error) { return true, nil }
	warnings := func() int { return strings.Count(l.logA.String(), "offload rejected by the kernel") }
	warned := warnings()

	p := l.install(t, pairOpts{c: labCiphers[0], a: l.a4, b: l.b4, offload: "required"})
	ping(t, "A", l.b4, 3)
	l.settle(t, p, 3)

	sh(t, "ip", "link", "add", "bva", "netns", "A", "type", "veth", "peer", "name", "bvb", "netns", "B")
	sh(t, "ip", "-n", "A", "link", "add", "bond0", "type", "bond", "mode", "active-backup")
	defer exec.Command("ip", "-n", "A", "link", "del", "bond0").Run()
	defer exec.Command("ip", "-n", "A", "link", "del", "bva").Run()
	sh(t, "ip", "-n", "A", "link", "set", "bva", "master", "bond0")
	sh(t, "ip", "-n", "A", "addr", "add", "10.9.0.1/24", "dev", "bond0")
	sh(t, "ip", "-n", "B", "addr", "add", "10.9.0.2/24", "dev", "bvb")
	sh(t, "ip", "-n", "A", "link", "set", "bond0", "up")
	sh(t, "ip", "-n", "B", "link", "set", "bvb", "up")
	bondA, bondB := netip.MustParseAddr("10.9.0.1"), netip.MustParseAddr("10.9.0.2")
	sa := &provider.ChildSA{ReqID: 91, SPI: 0x9101, Src: bondA, Dst: bondB, Mode: provider.Transport,
		Encryption: "aes-gcm-16", EncKey: randKey(t, 20), Offload: "required"}
	if err := l.dpA.InstallSA(bg, sa); err == nil {
		t.Error("crypto offload via a bond over veth installed")
	} else {
		t.Logf("required, bond: %v", err)
	}
	if st := sh(t, "ip", "-n", "A", "xfrm", "state"); strings.Contains(st, "0x00009101") {
		t.Errorf("refused offload left an SA:\n%s", st)
	}
	sa.Offload, sa.EncKey = "preferred", randKey(t, 20)
	if err := l.dpA.InstallSA(bg, sa); err != nil {
		t.Fatalf("preferred offload via a bond did not fall back: %v", err)
	}
	if st := sh(t, "ip", "-n", "A", "xfrm", "state"); !strings.Contains(st, "spi 0x00009101") || strings.Contains(st, "offload") {
		t.Errorf("fallback SA:\n%s", st)
	}
	if n := warnings() - warned; n != 1 {
		t.Errorf("kernel refusal logged %d times, want once:\n%s", n, l.logA.String())
	}
	// The bond driver says why: the request reached the device veil named.
	if out, err := exec.Command("dmesg").Output(); err != nil {
		t.Logf("no dmesg: %v", err)
	} else if i := strings.LastIndex(string(out), "Slave does not support ipsec offload"); i < 0 {
		t.Errorf("kernel log lacks the bond's refusal:\n%s", out)
	} else {
		t.Logf("kernel: %s", strings.TrimSpace(lineAround(string(out), i)))
	}

	l.dpA.packetOff = true
	sa = &provider.ChildSA{ReqID: 92, SPI: 0x9201, Src: l.a4, Dst: l.b4, Mode: provider.Transport,
		Encryption: "aes-gcm-16", EncKey: randKey(t, 20), Offload: "required"}
	if err := l.dpA.InstallSA(bg, sa); err == nil {
		t.Error("packet offload on veth installed")
	}
	if st := sh(t, "ip", "-n", "A", "xfrm", "state"); strings.Contains(st, "0x00009201") {
		t.Errorf("refused packet offload left an SA:\n%s", st)
	}
	sa.Offload, sa.EncKey = "preferred", randKey(t, 20)
	if err := l.dpA.InstallSA(bg, sa); err != nil {
		t.Fatalf("preferred packet offload did not fall back: %v", err)
	}
	if n := warnings() - warned; n != 2 {
		t.Errorf("kernel refusals logged %d times, want twice:\n%s", n, l.logA.String())
	}
}

// lineAround is the line of s that contains index i.
func lineAround(s string, i int) string {
	start := strings.LastIndexByte(s[:i], '\n') + 1
	end := strings.IndexByte(s[i:], '\n')
	if end < 0 {
		return s[start:]
	}
	return s[start : i+end]
}
