package engine

import (
	"context"

	"github.com/veil-ipsec/veil/core/engine/enginetest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/core/ike"
	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/core/transform"
	"github.com/veil-ipsec/veil/core/transport"
	"github.com/veil-ipsec/veil/core/ts"
)

// initiateExpect runs one initiation from A and returns its result.
func (p *pair) initiateExpect(t *testing.T) error {
	t.Helper()
	ch := p.a.e.StartInitiate("conn", "")
	p.flush()
	err, done := result(ch)
	if !done {
		t.Fatal("initiate did not finish")
	}
	return err
}

func mustContain(t *testing.T, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Fatalf("%q lacks %q", s, w)
		}
	}
}

func TestProposalSelection(t *testing.T) {
	for _, tc := range []struct {
		name       string
		a, b       []string
		preferOurs bool
		want       string
	}{
		{"same", []string{"aes128gcm16-prfsha256-x25519"}, []string{"aes128gcm16-prfsha256-x25519"}, false, "aes128gcm16-prfsha256-x25519"},
		{"initiator order wins", []string{"aes256gcm16-prfsha384-x25519", "aes128gcm16-prfsha256-x25519"},
			[]string{"aes128gcm16-prfsha256-x25519", "aes256gcm16-prfsha384-x25519"}, false, "aes256gcm16-prfsha384-x25519"},
		{"responder prefers its own", []string{"aes256gcm16-prfsha384-x25519", "aes128gcm16-prfsha256-x25519"},
			[]string{"aes128gcm16-prfsha256-x25519", "aes256gcm16-prfsha384-x25519"}, true, "aes128gcm16-prfsha256-x25519"},
		{"cbc with integrity", []string{"aes256-sha256-ecp256"}, []string{"aes128gcm16-prfsha256-x25519", "aes256-sha256-ecp256"}, false, "aes256-sha256-prfsha256-ecp256"},
		{"chacha", []string{"chacha20poly1305-prfsha256-x25519"}, []string{"chacha20poly1305-prfsha256-x25519"}, false, "chacha20poly1305-prfsha256-x25519"},
		{"modp2048", []string{"aes128gcm16-prfsha256-modp2048"}, []string{"aes128gcm16-prfsha256-modp2048"}, false, "aes128gcm16-prfsha256-modp2048"},
		{"ecp384", []string{"aes256gcm16-prfsha384-ecp384"}, []string{"aes256gcm16-prfsha384-ecp384"}, false, "aes256gcm16-prfsha384-ecp384"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, func(a, b *Connection) {
				a.IKEProposals = mustProposals(t, transform.ProtoIKE, tc.a...)
				b.IKEProposals = mustProposals(t, transform.ProtoIKE, tc.b...)
				b.PreferOurs = tc.preferOurs
			})
			p.up()
			p.established(t, 1)
			got := p.a.e.Snapshot()[0].Proposal
			if want := mustProposals(t, transform.ProtoIKE, tc.want)[0].String(); got != want {
				t.Fatalf("chose %s, want %s", got, want)
			}
		})
	}
}

func TestIKEProposalMismatch(t *testing.T) {
	p := newPair(t, func(a, b *Connection) {
		a.IKEProposals = mustProposals(t, transform.ProtoIKE, "aes256gcm16-prfsha384-ecp384")
	})
	err := p.initiateExpect(t)
	if err == nil {
		t.Fatal("succeeded without a common proposal")
	}
	mustContain(t, err.Error(), "none of our IKE proposals", "ecp384")
	mustContain(t, p.b.e.Status("conn").LastFailure, "ecp384", "x25519")
	if p.b.e.Stats().Handshakes["proposal"] != 1 || len(p.b.e.Snapshot()) != 0 || len(p.a.e.Snapshot()) != 0 {
		t.Fatal("state left behind or not counted")
	}
}

