// Package interop checks veild against strongSwan's charon, each in its own
// network namespace, through the operators' interfaces only: veild's HCL and
// veilctl on one side, swanctl.conf and swanctl (over charon's vici socket)
// on the other.
//
// charon runs with kernel-libipsec (ESP in userspace over a TUN device),
// since this kernel has XFRM but no ESP. That backend supports tunnel mode
// only ("IPsec SA: unsupported mode" for transport), so the children here are
// tunnel mode between inner networks, and every case pings through them:
// charon's own ESP implementation decrypts what veil sends and the reverse.
// Transport mode against charon's kernel ESP is left to the kernel lab.
package interop

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/test/netns"
)

// views are both daemons' reports on the one IKE SA between them.
type views struct{ veil, charon ikeSA }

// installed returns the single INSTALLED child of an IKE SA, if it has
// exactly one (while a rekey is under way there are two, or none).
func installed(s ikeSA) (childSA, bool) {
	var out []childSA
	for _, c := range s.Children {
		if strings.EqualFold(c.State, "INSTALLED") {
			out = append(out, c)
		}
	}
	if len(out) != 1 {
		return childSA{}, false
	}
	return out[0], true
}

// paired reads both sides and reports whether each has exactly one
// ESTABLISHED IKE SA with one INSTALLED tunnel-mode child, and the two agree:
// same IKE SPIs, opposite roles, each side's inbound child SPI the other's
// outbound one.
func (l *lab) paired() (views, string) {
	v, c := l.veil.sas(), l.charon.sas()
	w := views{}
	if len(v) != 1 || len(c) != 1 {
		return w, fmt.Sprintf("IKE SAs: veil %+v, charon %+v", v, c)
	}
	w.veil, w.charon = v[0], c[0]
	switch {
	case w.veil.State != "ESTABLISHED" || w.charon.State != "ESTABLISHED":
		return w, fmt.Sprintf("states: veil %s, charon %s", w.veil.State, w.charon.State)
	case w.veil.SPIi != w.charon.SPIi || w.veil.SPIr != w.charon.SPIr:
		return w, fmt.Sprintf("IKE SPIs differ: veil %s_i %s_r, charon %s_i %s_r", w.veil.SPIi, w.veil.SPIr, w.charon.SPIi, w.charon.SPIr)
	case w.veil.Initiator == w.charon.Initiator:
		return w, fmt.Sprintf("roles: veil initiator %v, charon initiator %v", w.veil.Initiator, w.charon.Initiator)
	}
	vc, ok1 := installed(w.veil)
	cc, ok2 := installed(w.charon)
	switch {
	case !ok1 || !ok2:
		return w, fmt.Sprintf("children: veil %+v, charon %+v", w.veil.Children, w.charon.Children)
	case vc.Mode != "tunnel" || cc.Mode != "tunnel":
		return w, fmt.Sprintf("child modes: veil %s, charon %s", vc.Mode, cc.Mode)
	case vc.SPIIn != cc.SPIOut || vc.SPIOut != cc.SPIIn:
		return w, fmt.Sprintf("child SPIs do not pair: veil in %s out %s, charon in %s out %s", vc.SPIIn, vc.SPIOut, cc.SPIIn, cc.SPIOut)
	}
	return w, ""
}

