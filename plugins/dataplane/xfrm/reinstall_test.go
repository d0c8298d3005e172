package xfrm

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/veil-ipsec/veil/core/provider"
)

// kernelReply is what XFRM_MSG_GETSA returns for sa as the kernel holds it:
// xfrm_usersa_info with counters, the attributes veil sent and the legacy
// XFRMA_ALG_AUTH the kernel adds next to XFRMA_ALG_AUTH_TRUNC.
func kernelReply(t *testing.T, sa *provider.ChildSA, reqid uint32) []byte {
	t.Helper()
	req, err := newSARequest(sa, reqid, nil)
	if err != nil {
		t.Fatal(err)
	}
	info, attrs := attrsOf(t, req)
	info.Curlft.Packets, info.Stats.ReplayWindow = 42, 1
	if a := attrs[nl.XFRMA_ALG_AUTH_TRUNC]; a != nil {
		legacy := append(append([]byte(nil), a[:68]...), a[72:]...)
		req.AddData(nl.NewRtAttr(nl.XFRMA_ALG_AUTH, legacy))
	}
	return req.Serialize()[unix.SizeofNlMsghdr:]
}

// TestReinstallAction: what InstallSA does when the kernel already holds an
// SA with the same destination and SPI. The same SA is updated in place
// (UPDSA keeps its sequence numbers and counters), one that UPDSA cannot
// turn into the new content is replaced, another daemon's is left alone.
func TestReinstallAction(t *testing.T) {
	owned := (&Dataplane{base: DefaultReqIDBase}).owned
	base := provider.ChildSA{ReqID: 3, SPI: 0xc0001234, Src: netip.MustParseAddr("10.0.0.1"),
		Dst: netip.MustParseAddr("10.0.0.2"), Mode: provider.Tunnel, ESN: true, ReplayWindow: 64,
		Encryption: "aes-cbc", EncKey: bytes.Repeat([]byte{1}, 16), Integrity: "hmac-sha2-256-128",
		IntegKey: bytes.Repeat([]byte{2}, 32), Encap: &provider.UDPEncap{SrcPort: 4500, DstPort: 4500},
		Hard: provider.Lifetime{Time: time.Hour}, Mark: 5, IfID: 3}
	gcm := base
	gcm.Encryption, gcm.EncKey, gcm.Integrity, gcm.IntegKey = "aes-gcm-16", bytes.Repeat([]byte{3}, 20), "", nil

	for _, c := range []struct {
		name   string
		kernel func(sa *provider.ChildSA) // the SA the kernel holds, from base
		want   saReinstall
	}{
		{"same SA", func(*provider.ChildSA) {}, reinstallUpdate},
		{"other lifetimes", func(sa *provider.ChildSA) { sa.Hard.Time, sa.Soft.Bytes = time.Minute, 1<<20 }, reinstallUpdate},
		{"other encap ports", func(sa *provider.ChildSA) { sa.Encap = &provider.UDPEncap{SrcPort: 4500, DstPort: 1024} }, reinstallUpdate},
		{"other encryption key", func(sa *provider.ChildSA) { sa.EncKey = bytes.Repeat([]byte{9}, 16) }, reinstallReplace},
		{"other integrity key", func(sa *provider.ChildSA) { sa.IntegKey = bytes.Repeat([]byte{9}, 32) }, reinstallReplace},
		{"other key length", func(sa *provider.ChildSA) { sa.EncKey = bytes.Repeat([]byte{1}, 32) }, reinstallReplace},
		{"other integrity", func(sa *provider.ChildSA) {
			sa.Integrity, sa.IntegKey = "hmac-sha2-512-256", bytes.Repeat([]byte{2}, 64)
		}, reinstallReplace},
		{"AEAD instead", func(sa *provider.ChildSA) { *sa = gcm }, reinstallReplace},
		{"other reqid", func(sa *provider.ChildSA) { sa.ReqID = 4 }, reinstallReplace},
		{"other mode", func(sa *provider.ChildSA) { sa.Mode = provider.Transport }, reinstallReplace},
		{"other source", func(sa *provider.ChildSA) { sa.Src = netip.MustParseAddr("10.0.0.9") }, reinstallReplace},
		{"other replay window", func(sa *provider.ChildSA) { sa.ReplayWindow = 128 }, reinstallReplace},
		{"no ESN", func(sa *provider.ChildSA) { sa.ESN = false }, reinstallReplace},
		{"no encap", func(sa *provider.ChildSA) { sa.Encap = nil }, reinstallReplace},
		{"other if_id", func(sa *provider.ChildSA) { sa.IfID = 4 }, reinstallReplace},
	} {
		sa := base
		c.kernel(&sa)
		kernel := kernelReply(t, &sa, DefaultReqIDBase+sa.ReqID)
		req, err := newSARequest(&base, DefaultReqIDBase+base.ReqID, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := reinstallAction(kernel, req, owned); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
		// Another daemon's SA (reqid outside veil's band) is never touched.
		if got := reinstallAction(kernelReply(t, &sa, 1), req, owned); got != reinstallRefuse {
			t.Errorf("%s, foreign SA: %v, want refuse", c.name, got)
		}
	}

	req, _ := newSARequest(&base, DefaultReqIDBase+3, &offloadRequest{ifindex: 2})
	if got := reinstallAction(kernelReply(t, &base, DefaultReqIDBase+3), req, owned); got != reinstallUpdate {
		t.Errorf("same SA asking for offload: %v, want update", got)
	}

	// A kernel in lockdown reports keys as zeros: the SA counts as the same.
	redacted := kernelReply(t, &base, DefaultReqIDBase+3)
	for _, k := range [][]byte{base.EncKey, base.IntegKey} {
		for i := bytes.Index(redacted, k); i >= 0; i = bytes.Index(redacted, k) {
			clear(redacted[i : i+len(k)])
		}
	}
	req, _ = newSARequest(&base, DefaultReqIDBase+3, nil)
	if got := reinstallAction(redacted, req, owned); got != reinstallUpdate {
		t.Errorf("redacted keys: %v, want update", got)
	}

	// A larval SA (ALLOCSPI, or an SPI veil lost track of) has no
	// algorithms: UPDSA completes it with everything.
	larval := func(reqid uint32) []byte {
		info := &nl.XfrmUsersaInfo{Reqid: reqid, Family: nl.FAMILY_V4}
		info.Id.Spi, info.Id.Proto = nl.Swap32(base.SPI), unix.IPPROTO_ESP
		return info.Serialize()
	}
	if got := reinstallAction(larval(DefaultReqIDBase), req, owned); got != reinstallUpdate {
		t.Errorf("larval SA: %v, want update", got)
	}
	if got := reinstallAction(larval(7), req, owned); got != reinstallRefuse {
		t.Errorf("foreign larval SA: %v, want refuse", got)
	}

	// Replies that make no sense leave the EEXIST as it is.
	good := kernelReply(t, &base, DefaultReqIDBase+3)
	for name, b := range map[string][]byte{
		"empty":             nil,
		"short":             good[:nl.SizeofXfrmUsersaInfo-1],
		"broken attributes": append(append([]byte(nil), good[:nl.SizeofXfrmUsersaInfo]...), 0xff, 0xff, 0x01, 0x00),
	} {
		if got := reinstallAction(b, req, owned); got != reinstallRefuse {
			t.Errorf("%s reply: %v, want refuse", name, got)
		}
	}
}

// TestPolicyReinstall runs on this machine's kernel: installing veil's
// policies again replaces them in place (one kernel policy each, new
// content), a failed install removes only what it added, and another
// daemon's policy with the same selector is not taken over.
func TestPolicyReinstall(t *testing.T) {
	requireRoot(t)
	const ns = "veil-xfrm-reinst"
	d := newDataplane(t, newNS(t, ns), nil)
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	out := &provider.Policy{ReqID: 1, Dir: provider.Out, Action: provider.Protect, Mode: provider.Transport,
		Local: ts(t, "10.0.0.1/32", 0, 0), Remote: ts(t, "10.0.0.2/32", 0, 0), Priority: 1000, TmplSrc: a, TmplDst: b}
	bypass := &provider.Policy{Dir: provider.In, Action: provider.Bypass,
		Local: ts(t, "10.0.0.1/32", unix.IPPROTO_UDP, 500), Remote: ts(t, "0.0.0.0/0", unix.IPPROTO_UDP, 0), Priority: 5}
	ranged := &provider.Policy{ReqID: 2, Dir: provider.Out, Action: provider.Protect, Mode: provider.Transport,
		Local: ts(t, "10.0.0.1/32", 0, 0), Priority: 2000,
		Remote: provider.TrafficSelector{Start: netip.MustParseAddr("10.1.0.1"), End: netip.MustParseAddr("10.1.0.6"), EndPort: 0xffff}}
	for range 2 {
		for _, p := range []*provider.Policy{out, bypass, ranged} {
			if err := d.InstallPolicy(bg, p); err != nil {
				t.Fatalf("install %v: %v", p.Dir, err)
			}
		}
	}
	if got := strings.Count(sh(t, "ip", "-n", ns, "xfrm", "policy"), "\tdir "); got != 1+1+4 {
		t.Errorf("installing twice left %d kernel policies, want 6", got)
	}
	if len(d.bypass) != 1 {
		t.Errorf("bypass policies recorded %d times", len(d.bypass))
	}

	// New content for the same selectors: the kernel holds the new one.
	moved := *out
	moved.Priority, moved.ReqID, moved.Action = 1500, 3, provider.Block
	if err := d.InstallPolicy(bg, &moved); err != nil {
		t.Fatal(err)
	}
	pol := sh(t, "ip", "-n", ns, "xfrm", "policy")
	if !strings.Contains(pol, "dir out action block priority 1500") || strings.Contains(pol, "priority 1000") ||
		!strings.Contains(pol, reqidText(3)) || strings.Contains(pol, reqidText(1)+" ") {
		t.Errorf("re-install with new content:\n%s", pol)
	}

	// Another daemon's policy (reqid 1, outside veil's band) keeps its
	// selector: veil's install over it fails and removes only the kernel
	// policies it added, not the one of its own it replaced on the way.
	sh(t, "ip", "-n", ns, "xfrm", "policy", "add", "src", "10.1.0.6/32", "dst", "10.0.0.1/32",
		"dir", "in", "tmpl", "proto", "esp", "reqid", "1", "mode", "transport")
	first := &provider.Policy{ReqID: 4, Dir: provider.In, Action: provider.Protect, Mode: provider.Transport,
		Local: ts(t, "10.0.0.1/32", 0, 0), Remote: ts(t, "10.1.0.1/32", 0, 0), Priority: 2000, TmplSrc: b, TmplDst: a}
	if err := d.InstallPolicy(bg, first); err != nil {
		t.Fatal(err)
	}
	in := *ranged
	in.Dir, in.TmplSrc, in.TmplDst = provider.In, b, a
	if err := d.InstallPolicy(bg, &in); err == nil || !strings.Contains(err.Error(), "file exists") {
		t.Errorf("install over a foreign policy: %v", err)
	}
	pol = sh(t, "ip", "-n", ns, "xfrm", "policy")
	if strings.Count(pol, "dir in") != 3 || !strings.Contains(pol, "src 10.1.0.1/32 dst 10.0.0.1/32") ||
		!strings.Contains(pol, "reqid 1 mode transport") {
		t.Errorf("failed install over a foreign policy left (want bypass, foreign and 10.1.0.1 in):\n%s", pol)
	}
	if got := strings.Count(pol, "dir out"); got != 5 {
		t.Errorf("failed install removed other policies: %d dir out left\n%s", got, pol)
	}
}