func TestInvalidKERetry(t *testing.T) {
	p := newPair(t, func(a, b *Connection) {
		// A guesses ECP-256 first; B only takes Curve25519.
		a.IKEProposals = mustProposals(t, transform.ProtoIKE, "aes128gcm16-prfsha256-ecp256-x25519")
	})
	var inits int
	p.filter = func(pk transport.Packet) []transport.Packet {
		if h, _ := exchangeOf(pk); h.Exchange == ike.IKE_SA_INIT && !h.IsResponse() {
			inits++
		}
		return []transport.Packet{pk}
	}
	p.up()
	p.established(t, 1)
	if inits != 2 {
		t.Fatalf("%d IKE_SA_INIT requests, want 2", inits)
	}
	if got, want := p.a.e.Snapshot()[0].Proposal, mustProposals(t, transform.ProtoIKE, "aes128gcm16-prfsha256-x25519")[0].String(); got != want {
		t.Fatalf("proposal %s", p.a.e.Snapshot()[0].Proposal)
	}
	if p.b.e.Stats().Handshakes["invalid-ke"] != 1 {
		t.Fatalf("stats %+v", p.b.e.Stats())
	}
}

func TestInvalidKEForUnofferedGroupFails(t *testing.T) {
	p := newPair(t, nil)
	// Forge B's answer: INVALID_KE_PAYLOAD asking for MODP-2048, which A never offered.
	p.filter = func(pk transport.Packet) []transport.Packet {
		h, _ := exchangeOf(pk)
		if h.Exchange == ike.IKE_SA_INIT && h.IsResponse() {
			m := &ike.Message{Header: ike.Header{SPIi: h.SPIi, Major: 2, Exchange: ike.IKE_SA_INIT, Flags: ike.FlagResponse},
				Payloads: []ike.Payload{&ike.Notify{NotifyType: ike.NotifyInvalidKePayload, Data: []byte{0, 14}}}}
			b, _ := m.Marshal()
			pk.Data = b
		}
		return []transport.Packet{pk}
	}
	err := p.initiateExpect(t)
	if err == nil {
		t.Fatal("accepted a group it never offered")
	}
	mustContain(t, err.Error(), "14")
}

func TestAuthFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(a, b *Connection)
		secretB string
		wantB   string
	}{
		{"psk mismatch", nil, "other", "pre-shared key mismatch"},
		{"identity mismatch", func(a, b *Connection) {
			b.Remote.ID = provider.Identity{Type: 2, Data: []byte("someone-else")}
		}, "secret", "does not match the configured remote identity"},
		{"no authenticator", func(a, b *Connection) { b.Remote.Method = "eap-tls" }, "secret", "no authenticator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, tc.edit)
			p.b.psk.Secret = []byte(tc.secretB)
			err := p.initiateExpect(t)
			if err == nil {
				t.Fatal("authenticated")
			}
			mustContain(t, err.Error(), "AUTHENTICATION_FAILED")
			mustContain(t, p.b.e.Status("conn").LastFailure, tc.wantB)
			p.gone(t)
			if p.b.e.Stats().Handshakes["auth"] != 1 || p.a.e.Stats().Handshakes["auth"] != 1 {
				t.Fatalf("stats a %+v b %+v", p.a.e.Stats(), p.b.e.Stats())
			}
		})
	}
}

// TestResponderAuthRejected: A rejects B's AUTH (B uses another key for
// making AUTH than A expects), deletes the IKE SA and says so.
func TestResponderAuthRejected(t *testing.T) {
	p := newPair(t, nil)
	p.a.psk.Secret = []byte("A-believes-this")
	p.b.psk.Secret = []byte("A-believes-this")
	// B verifies with the same key but A verifies B with another one.
	p.a.psk = nil
	var bad = &twoKeyPSK{make: []byte("A-believes-this"), verify: []byte("different")}
	p.a.e.env.Auth["psk"] = bad
	err := p.initiateExpect(t)
	if err == nil {
		t.Fatal("accepted a bad responder AUTH")
	}
	mustContain(t, err.Error(), "did not verify")
	p.gone(t)
}