// waitPaired waits until both sides agree (see paired) and cond holds.
func (l *lab) waitPaired(what string, cond func(views) bool) views {
	l.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		w, why := l.paired()
		if why == "" && (cond == nil || cond(w)) {
			return w
		}
		if time.Now().After(deadline) {
			if why == "" {
				why = fmt.Sprintf("veil %+v, charon %+v", w.veil, w.charon)
			}
			l.t.Fatalf("timed out waiting for %s: %s", what, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ping sends three echo requests from veil's inner network to charon's,
// through the tunnel both ways, and checks each side counted them on the
// child now installed.
func (l *lab) ping() {
	l.t.Helper()
	before, _ := l.paired()
	vc0, _ := installed(before.veil)
	cc0, _ := installed(before.charon)
	if out, err := l.veilNS.Output("ping", "-c", "3", "-i", "0.2", "-W", "2", "-I", l.addrs.veilInner, l.addrs.charonInner); err != nil {
		l.t.Fatalf("ping %s -> %s through the tunnel: %v\n%s", l.addrs.veilInner, l.addrs.charonInner, err, out)
	}
	after, why := l.paired()
	if why != "" {
		l.t.Fatalf("after ping: %s", why)
	}
	vc, _ := installed(after.veil)
	cc, _ := installed(after.charon)
	// 3 requests out and 3 replies in on each side.
	if vc.Packets-vc0.Packets < 6 || cc.Packets-cc0.Packets < 6 {
		l.t.Errorf("child packet counters moved by veil %d, charon %d; want 6 each", vc.Packets-vc0.Packets, cc.Packets-cc0.Packets)
	}
}

// waitGone waits until neither side has an IKE SA left.
func (l *lab) waitGone(what string) {
	l.t.Helper()
	netns.WaitFor(l.t, what, 20*time.Second, func() bool {
		return len(l.veil.sas()) == 0 && len(l.charon.sas()) == 0
	})
}

// charonInitiate has charon start the IKE SA and its child.
func (l *lab) charonInitiate() {
	l.t.Helper()
	l.charon.swanctl("--initiate", "--child", "net", "--timeout", "20")
}

var proposals = []struct {
	name     string
	ike, esp string
	group    string // the key exchange as charon names it
}{
	{"aes256gcm16-x25519", "aes256gcm16-prfsha256-x25519", "aes256gcm16", "CURVE_25519"},
	{"aes128-sha256-ecp256", "aes128-sha256-ecp256", "aes128-sha256", "ECP_256"},
	{"aes128-sha256-modp3072", "aes128-sha256-modp3072", "aes256-sha256", "MODP_3072"},
	{"chacha20poly1305-x25519", "chacha20poly1305-prfsha512-x25519", "chacha20poly1305", "CURVE_25519"},
	{"aes256-sha384-ecp384", "aes256-sha384-ecp384", "aes256-sha512", "ECP_384"},
}

// checkGroup checks that both sides agreed on the configured key exchange.
func checkGroup(t *testing.T, w views, group, ike string) {
	t.Helper()
	if w.charon.Proposal != group || !strings.HasSuffix(w.veil.Proposal, ike[strings.LastIndex(ike, "-"):]) {
		t.Errorf("key exchange: charon %s, veil proposal %q; want %s (%s)", w.charon.Proposal, w.veil.Proposal, group, ike)
	}
}

// veil initiates, charon responds; veilctl terminate deletes on both sides.
func TestVeilInitiatesToCharon(t *testing.T) {
	for _, p := range proposals {
		t.Run(p.name, func(t *testing.T) {
			l := newLab(t, setup{Mode: "tunnel", IKEProposal: p.ike, ESPProposal: p.esp, VeilStarts: true})
			w := l.waitPaired("veil's IKE SA established on both sides", nil)
			if !w.veil.Initiator {
				t.Errorf("veil started the IKE SA but does not report itself as initiator")
			}
			checkGroup(t, w, p.group, p.ike)
			l.ping()
			l.veil.ctl("terminate", "interop")
			l.waitGone("IKE SA deleted on both sides after veilctl terminate")
		})
	}
}

// charon initiates, veil responds; swanctl --terminate deletes on both sides.
func TestCharonInitiatesToVeil(t *testing.T) {
	for _, p := range proposals {
		t.Run(p.name, func(t *testing.T) {
			l := newLab(t, setup{Mode: "tunnel", IKEProposal: p.ike, ESPProposal: p.esp})
			l.charonInitiate()
			w := l.waitPaired("charon's IKE SA established on both sides", nil)
			if !w.charon.Initiator {
				t.Errorf("charon started the IKE SA but does not report itself as initiator")
			}
			checkGroup(t, w, p.group, p.ike)
			l.ping()
			l.charon.swanctl("--terminate", "--ike", "veil", "--timeout", "10")
			l.waitGone("IKE SA deleted on both sides after swanctl --terminate")
		})
	}
}

// IPv6 outside and inside the tunnel, from each side.
func TestIPv6WithCharon(t *testing.T) {
	for _, veilStarts := range []bool{true, false} {
		name := "charon-initiated"
		if veilStarts {
			name = "veil-initiated"
		}
		t.Run(name, func(t *testing.T) {
			l := newLab(t, setup{Mode: "tunnel", IKEProposal: "aes256gcm16-prfsha256-x25519", ESPProposal: "aes256gcm16", VeilStarts: veilStarts, IPv6: true})
			if !veilStarts {
				l.charonInitiate()
			}
			l.waitPaired("IKE SA over IPv6 established on both sides", nil)
			l.ping()
			l.veil.ctl("terminate", "interop")
			l.waitGone("IKE SA deleted on both sides")
		})
	}
}

// Child SA rekeys by the IKE SA's initiator and then by its responder (the
// child's keys follow the CREATE_CHILD_SA exchange's roles, RFC 7296 §2.17,
// not the IKE SA's: wrong, charon fails every packet on the new SA), then
// IKE SA rekeys started by each side in turn: new SPIs agreed on both sides,
// traffic through the child after each, and the child surviving the IKE
// rekeys (RFC 7296 §2.8: children move to the new IKE SA).
func TestRekeyWithCharon(t *testing.T) {
	for _, veilStarts := range []bool{true, false} {
		name := "charon-initiated"
		if veilStarts {
			name = "veil-initiated"
		}
		t.Run(name, func(t *testing.T) {
			l := newLab(t, setup{Mode: "tunnel", IKEProposal: "aes256gcm16-prfsha256-x25519", ESPProposal: "aes256gcm16", VeilStarts: veilStarts})
			veilRekey := func(target string) func() { return func() { l.veil.ctl("rekey", target) } }
			charonRekey := func(args ...string) func() {
				return func() { l.charon.swanctl(append([]string{"--rekey"}, args...)...) }
			}
			first, second := "veil", "charon"
			childRekeyFirst, childRekeySecond := veilRekey("interop/net"), charonRekey("--child", "net")
			ikeRekeyFirst, ikeRekeySecond := veilRekey("interop"), charonRekey("--ike", "veil")
			if !veilStarts {
				l.charonInitiate()
				first, second = second, first
				childRekeyFirst, childRekeySecond = childRekeySecond, childRekeyFirst
				ikeRekeyFirst, ikeRekeySecond = ikeRekeySecond, ikeRekeyFirst
			}
			w := l.waitPaired("established", nil)

			rekeyChild := func(who string, do func()) {
				old, _ := installed(w.veil)
				do()
				w = l.waitPaired("child rekeyed by "+who, func(w views) bool {
					c, _ := installed(w.veil)
					return c.SPIIn != old.SPIIn && c.SPIOut != old.SPIOut
				})
				l.ping()
			}
			rekeyChild(first+" (IKE initiator)", childRekeyFirst)
			rekeyChild(second+" (IKE responder)", childRekeySecond)

			rekeyIKE := func(who string, do func()) {
				old := w.veil
				oldChild, _ := installed(old)
				do()
				w = l.waitPaired("IKE SA rekeyed by "+who, func(w views) bool {
					return w.veil.SPIi != old.SPIi && w.veil.SPIr != old.SPIr
				})
				if c, _ := installed(w.veil); c.SPIIn != oldChild.SPIIn {
					t.Errorf("IKE rekey by %s replaced the child: %s -> %s", who, oldChild.SPIIn, c.SPIIn)
				}
				l.ping()
			}
			rekeyIKE(first, ikeRekeyFirst)
			rekeyIKE(second, ikeRekeySecond)
		})
	}
}

// Dead peer detection both ways: each side answers the other's DPD requests
// (empty INFORMATIONAL, seen in charon's log) and the IKE SA stays; when
// charon dies silently, veil's DPD finds out and clears the SAs
// (dpd_action "clear").
func TestDeadPeerDetectionWithCharon(t *testing.T) {
	l := newLab(t, setup{Mode: "tunnel", IKEProposal: "aes256gcm16-prfsha256-x25519", ESPProposal: "aes256gcm16", VeilStarts: true,
		CharonExtra: "dpd_delay = 1s",
		VeilExtra:   `dpd_delay = "1s"` + "\n" + `dpd_timeout = "3s"`})
	w := l.waitPaired("established", nil)
	dpd := regexp.MustCompile(`(?s)sending DPD request.*parsed INFORMATIONAL response \d+ \[ \]`)
	veilDPD := regexp.MustCompile(`(?s)parsed INFORMATIONAL request \d+ \[ \].*generating INFORMATIONAL response \d+ \[ \]`)
	netns.WaitFor(t, "DPD requests from each side answered by the other", 15*time.Second, func() bool {
		log := l.charon.log()
		return dpd.MatchString(log) && veilDPD.MatchString(log)
	})
	if now, why := l.paired(); why != "" || now.veil.SPIi != w.veil.SPIi {
		t.Fatalf("IKE SA did not survive charon's DPD: %s %+v", why, now)
	}
	l.ping()

	l.charon.kill()
	netns.WaitFor(t, "veil's DPD clearing the SAs of the dead charon", 20*time.Second, func() bool {
		return len(l.veil.sas()) == 0
	})
}

// IKE fragmentation (RFC 7383) both ways: charon's fragment size is set
// below its IKE_AUTH messages; veil's cannot go below 548 bytes, so both
// identities are long FQDNs (about 240 characters; veil's IKE_AUTH request
// carries both) to take veil's IKE_AUTH request over that. So charon's
// fragments are reassembled by veil as initiator and as responder, and
// veil's by charon when veil initiates.
func TestFragmentationWithCharon(t *testing.T) {
	long := strings.Repeat("fragmentation-test-label.", 9)
	for _, veilStarts := range []bool{true, false} {
		name := "charon-initiated"
		if veilStarts {
			name = "veil-initiated"
		}
		t.Run(name, func(t *testing.T) {
			l := newLab(t, setup{Mode: "tunnel", IKEProposal: "aes256gcm16-prfsha256-x25519", ESPProposal: "aes256gcm16", VeilStarts: veilStarts,
				VeilID: long + veilID, CharonID: long + charonID, VeilExtra: "fragmentation = true", VeilDaemon: "fragment_size = 548",
				CharonExtra: "fragmentation = yes", CharonConf: "fragment_size = 200"})
			if !veilStarts {
				l.charonInitiate()
			}
			l.waitPaired("IKE SA established through fragmented IKE_AUTH", nil)
			log := l.charon.log()
			split := regexp.MustCompile(`splitting IKE message .* into (\d+) fragments`)
			if m := split.FindStringSubmatch(log); m == nil || m[1] == "1" {
				t.Errorf("charon did not fragment its IKE_AUTH message: %v", m)
			}
			// veil's IKE_AUTH response carries one identity only, too
			// little to exceed 548 bytes: only its request is fragmented.
			if veilStarts && !strings.Contains(log, "reassembled fragmented IKE message") {
				t.Errorf("charon did not reassemble a fragmented message from veil")
			}
			l.ping()
		})
	}
}

// veild crashes (with its plugins) and comes back: its new IKE SA carries
// INITIAL_CONTACT, so charon drops the old one at once instead of keeping a
// stale SA until DPD; traffic flows on the new SA.
func TestRestartInitialContactWithCharon(t *testing.T) {
	l := newLab(t, setup{Mode: "tunnel", IKEProposal: "aes256gcm16-prfsha256-x25519", ESPProposal: "aes256gcm16", VeilStarts: true})
	old := l.waitPaired("established", nil)
	l.veil = l.veil.crash()
	l.waitPaired("new IKE SA after veil's restart, the old one gone from charon", func(w views) bool {
		return w.charon.SPIi != old.charon.SPIi
	})
	if !strings.Contains(l.charon.log(), "destroying duplicate IKE_SA for peer '"+veilID+"', received INITIAL_CONTACT") {
		t.Errorf("charon did not drop the old IKE SA on veil's INITIAL_CONTACT")
	}
	l.ping()
}

// Failures charon causes show in `veilctl status` with the reason an
// operator needs, on whichever side veil is.
func TestFailuresWithCharon(t *testing.T) {
	cases := []struct {
		name  string
		s     setup
		wants []string
	}{
		{"proposal-veil-initiates", setup{CharonIKE: "aes128-sha256-modp3072", VeilStarts: true}, []string{"none of our IKE proposals", "aes256gcm16-prfsha256-x25519"}},
		{"proposal-charon-initiates", setup{CharonIKE: "aes128-sha256-modp3072"}, []string{"proposal", "modp3072"}},
		{"psk-veil-initiates", setup{CharonPSK: "a different secret 0123456789 abcdef", VeilStarts: true}, []string{"AUTHENTICATION_FAILED"}},
		{"psk-charon-initiates", setup{CharonPSK: "a different secret 0123456789 abcdef"}, []string{"auth", "pre-shared key"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.s.Mode, c.s.IKEProposal, c.s.ESPProposal = "tunnel", "aes256gcm16-prfsha256-x25519", "aes256gcm16"
			l := newLab(t, c.s)
			if !c.s.VeilStarts {
				if out, err := l.charon.swanctlErr("--initiate", "--child", "net", "--timeout", "10"); err == nil {
					t.Fatalf("charon's initiate succeeded:\n%s", out)
				}
			}
			var out string
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				out = l.veil.ctl("status", "interop")
				missing := ""
				for _, w := range c.wants {
					if !strings.Contains(strings.ToLower(out), strings.ToLower(w)) {
						missing = w
					}
				}
				if missing == "" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("veilctl status never mentioned %q:\n%s", missing, out)
				}
			}
		})
	}
}

// Transport mode: charon's kernel-libipsec refuses to install it ("IPsec
// SA: unsupported mode"), so no child comes up, but the IKE SA must: SPIs
// agreeing on both sides, the failed child cleaned up on veil's side
// whichever side started (as initiator veil gets NO_PROPOSAL_CHOSEN in
// IKE_AUTH; as responder it installed the child and charon then deletes
// it), and delete from either side. ESP in transport mode against charon is
// exercised in the kernel lab, where charon has kernel ESP.
func TestTransportModeIKEWithCharon(t *testing.T) {
	for _, veilStarts := range []bool{true, false} {
		name := "charon-initiated"
		if veilStarts {
			name = "veil-initiated"
		}
		t.Run(name, func(t *testing.T) {
			l := newLab(t, setup{Mode: "transport", IKEProposal: "aes256gcm16-prfsha256-x25519", ESPProposal: "aes256gcm16", VeilStarts: veilStarts})
			if !veilStarts {
				// Fails: charon cannot install the child it negotiated.
				if out, err := l.charon.swanctlErr("--initiate", "--child", "net", "--timeout", "20"); err == nil {
					t.Fatalf("charon installed a transport-mode child with kernel-libipsec:\n%s", out)
				}
			}
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				v, c := l.veil.sas(), l.charon.sas()
				var why string
				switch {
				case len(v) != 1 || len(c) != 1:
					why = fmt.Sprintf("IKE SAs: veil %+v, charon %+v", v, c)
				case v[0].State != "ESTABLISHED" || c[0].State != "ESTABLISHED":
					why = fmt.Sprintf("states: veil %s, charon %s", v[0].State, c[0].State)
				case v[0].SPIi != c[0].SPIi || v[0].SPIr != c[0].SPIr:
					t.Fatalf("IKE SPIs differ: veil %+v, charon %+v", v[0], c[0])
				case v[0].Initiator != veilStarts || c[0].Initiator == veilStarts:
					t.Fatalf("roles: veil initiator %v, charon initiator %v", v[0].Initiator, c[0].Initiator)
				case len(v[0].Children) != 0 || len(c[0].Children) != 0:
					why = fmt.Sprintf("children left: veil %+v, charon %+v", v[0].Children, c[0].Children)
				}
				if why == "" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("timed out waiting for an IKE SA without children on both sides: %s", why)
				}
			}
			if veilStarts {
				l.charon.swanctl("--terminate", "--ike", "veil", "--timeout", "10")
			} else {
				l.veil.ctl("terminate", "interop")
			}
			l.waitGone("IKE SA deleted on both sides")
		})
	}
}

