package xfrm

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/veil-ipsec/veil/core/provider"
)

func ts(t *testing.T, prefix string, proto uint8, port uint16) provider.TrafficSelector {
	t.Helper()
	p := netip.MustParsePrefix(prefix)
	s := provider.TrafficSelector{Start: p.Masked().Addr(), End: lastAddr(p), Protocol: proto, EndPort: 0xffff}
	if port != 0 {
		s.StartPort, s.EndPort = port, port
	}
	return s
}

// TestPolicies runs on this machine's kernel (XFRM policies work without
// ESP): selectors with protocol and ports, priorities, directions, actions,
// address ranges, delete, and cleanup of a crashed run's leftovers.
func TestPolicies(t *testing.T) {
	requireRoot(t)
	ns := newNS(t, "veil-xfrm-pol")
	d := newDataplane(t, ns, nil)
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")

	app := &provider.Policy{ReqID: 1, Dir: provider.Out, Action: provider.Protect, Mode: provider.Transport,
		Local: ts(t, "10.0.0.1/32", unix.IPPROTO_TCP, 0), Remote: ts(t, "10.0.0.2/32", unix.IPPROTO_TCP, 5432),
		Priority: 1000, TmplSrc: a, TmplDst: b}
	appIn := *app
	appIn.Dir = provider.In
	tunnelFwd := &provider.Policy{ReqID: 2, Dir: provider.Fwd, Action: provider.Protect, Mode: provider.Tunnel,
		Local: ts(t, "192.168.1.0/24", 0, 0), Remote: ts(t, "192.168.2.0/24", 0, 0), Priority: 2000,
		TmplSrc: b, TmplDst: a, Mark: 42, IfID: 7}
	trap := &provider.Policy{ReqID: 3, Dir: provider.Out, Action: provider.Trap, Mode: provider.Transport,
		Local: ts(t, "fd00::1/128", unix.IPPROTO_UDP, 53), Remote: ts(t, "fd00::/64", 0, 0), Priority: 3000}
	block := &provider.Policy{ReqID: 4, Dir: provider.Out, Action: provider.Block,
		Local: ts(t, "10.0.0.1/32", 0, 0), Remote: ts(t, "10.9.9.9/32", 0, 0), Priority: 10}
	bypass := &provider.Policy{Dir: provider.In, Action: provider.Bypass,
		Local: ts(t, "10.0.0.1/32", unix.IPPROTO_UDP, 500), Remote: ts(t, "0.0.0.0/0", unix.IPPROTO_UDP, 0), Priority: 5}
	ranged := &provider.Policy{ReqID: 5, Dir: provider.Out, Action: provider.Protect, Mode: provider.Transport,
		Local: ts(t, "10.0.0.1/32", 0, 0), Priority: 4000,
		Remote: provider.TrafficSelector{Start: netip.MustParseAddr("10.1.0.1"), End: netip.MustParseAddr("10.1.0.6"), EndPort: 0xffff}}
	for _, p := range []*provider.Policy{app, &appIn, tunnelFwd, trap, block, bypass, ranged} {
		if err := d.InstallPolicy(bg, p); err != nil {
			t.Fatal(err)
		}
	}
	out := sh(t, "ip", "-n", "veil-xfrm-pol", "xfrm", "policy")
	for _, want := range []string{
		"src 10.0.0.1/32 dst 10.0.0.2/32 proto tcp dport 5432 \n\tdir out priority 1000",
		"src 10.0.0.2/32 dst 10.0.0.1/32 proto tcp sport 5432 \n\tdir in priority 1000",
		"src 192.168.2.0/24 dst 192.168.1.0/24 \n\tdir fwd priority 2000",
		"mark 0x2a/0xffffffff", "if_id 0x7",
		"proto esp " + reqidText(2) + " mode tunnel",
		"tmpl src 10.0.0.2 dst 10.0.0.1",
		"src fd00::1/128 dst fd00::/64 proto udp sport 53 \n\tdir out priority 3000",
		"dir out action block priority 10",
		"src 0.0.0.0/0 dst 10.0.0.1/32 proto udp dport 500 \n\tdir in priority 5",
		// 10.1.0.1-10.1.0.6 = .1/32 .2/31 .4/31 .6/32
		"dst 10.1.0.1/32", "dst 10.1.0.2/31", "dst 10.1.0.4/31", "dst 10.1.0.6/32",
		reqidText(1) + " mode transport",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("ip xfrm policy lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "dst 10.1.0."); n != 4 {
		t.Errorf("range became %d kernel policies, want 4", n)
	}

	// Delete one application policy: only it goes.
	if err := d.DeletePolicy(bg, app); err != nil {
		t.Fatal(err)
	}
	out = sh(t, "ip", "-n", "veil-xfrm-pol", "xfrm", "policy")
	if strings.Contains(out, "dport 5432 \n\tdir out") || !strings.Contains(out, "sport 5432 \n\tdir in") {
		t.Errorf("delete removed the wrong policy:\n%s", out)
	}
	if err := d.DeletePolicy(bg, app); err != nil {
		t.Errorf("deleting an absent policy: %v", err)
	}

	// A foreign policy (another daemon's reqid) must survive veil's cleanup.
	sh(t, "ip", "-n", "veil-xfrm-pol", "xfrm", "policy", "add", "src", "10.5.0.0/24", "dst", "10.6.0.0/24",
		"dir", "out", "tmpl", "proto", "esp", "reqid", "1", "mode", "transport")

	// Crash: the old Dataplane vanishes without Close; a new one starts.
	d2 := newDataplane(t, ns, nil)
	out = sh(t, "ip", "-n", "veil-xfrm-pol", "xfrm", "policy")
	if strings.Contains(out, "reqid 21") || strings.Contains(out, "priority 1000") {
		t.Errorf("leftover veil policies after restart:\n%s", out)
	}
	if !strings.Contains(out, "src 10.5.0.0/24 dst 10.6.0.0/24") {
		t.Errorf("restart cleanup removed a foreign policy:\n%s", out)
	}
	// The bypass policy of the old instance is not recognisable in the kernel
	// (no template); the old instance's Close removes it.
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d2.InstallPolicy(bg, trap); err != nil {
		t.Fatal(err)
	}
	if err := d2.Close(); err != nil {
		t.Fatal(err)
	}
	out = sh(t, "ip", "-n", "veil-xfrm-pol", "xfrm", "policy")
	if strings.Count(out, "\tdir ") != 1 {
		t.Errorf("after Close only the foreign policy may remain:\n%s", out)
	}
}

func TestPolicyBadInput(t *testing.T) {
	d := &Dataplane{base: DefaultReqIDBase}
	good := provider.Policy{ReqID: 1, Dir: provider.Out, Action: provider.Protect, Mode: provider.Transport,
		Local: ts(t, "10.0.0.1/32", 6, 0), Remote: ts(t, "10.0.0.2/32", 6, 80)}
	cases := map[string]func(p *provider.Policy){
		"port range":     func(p *provider.Policy) { p.Remote.StartPort, p.Remote.EndPort = 80, 90 },
		"mixed families": func(p *provider.Policy) { p.Remote = ts(t, "fd00::2/128", 6, 80) },
		"protocols":      func(p *provider.Policy) { p.Remote.Protocol = 17 },
		"reqid":          func(p *provider.Policy) { p.ReqID = 0x10000 },
		"direction":      func(p *provider.Policy) { p.Dir = 9 },
		"mode":           func(p *provider.Policy) { p.Mode = 0 },
		"reversed range": func(p *provider.Policy) { p.Local.Start, p.Local.End = p.Local.End.Next(), p.Local.Start },
	}
	if _, err := d.kernelPolicies(&good); err != nil {
		t.Fatalf("good policy: %v", err)
	}
	for name, mutate := range cases {
		p := good
		mutate(&p)
		if _, err := d.kernelPolicies(&p); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestRangePrefixes(t *testing.T) {
	for _, c := range []struct{ start, end, want string }{
		{"10.0.0.0", "10.0.0.255", "10.0.0.0/24"},
		{"10.0.0.1", "10.0.0.6", "10.0.0.1/32 10.0.0.2/31 10.0.0.4/31 10.0.0.6/32"},
		{"0.0.0.0", "255.255.255.255", "0.0.0.0/0"},
		{"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::/0"},
		{"fd00::1", "fd00::1", "fd00::1/128"},
	} {
		nets, err := rangePrefixes(netip.MustParseAddr(c.start), netip.MustParseAddr(c.end))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, n := range nets {
			got = append(got, n.String())
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("%s-%s = %v, want %s", c.start, c.end, got, c.want)
		}
	}
}

// attrsOf parses the attributes of a serialized NEWSA request.
func attrsOf(t *testing.T, req *nl.NetlinkRequest) (*nl.XfrmUsersaInfo, map[uint16][]byte) {
	t.Helper()
	b := req.Serialize()
	body := b[unix.SizeofNlMsghdr:]
	info := nl.DeserializeXfrmUsersaInfo(body)
	attrs, err := nl.ParseRouteAttr(body[nl.SizeofXfrmUsersaInfo:])
	if err != nil {
		t.Fatal(err)
	}
	m := map[uint16][]byte{}
	for _, a := range attrs {
		m[a.Attr.Type] = a.Value
	}
	return info, m
}

func algoName(b []byte) string { return strings.TrimRight(string(b[:64]), "\x00") }

// TestSARequest checks the NEWSA bytes veil sends for each algorithm and
// option; the lab tests show the kernel accepts and uses them.
func TestSARequest(t *testing.T) {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	base := provider.ChildSA{ReqID: 3, SPI: 0xc0001234, Src: src, Dst: dst, Mode: provider.Tunnel,
		ESN: true, ReplayWindow: 2048, Encap: &provider.UDPEncap{SrcPort: 4500, DstPort: 31337},
		Soft: provider.Lifetime{Time: 50 * time.Second, Bytes: 1000, Packets: 10},
		Hard: provider.Lifetime{Time: 60 * time.Second}, Mark: 9, IfID: 11}
	for _, c := range []struct {
		enc, integ       string
		encLen, integLen int
		attr             uint16
		kernel           string
		bits             uint32
	}{
		{"aes-gcm-16", "", 20, 0, nl.XFRMA_ALG_AEAD, "rfc4106(gcm(aes))", 128},
		{"chacha20-poly1305", "", 36, 0, nl.XFRMA_ALG_AEAD, "rfc7539esp(chacha20,poly1305)", 128},
		{"aes-cbc", "hmac-sha2-256-128", 16, 32, nl.XFRMA_ALG_AUTH_TRUNC, "hmac(sha256)", 128},
		{"aes-cbc", "hmac-sha2-384-192", 24, 48, nl.XFRMA_ALG_AUTH_TRUNC, "hmac(sha384)", 192},
		{"aes-cbc", "hmac-sha2-512-256", 32, 64, nl.XFRMA_ALG_AUTH_TRUNC, "hmac(sha512)", 256},
	} {
		sa := base
		sa.Encryption, sa.EncKey = c.enc, make([]byte, c.encLen)
		sa.Integrity, sa.IntegKey = c.integ, make([]byte, c.integLen)
		req, err := newSARequest(&sa, DefaultReqIDBase+3, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.enc, err)
		}
		info, attrs := attrsOf(t, req)
		a := attrs[c.attr]
		if a == nil || algoName(a) != c.kernel || binary.NativeEndian.Uint32(a[68:]) != c.bits {
			t.Errorf("%s/%s: attr %d = %q", c.enc, c.integ, c.attr, a)
		}
		if c.integ != "" {
			crypt := attrs[nl.XFRMA_ALG_CRYPT]
			if crypt == nil || algoName(crypt) != "cbc(aes)" || binary.NativeEndian.Uint32(crypt[64:]) != uint32(c.encLen*8) {
				t.Errorf("%s: crypt attr %q", c.integ, crypt)
			}
		}
		if nl.Swap32(info.Id.Spi) != sa.SPI || info.Reqid != DefaultReqIDBase+3 || info.Mode != 1 ||
			info.Flags&128 == 0 || info.ReplayWindow != 0 || info.Id.Proto != unix.IPPROTO_ESP {
			t.Errorf("usersa_info: %+v", info)
		}
		if l := info.Lft; l.SoftByteLimit != 1000 || l.SoftPacketLimit != 10 || l.SoftAddExpiresSeconds != 50 ||
			l.HardAddExpiresSeconds != 60 || l.HardByteLimit != nl.XFRM_INF {
			t.Errorf("lifetimes: %+v", l)
		}
		esn := attrs[nl.XFRMA_REPLAY_ESN_VAL]
		if esn == nil || binary.NativeEndian.Uint32(esn[20:]) != 2048 || binary.NativeEndian.Uint32(esn[0:]) != 64 {
			t.Errorf("replay ESN attr %x", esn)
		}
		encap := attrs[nl.XFRMA_ENCAP]
		if encap == nil || binary.NativeEndian.Uint16(encap) != 2 || binary.BigEndian.Uint16(encap[2:]) != 4500 ||
			binary.BigEndian.Uint16(encap[4:]) != 31337 {
			t.Errorf("encap attr %x", encap)
		}
		if m := attrs[nl.XFRMA_MARK]; m == nil || binary.NativeEndian.Uint32(m) != 9 {
			t.Errorf("mark attr %x", m)
		}
		if m := attrs[nl.XFRMA_IF_ID]; m == nil || binary.NativeEndian.Uint32(m) != 11 {
			t.Errorf("if_id attr %x", m)
		}
		if attrs[nl.XFRMA_OFFLOAD_DEV] != nil {
			t.Errorf("offload attribute without offload")
		}
		zeroRequest(req)
		for _, d := range req.Data {
			if rt, ok := d.(*nl.RtAttr); ok && rt.Type == c.attr && len(strings.Trim(string(rt.Data), "\x00")) != 0 {
				t.Errorf("zeroRequest left %q", rt.Data)
			}
		}
	}

	// Offload attribute: ifindex and direction/family flags.
	sa := base
	sa.Encryption, sa.EncKey, sa.Inbound = "aes-gcm-16", make([]byte, 20), true
	sa.Src, sa.Dst = netip.MustParseAddr("fd00::2"), netip.MustParseAddr("fd00::1")
	req, err := newSARequest(&sa, DefaultReqIDBase, &offloadRequest{ifindex: 5, flags: offloadInbound | offloadIPv6})
	if err != nil {
		t.Fatal(err)
	}
	_, attrs := attrsOf(t, req)
	off := attrs[nl.XFRMA_OFFLOAD_DEV]
	if off == nil || binary.NativeEndian.Uint32(off) != 5 || off[4] != offloadInbound|offloadIPv6 {
		t.Errorf("offload attr %x", off)
	}

	// ReplayWindow 0 means the default.
	sa = base
	sa.Encryption, sa.EncKey, sa.ReplayWindow = "aes-gcm-16", make([]byte, 20), 0
	req, _ = newSARequest(&sa, DefaultReqIDBase, nil)
	if _, attrs = attrsOf(t, req); binary.NativeEndian.Uint32(attrs[nl.XFRMA_REPLAY_ESN_VAL][20:]) != DefaultReplayWindow {
		t.Errorf("default replay window not %d", DefaultReplayWindow)
	}
}

func TestSARequestBadInput(t *testing.T) {
	good := provider.ChildSA{SPI: 0x100, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"),
		Mode: provider.Transport, Encryption: "aes-gcm-16", EncKey: make([]byte, 20)}
	cases := map[string]func(*provider.ChildSA){
		"spi 0":           func(s *provider.ChildSA) { s.SPI = 0 },
		"no dst":          func(s *provider.ChildSA) { s.Dst = netip.Addr{} },
		"mixed family":    func(s *provider.ChildSA) { s.Dst = netip.MustParseAddr("::1") },
		"unknown cipher":  func(s *provider.ChildSA) { s.Encryption = "des" },
		"short key":       func(s *provider.ChildSA) { s.EncKey = make([]byte, 16) },
		"aead with integ": func(s *provider.ChildSA) { s.Integrity, s.IntegKey = "hmac-sha2-256-128", make([]byte, 32) },
		"cbc no integ":    func(s *provider.ChildSA) { s.Encryption, s.EncKey = "aes-cbc", make([]byte, 16) },
		"integ key": func(s *provider.ChildSA) {
			s.Encryption, s.EncKey, s.Integrity, s.IntegKey = "aes-cbc", make([]byte, 16), "hmac-sha2-256-128", make([]byte, 20)
		},
		"mode":   func(s *provider.ChildSA) { s.Mode = 7 },
		"replay": func(s *provider.ChildSA) { s.ReplayWindow = 1 << 20 },
	}
	if _, err := newSARequest(&good, 1, nil); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range cases {
		sa := good
		mutate(&sa)
		if _, err := newSARequest(&sa, 1, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestOffloadDecision: "required" fails naming device and feature on a
// device without ESP offload (a veth), "preferred" falls back and logs once,
// and a capable device (probe double) gets XFRMA_OFFLOAD_DEV with its index.
func TestOffloadDecision(t *testing.T) {
	requireRoot(t)
	nsA := newNS(t, "veil-xfrm-offA")
	newNS(t, "veil-xfrm-offB")
	vethPair(t, "veil-xfrm-offA", "veil-xfrm-offB")
	logs := &logBuffer{}
	d := newDataplane(t, nsA, logs)
	sa := &provider.ChildSA{ReqID: 1, SPI: 0x1001, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"),
		Mode: provider.Transport, Encryption: "aes-gcm-16", EncKey: make([]byte, 20), Offload: "required"}

	// The real probe: veth has no esp-hw-offload.
	capable, err := espOffloadActive(nsA, "va")
	if err != nil || capable {
		t.Fatalf("probe of veth: capable=%v err=%v", capable, err)
	}
	err = d.InstallSA(bg, sa)
	if err == nil || !strings.Contains(err.Error(), "device va") || !strings.Contains(err.Error(), "esp-hw-offload") {
		t.Fatalf("required offload on veth: %v", err)
	}
	sa.Offload = "preferred"
	for range 2 {
		off, err := d.offloadFor(sa)
		if err != nil || off != nil {
			t.Fatalf("preferred on veth: off=%v err=%v", off, err)
		}
	}
	if n := strings.Count(logs.String(), "offload preferred but unavailable"); n != 1 {
		t.Errorf("fallback logged %d times, want once:\n%s", n, logs.String())
	}
	sa.Offload = "sometimes"
	if _, err := d.offloadFor(sa); err == nil {
		t.Error("bad offload value accepted")
	}

	// A capable device (no such NIC here: probe double).
	d.probe = func(string) (bool, error) { return true, nil }
	va := sh(t, "ip", "-n", "veil-xfrm-offA", "-o", "link", "show", "va")
	ifindex := 0
	for _, c := range va {
		if c == ':' {
			break
		}
		ifindex = ifindex*10 + int(c-'0')
	}
	sa.Offload, sa.Inbound = "required", true
	sa.Src, sa.Dst = sa.Dst, sa.Src
	off, err := d.offloadFor(sa)
	if err != nil || off == nil || off.ifindex != ifindex || off.flags != offloadInbound {
		t.Fatalf("capable device: off=%+v err=%v (va is %d)", off, err, ifindex)
	}
	d.packetOff = true
	sa.Inbound = false
	sa.Src, sa.Dst = netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	off, err = d.offloadFor(sa)
	if err != nil || off == nil || off.flags != offloadIPv6|offloadPacket {
		t.Fatalf("packet offload v6 out: off=%+v err=%v", off, err)
	}
	req, err := newSARequest(sa, DefaultReqIDBase+1, off)
	if err != nil {
		t.Fatal(err)
	}
	_, attrs := attrsOf(t, req)
	if a := attrs[nl.XFRMA_OFFLOAD_DEV]; a == nil || int(binary.NativeEndian.Uint32(a)) != ifindex || a[4] != offloadIPv6|offloadPacket {
		t.Errorf("XFRMA_OFFLOAD_DEV = %x", a)
	}
}

func TestEnableESPInUDP(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := EnableESPInUDP(fd); err != nil {
		t.Fatal(err)
	}
	v, err := unix.GetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_ENCAP)
	if err != nil {
		t.Fatalf("getsockopt UDP_ENCAP: %v", err)
	}
	if v != unix.UDP_ENCAP_ESPINUDP {
		t.Errorf("UDP_ENCAP = %d", v)
	}
	if err := EnableESPInUDP(-1); err == nil {
		t.Error("bad fd accepted")
	}
}