func TestCookies(t *testing.T) {
	p := newPairCfg(t, nil, func(c *Config) { c.CookieThreshold = 1 })
	// A first attempt whose answers are all lost leaves one half-open SA on B.
	p.filter = func(pk transport.Packet) []transport.Packet {
		if pk.Local.Addr() == addrB {
			return nil
		}
		return []transport.Packet{pk}
	}
	first := p.a.e.StartInitiate("conn", "")
	p.flush()
	if len(p.b.e.halfOpen) != 1 {
		t.Fatalf("half-open %d", len(p.b.e.halfOpen))
	}
	p.filter = nil
	// A second IKE SA from a new SPI: B must ask for a cookie.
	var cookies int
	p.filter = func(pk transport.Packet) []transport.Packet {
		if h, _ := exchangeOf(pk); h.IsResponse() && h.Exchange == ike.IKE_SA_INIT {
			if m, err := ike.ParseMessage(pk.Data); err == nil && m.Notify(ike.NotifyCookie) != nil {
				cookies++
			}
		}
		return []transport.Packet{pk}
	}
	p.a.e.mu.Lock()
	sa, err := p.a.e.initiateLocked(p.a.e.conns["conn"], "", nil)
	p.a.e.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	p.flush()
	if cookies != 1 || p.b.e.Stats().Drops["cookie-required"] != 1 {
		t.Fatalf("cookies %d drops %v", cookies, p.b.e.Stats().Drops)
	}
	if sa.State.String() != "ESTABLISHED" {
		t.Fatalf("second SA %s", sa.State)
	}
	_ = first
}

func TestCookieRotation(t *testing.T) {
	p := newPairCfg(t, nil, func(c *Config) { c.CookieThreshold = -1 })
	// Capture B's cookie, rotate twice before A answers: the cookie is then
	// stale and B asks again; A succeeds on the third request.
	rotations := 0
	var cookies int
	p.filter = func(pk transport.Packet) []transport.Packet {
		if h, _ := exchangeOf(pk); h.IsResponse() && h.Exchange == ike.IKE_SA_INIT {
			if m, err := ike.ParseMessage(pk.Data); err == nil && m.Notify(ike.NotifyCookie) != nil {
				cookies++
				if rotations == 0 {
					p.b.e.RotateCookieSecret()
					p.b.e.RotateCookieSecret()
					rotations = 2
				} else if rotations == 2 {
					p.b.e.RotateCookieSecret() // one rotation: the cookie stays valid
					rotations = 3
				}
			}
		}
		return []transport.Packet{pk}
	}
	p.up()
	p.established(t, 1)
	if cookies != 2 {
		t.Fatalf("%d cookie answers, want 2", cookies)
	}
	// The secret also rotates by itself every CookieSecretLifetime.
	v := p.b.e.cookieVersion
	p.advance(CookieSecretLifetime)
	p.a.e.StartInitiate("conn", "")
	p.a.e.mu.Lock()
	p.a.e.initiateLocked(p.a.e.conns["conn"], "", nil)
	p.a.e.mu.Unlock()
	p.flush()
	if p.b.e.cookieVersion != v+1 {
		t.Fatalf("cookie version %d after %s, want %d", p.b.e.cookieVersion, CookieSecretLifetime, v+1)
	}
}