// PFS: both sides configure an ESP proposal with a key exchange. IKE_AUTH
// carries none (RFC 7296 §1.2: the first child's keys come from the IKE
// SA's), so the first child comes up without one, and each rekey of it, by
// either side, runs X25519 (charon reports the child's dh-group, veil the
// child's proposal), with traffic through the child after each.
func TestPFSWithCharon(t *testing.T) {
	for _, veilStarts := range []bool{true, false} {
		name := "charon-initiated"
		if veilStarts {
			name = "veil-initiated"
		}
		t.Run(name, func(t *testing.T) {
			l := newLab(t, setup{Mode: "tunnel", IKEProposal: "aes256gcm16-prfsha256-x25519", ESPProposal: "aes256gcm16-x25519", VeilStarts: veilStarts})
			if !veilStarts {
				l.charonInitiate()
			}
			w := l.waitPaired("IKE SA and first child established", nil)
			if g := l.charonChildGroup(); g != "" {
				t.Errorf("charon reports key exchange %s for the child of IKE_AUTH", g)
			}
			l.ping()
			for _, who := range []string{"veil", "charon"} {
				old, _ := installed(w.veil)
				if who == "veil" {
					l.veil.ctl("rekey", "interop/net")
				} else {
					l.charon.swanctl("--rekey", "--child", "net")
				}
				w = l.waitPaired("child rekeyed by "+who, func(w views) bool {
					c, _ := installed(w.veil)
					return c.SPIIn != old.SPIIn && c.SPIOut != old.SPIOut
				})
				if g := l.charonChildGroup(); g != "CURVE_25519" {
					t.Errorf("after %s's rekey charon reports the child's key exchange %q, want CURVE_25519", who, g)
				}
				if p := l.veilChildProposal(); !strings.Contains(p, "x25519") {
					t.Errorf("after %s's rekey veil reports the child's proposal %q, want one with x25519", who, p)
				}
				l.ping()
			}
		})
	}
}

// charonChildGroup is the key exchange charon reports for its one child
// ("" for none).
func (l *lab) charonChildGroup() string {
	l.t.Helper()
	out := l.charon.swanctl("--list-sas", "--raw")
	i := strings.Index(out, "child-sas {")
	if i < 0 {
		l.t.Fatalf("charon has no child:\n%s", out)
	}
	if m := regexp.MustCompile(`\bdh-group=([^\s}]+)`).FindStringSubmatch(out[i:]); m != nil {
		return m[1]
	}
	return ""
}

// veilChildProposal is the proposal veil reports for its one child.
func (l *lab) veilChildProposal() string {
	l.t.Helper()
	var s struct {
		IKESAs []struct {
			Children []struct {
				Proposal string `json:"proposal"`
			} `json:"children"`
		} `json:"ike_sas"`
	}
	if err := json.Unmarshal([]byte(l.veil.ctl("sas", "--json")), &s); err != nil || len(s.IKESAs) != 1 || len(s.IKESAs[0].Children) != 1 {
		l.t.Fatalf("veilctl sas: %v %+v", err, s)
	}
	return s.IKESAs[0].Children[0].Proposal
}