func TestNATDetection(t *testing.T) {
	// B accepts any peer address: A is seen behind its NAT.
	p := newPair(t, func(a, b *Connection) { b.RemoteAddrs = nil })
	nat := netip.MustParseAddr("198.51.100.7")
	mapPort := func(port uint16) uint16 { return port + 40000 }
	// A sits behind a NAT that maps addrA:port to nat:port+40000.
	p.filter = func(pk transport.Packet) []transport.Packet {
		if pk.Local.Addr() == addrA {
			pk.Local = netip.AddrPortFrom(nat, mapPort(pk.Local.Port()))
		}
		if pk.Remote.Addr() == nat {
			pk.Remote = netip.AddrPortFrom(addrA, pk.Remote.Port()-40000)
		}
		return []transport.Packet{pk}
	}
	p.up()
	sa, sb := p.a.e.Snapshot()[0], p.b.e.Snapshot()[0]
	if sa.Local != "192.0.2.1:4500" || sa.Remote != "192.0.2.2:4500" {
		t.Fatalf("A did not float: %s -> %s", sa.Local, sa.Remote)
	}
	if sb.Remote != "198.51.100.7:44500" || sb.Local != "192.0.2.2:4500" {
		t.Fatalf("B follows %s -> %s", sb.Local, sb.Remote)
	}
	outA := p.a.dp.Outbound()[0]
	outB := p.b.dp.Outbound()[0]
	if outA.Encap == nil || outA.Encap.SrcPort != 4500 || outA.Encap.DstPort != 4500 {
		t.Fatalf("A encap %+v", outA.Encap)
	}
	if outB.Encap == nil || outB.Encap.DstPort != 44500 {
		t.Fatalf("B encap %+v", outB.Encap)
	}
	// Without a NAT there is no encapsulation.
	q := newPair(t, nil)
	q.up()
	if q.a.dp.Outbound()[0].Encap != nil {
		t.Fatal("encap without NAT")
	}
}

func TestTransportModeRefusal(t *testing.T) {
	t.Run("peer answers tunnel", func(t *testing.T) {
		p := newPair(t, func(a, b *Connection) { b.Children[0].Mode = provider.Tunnel })
		err := p.initiateExpect(t)
		if err == nil {
			t.Fatal("child came up in tunnel mode")
		}
		mustContain(t, err.Error(), "requires transport mode", "tunnel")
		// The IKE SA stays; neither side keeps the child.
		for _, x := range []*peer{p.a, p.b} {
			s := x.e.Snapshot()
			if len(s) != 1 || s[0].State != "ESTABLISHED" || len(s[0].Children) != 0 || len(x.dp.SAs) != 0 || x.dp.PolicyCount() != 0 {
				t.Fatalf("left: %+v, %d SAs", s, len(x.dp.SAs))
			}
		}
		mustContain(t, p.a.e.Status("conn").LastFailure, "transport")
	})
	t.Run("peer requires transport", func(t *testing.T) {
		p := newPair(t, func(a, b *Connection) { a.Children[0].Mode = provider.Tunnel })
		err := p.initiateExpect(t)
		if err == nil {
			t.Fatal("child came up")
		}
		mustContain(t, p.b.e.Status("conn").LastFailure, "requires transport mode")
		if len(p.a.dp.SAs) != 0 || len(p.b.dp.SAs) != 0 {
			t.Fatal("SAs installed")
		}
	})
	t.Run("both tunnel", func(t *testing.T) {
		p := newPair(t, func(a, b *Connection) { a.Children[0].Mode = provider.Tunnel; b.Children[0].Mode = provider.Tunnel })
		p.up()
		p.established(t, 1)
		if m := p.a.dp.Outbound()[0].Mode; m != provider.Tunnel {
			t.Fatalf("mode %v", m)
		}
		if p.a.dp.PolicyCount() != 3 {
			t.Fatalf("tunnel mode wants in, out and fwd policies; got %d", p.a.dp.PolicyCount())
		}
	})
}

func TestTrafficSelectors(t *testing.T) {
	sel := func(ss ...string) []provider.TrafficSelector {
		var out []provider.TrafficSelector
		for _, s := range ss {
			out = append(out, ts.MustParse(s))
		}
		return out
	}
	for _, tc := range []struct {
		name                  string
		aLocal, aRemote       []provider.TrafficSelector
		bLocal, bRemote       []provider.TrafficSelector
		wantLocal, wantRemote string // A's installed selectors
		wantErr               string
	}{
		{"exact", sel("10.1.0.0/16"), sel("10.2.0.0/16"), sel("10.2.0.0/16"), sel("10.1.0.0/16"), "10.1.0.0/16", "10.2.0.0/16", ""},
		{"narrowed by responder", sel("10.1.0.0/16"), sel("10.2.0.0/16"), sel("10.2.1.0/24"), sel("10.1.0.0/16"), "10.1.0.0/16", "10.2.1.0/24", ""},
		{"narrowed both", sel("10.1.0.0/16"), sel("10.2.0.0/16"), sel("10.2.1.0/24"), sel("10.1.5.0/24"), "10.1.5.0/24", "10.2.1.0/24", ""},
		{"port narrowing", sel("10.1.0.0/16"), sel("10.2.0.0/16"), sel("10.2.0.0/16[tcp/443]"), sel("10.1.0.0/16"), "10.1.0.0/16", "10.2.0.0/16[tcp/443]", ""},
		{"disjoint", sel("10.1.0.0/16"), sel("10.2.0.0/16"), sel("10.9.0.0/16"), sel("10.1.0.0/16"), "", "", "traffic selectors"},
		{"protocol mismatch", sel("10.1.0.0/16[udp]"), sel("10.2.0.0/16[udp]"), sel("10.2.0.0/16[tcp]"), sel("10.1.0.0/16[tcp]"), "", "", "traffic selectors"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, func(a, b *Connection) {
				for _, c := range []*Connection{a, b} {
					c.Children[0].Mode = provider.Tunnel
				}
				a.Children[0].LocalTS, a.Children[0].RemoteTS = tc.aLocal, tc.aRemote
				b.Children[0].LocalTS, b.Children[0].RemoteTS = tc.bLocal, tc.bRemote
			})
			err := p.initiateExpect(t)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatal("child came up")
				}
				mustContain(t, err.Error(), tc.wantErr)
				mustContain(t, p.b.e.Status("conn").LastFailure, ts.FormatList(tc.bLocal), ts.FormatList(tc.aLocal))
				if len(p.a.dp.SAs)+len(p.b.dp.SAs) != 0 {
					t.Fatal("SAs installed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p.established(t, 1)
			c := p.a.e.Snapshot()[0].Children[0]
			if strings.Join(c.LocalTS, ",") != tc.wantLocal || strings.Join(c.RemoteTS, ",") != tc.wantRemote {
				t.Fatalf("A installed %v === %v", c.LocalTS, c.RemoteTS)
			}
			cb := p.b.e.Snapshot()[0].Children[0]
			if strings.Join(cb.RemoteTS, ",") != tc.wantLocal || strings.Join(cb.LocalTS, ",") != tc.wantRemote {
				t.Fatalf("B installed %v === %v", cb.LocalTS, cb.RemoteTS)
			}
		})
	}
}

func TestESPProposalMismatch(t *testing.T) {
	p := newPair(t, func(a, b *Connection) {
		a.Children[0].ESPProposals = mustProposals(t, transform.ProtoESP, "aes256gcm16")
		b.Children[0].ESPProposals = mustProposals(t, transform.ProtoESP, "chacha20poly1305")
	})
	err := p.initiateExpect(t)
	if err == nil {
		t.Fatal("child came up")
	}
	mustContain(t, err.Error(), "ESP proposals")
	mustContain(t, p.b.e.Status("conn").LastFailure, "chacha20poly1305")
	if s := p.a.e.Snapshot(); len(s) != 1 || s[0].State != "ESTABLISHED" {
		t.Fatalf("IKE SA should stay: %+v", s)
	}
}

func TestESPAlgorithms(t *testing.T) {
	for _, prop := range []string{"aes128gcm16", "aes256gcm16", "chacha20poly1305", "aes128-sha256", "aes256-sha512"} {
		t.Run(prop, func(t *testing.T) {
			p := newPair(t, func(a, b *Connection) {
				a.Children[0].ESPProposals = mustProposals(t, transform.ProtoESP, prop)
				b.Children[0].ESPProposals = mustProposals(t, transform.ProtoESP, prop)
			})
			p.up()
			p.established(t, 1)
			o := p.a.dp.Outbound()[0]
			if o.Encryption == "" || (strings.Contains(prop, "sha") != (o.Integrity != "")) {
				t.Fatalf("algorithms %q/%q", o.Encryption, o.Integrity)
			}
		})
	}
}

func TestDPD(t *testing.T) {
	p := newPair(t, func(a, b *Connection) { a.DPDDelay = 30 * time.Second })
	p.up()
	p.advance(29 * time.Second)
	p.flush()
	if p.a.e.Stats().DPDSent != 0 {
		t.Fatal("DPD before the delay")
	}
	p.advance(time.Second)
	p.flush()
	if p.a.e.Stats().DPDSent != 1 {
		t.Fatalf("DPD sent %d", p.a.e.Stats().DPDSent)
	}
	p.established(t, 1)
	// Now the peer goes silent: the SA is cleared after the retransmits.
	p.filter = func(transport.Packet) []transport.Packet { return nil }
	for i := 0; i < 20; i++ {
		p.advance(30 * time.Second)
		p.flush()
	}
	if s := p.a.e.Snapshot(); len(s) != 0 || len(p.a.dp.SAs) != 0 || p.a.dp.PolicyCount() != 0 {
		t.Fatalf("dead peer's SA kept: %+v", s)
	}
	if p.a.e.Stats().DPDTimeouts != 1 {
		t.Fatalf("stats %+v", p.a.e.Stats())
	}
	mustContain(t, p.a.e.Status("conn").LastFailure, "did not answer", "INFORMATIONAL")
}

func TestDeleteFromResponder(t *testing.T) {
	p := newPair(t, nil)
	p.up()
	done, err := p.b.e.StartTerminate("conn")
	if err != nil {
		t.Fatal(err)
	}
	p.flush()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("terminate hung")
	}
	p.gone(t)
}

func TestDeleteChildOnly(t *testing.T) {
	p := newPair(t, nil)
	p.up()
	p.a.e.mu.Lock()
	for _, sa := range p.a.e.sas {
		if err := sa.DeleteChild("c1"); err != nil {
			t.Fatal(err)
		}
		p.a.e.after(sa)
	}
	p.a.e.mu.Unlock()
	p.flush()
	for _, x := range []*peer{p.a, p.b} {
		s := x.e.Snapshot()
		if len(s) != 1 || s[0].State != "ESTABLISHED" || len(s[0].Children) != 0 || len(x.dp.SAs) != 0 || x.dp.PolicyCount() != 0 {
			t.Fatalf("after child delete: %+v, %d SAs", s, len(x.dp.SAs))
		}
	}
}

func TestHalfOpenExpires(t *testing.T) {
	p := newPair(t, nil)
	p.filter = func(pk transport.Packet) []transport.Packet {
		if h, _ := exchangeOf(pk); h.Exchange == ike.IKE_AUTH {
			return nil
		}
		return []transport.Packet{pk}
	}
	p.a.e.StartInitiate("conn", "")
	p.flush()
	if len(p.b.e.halfOpen) != 1 {
		t.Fatal("no half-open SA")
	}
	p.advance(31 * time.Second)
	if len(p.b.e.halfOpen) != 0 || len(p.b.e.Snapshot()) != 0 {
		t.Fatal("half-open SA kept past its timeout")
	}
}

func TestMalformedDropped(t *testing.T) {
	p := newPair(t, nil)
	var seen []transport.Packet
	p.filter = func(pk transport.Packet) []transport.Packet {
		seen = append(seen, pk)
		return []transport.Packet{pk}
	}
	p.up()
	p.filter = nil
	for _, x := range [][]byte{nil, {1, 2, 3}, make([]byte, 28), make([]byte, 200)} {
		p.b.e.HandlePacket(transport.Packet{Data: x, Local: netip.AddrPortFrom(addrB, 500), Remote: netip.AddrPortFrom(addrA, 500)})
	}
	// Every message of the handshake with each byte flipped in turn and cut
	// at each length, to both sides: never a panic, never a state change.
	for _, pk := range seen {
		h, _ := exchangeOf(pk)
		dst := p.b
		if pk.Remote.Addr() == addrA {
			dst = p.a
		}
		in := transport.Packet{Local: pk.Remote, Remote: pk.Local}
		for i := range pk.Data {
			if h.Exchange == ike.IKE_SA_INIT && !h.IsResponse() {
				break // a changed IKE_SA_INIT request is a new, valid request
			}
			in.Data = append([]byte(nil), pk.Data...)
			in.Data[i] ^= 0xff
			dst.e.HandlePacket(in)
		}
		for n := range len(pk.Data) {
			in.Data = pk.Data[:n]
			dst.e.HandlePacket(in)
		}
	}
	p.flush()
	if d := p.b.e.Stats().Drops["malformed"]; d < 100 {
		t.Fatalf("malformed drops %d", d)
	}
	p.established(t, 1)
}

// TestCorruptedRequestRetransmitted: a request whose ciphertext was damaged
// fails the integrity check, is dropped, and the retransmit gets through.
func TestCorruptedRequestRetransmitted(t *testing.T) {
	p := newPair(t, func(a, b *Connection) { a.DPDDelay = 10 * time.Second })
	p.up()
	corrupted := false
	p.filter = func(pk transport.Packet) []transport.Packet {
		if h, _ := exchangeOf(pk); h.Exchange == ike.INFORMATIONAL && !h.IsResponse() && !corrupted {
			corrupted = true
			pk.Data = append([]byte(nil), pk.Data...)
			pk.Data[len(pk.Data)-1] ^= 1
		}
		return []transport.Packet{pk}
	}
	p.advance(10 * time.Second)
	p.flush()
	if p.b.e.Stats().Drops["integrity"] != 1 {
		t.Fatalf("drops %v", p.b.e.Stats().Drops)
	}
	p.advance(4 * time.Second)
	p.flush()
	p.established(t, 1)
	if p.a.e.Stats().Retransmits != 1 || p.a.e.Stats().DPDSent != 1 {
		t.Fatalf("stats %+v", p.a.e.Stats())
	}
}

// twoKeyPSK makes AUTH with one key and verifies with another.
type twoKeyPSK struct{ make, verify []byte }

func (k *twoKeyPSK) Make(ctx context.Context, r *provider.AuthRequest) (*provider.AuthResult, error) {
	return (&enginetest.PSK{Secret: k.make}).Make(ctx, r)
}

func (k *twoKeyPSK) Verify(ctx context.Context, r *provider.AuthRequest) error {
	return (&enginetest.PSK{Secret: k.verify}).Verify(ctx, r)
}

// ForceEncap (encap = true) on either side makes both float to 4500 and
// UDP-encapsulate ESP without a NAT, as strongSwan's encap does.
func TestForceEncap(t *testing.T) {
	for _, side := range []string{"initiator", "responder"} {
		t.Run(side, func(t *testing.T) {
			p := newPair(t, func(a, b *Connection) {
				if side == "initiator" {
					a.ForceEncap = true
				} else {
					b.ForceEncap = true
				}
			})
			p.up()
			sa := p.a.e.Snapshot()[0]
			if sa.Local != "192.0.2.1:4500" || sa.Remote != "192.0.2.2:4500" {
				t.Fatalf("A did not float: %s -> %s", sa.Local, sa.Remote)
			}
			for _, x := range []*peer{p.a, p.b} {
				out := x.dp.Outbound()[0]
				if out.Encap == nil || out.Encap.SrcPort != 4500 || out.Encap.DstPort != 4500 {
					t.Fatalf("encap %+v", out.Encap)
				}
			}
			p.established(t, 1)
		})
	}
}
