package eap

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/sdk/auth"
	"github.com/veil-ipsec/veil/test/freeradius"
)

// These tests run veil's EAP client methods through the RADIUS
// pass-through server session to a real FreeRADIUS on loopback.

// gateway is an EAP server plugin relaying to addr with secret.
func gateway(t *testing.T, addr, secret, timeout string) *Plugin {
	return configure(t, Config{RADIUSServer: addr, RADIUSSecret: writeSecret(t, "secret", secret), RADIUSTimeout: timeout, AllowMD5: true})
}

// passwordClient is an EAP client plugin with a password.
func passwordClient(t *testing.T, method, identity, password string) *Plugin {
	return configure(t, Config{AllowMD5: true, Connections: map[string]ConnConfig{
		"c": {Method: method, EAPID: identity, Secret: writeSecret(t, "secret", password)}}})
}

func startSession(t *testing.T, p *Plugin, method string, server bool) auth.EAPSession {
	t.Helper()
	s, err := p.StartEAP(context.Background(), &auth.EAPRequest{Connection: "c", Method: method, Server: server})
	if err != nil {
		t.Fatalf("StartEAP(%s, server %v): %v", method, server, err)
	}
	t.Cleanup(s.Close)
	return s
}

// relay runs a conversation to its end; err is the server's error.
func relay(t *testing.T, srv, cli auth.EAPSession) (server, client *auth.EAPStep, err error) {
	t.Helper()
	ctx := context.Background()
	st, err := srv.Step(ctx, nil)
	if err != nil {
		t.Fatalf("server's first step: %v", err)
	}
	for range 300 {
		c, err := cli.Step(ctx, st.Message)
		if err != nil {
			t.Fatalf("client: %v", err)
		}
		if st.Done {
			return st, c, nil
		}
		if c.Done {
			return nil, c, nil
		}
		if st, err = srv.Step(ctx, c.Message); err != nil {
			return nil, c, err
		}
	}
	t.Fatal("the conversation does not end")
	return nil, nil, nil
}

func TestRADIUS(t *testing.T) {
	fr := freeradius.Start(t, freeradius.Config{})
	gw := gateway(t, fr.Addr, fr.Secret, "")
	alice := freeradius.DefaultUsers["alice"]

	success := func(t *testing.T, cli *Plugin, method string, mskLen int) {
		t.Helper()
		srv, c, err := relay(t, startSession(t, gw, method, true), startSession(t, cli, method, false))
		if err != nil || srv == nil || !srv.Success || !c.Success {
			t.Fatalf("conversation failed: error %v server %+v client %+v", err, srv, c)
		}
		if string(srv.Identity) != "alice" {
			t.Errorf("server learned identity %q, want alice", srv.Identity)
		}
		if len(srv.MSK) != mskLen || !bytes.Equal(srv.MSK, c.MSK) {
			t.Errorf("MSKs differ or have the wrong length (want %d): server %x client %x", mskLen, srv.MSK, c.MSK)
		}
		if pk, err := ParsePacket(srv.Message); err != nil || pk.Code != CodeSuccess {
			t.Errorf("server's last message %x is not EAP-Success", srv.Message)
		}
	}
	rejected := func(t *testing.T, cli *Plugin, method, identity string) {
		t.Helper()
		srv, c, err := relay(t, startSession(t, gw, method, true), startSession(t, cli, method, false))
		if err != nil || srv == nil || srv.Success || c.Success || !c.Done {
			t.Fatalf("want a rejection: error %v server %+v client %+v", err, srv, c)
		}
		want := `RADIUS server rejected "` + identity + `": ` + freeradius.RejectMessage
		if srv.Reason != want {
			t.Errorf("server reason %q, want %q", srv.Reason, want)
		}
		if srv.MSK != nil || c.MSK != nil {
			t.Error("a failed conversation has an MSK")
		}
		if pk, err := ParsePacket(srv.Message); err != nil || pk.Code != CodeFailure {
			t.Errorf("server's last message %x is not EAP-Failure", srv.Message)
		}
	}

	t.Run("MSCHAPv2", func(t *testing.T) {
		// FreeRADIUS starts with EAP-MD5 (its default_eap_type): the
		// client's Nak travels through too.
		success(t, passwordClient(t, "eap-mschapv2", "alice", alice), "eap-mschapv2", 64)
	})
	t.Run("TLS", func(t *testing.T) {
		cli := configure(t, Config{Connections: map[string]ConnConfig{"c": {
			Method: "eap-tls", EAPID: "alice", Certificate: fr.ClientCert, Key: "file:" + fr.ClientKey, CACerts: []string{fr.CA}}}})
		success(t, cli, "eap-tls", 64)
	})
	t.Run("MD5", func(t *testing.T) {
		success(t, passwordClient(t, "eap-md5", "alice", alice), "eap-md5", 0)
	})
	t.Run("MSCHAPv2 wrong password", func(t *testing.T) {
		rejected(t, passwordClient(t, "eap-mschapv2", "alice", "not-"+alice), "eap-mschapv2", "alice")
	})
	t.Run("MD5 wrong password", func(t *testing.T) {
		rejected(t, passwordClient(t, "eap-md5", "alice", "not-"+alice), "eap-md5", "alice")
	})
	t.Run("unknown user", func(t *testing.T) {
		rejected(t, passwordClient(t, "eap-mschapv2", "mallory", "whatever"), "eap-mschapv2", "mallory")
	})
	t.Run("TLS client certificate from another CA", func(t *testing.T) {
		other := freeradius.NewPKI(t, "alice")
		cli := configure(t, Config{Connections: map[string]ConnConfig{"c": {
			Method: "eap-tls", EAPID: "alice", Certificate: other.ClientCert, Key: "file:" + other.ClientKey, CACerts: []string{fr.CA}}}})
		srv, c, err := relay(t, startSession(t, gw, "eap-tls", true), startSession(t, cli, "eap-tls", false))
		if err != nil || (srv != nil && srv.Success) || c.Success {
			t.Fatalf("want a rejection: error %v server %+v client %+v", err, srv, c)
		}
	})
	t.Run("eap_id restricts who logs in", func(t *testing.T) {
		gw := configure(t, Config{RADIUSServer: fr.Addr, RADIUSSecret: writeSecret(t, "secret", fr.Secret),
			Connections: map[string]ConnConfig{"c": {Method: "eap-mschapv2", EAPID: "bob"}}})
		srv, c, err := relay(t, startSession(t, gw, "eap-mschapv2", true), startSession(t, passwordClient(t, "eap-mschapv2", "alice", alice), "eap-mschapv2", false))
		if err != nil || srv == nil || srv.Success || c.Success {
			t.Fatalf("want a refusal: error %v server %+v client %+v", err, srv, c)
		}
		if want := `EAP identity "alice" is not the expected "bob"`; srv.Reason != want {
			t.Errorf("reason %q, want %q", srv.Reason, want)
		}
	})
	t.Run("wrong RADIUS secret", func(t *testing.T) {
		gw := gateway(t, fr.Addr, "not-"+fr.Secret, "300ms")
		_, _, err := relay(t, startSession(t, gw, "eap-mschapv2", true), startSession(t, passwordClient(t, "eap-mschapv2", "alice", alice), "eap-mschapv2", false))
		if err == nil || !strings.Contains(err.Error(), "did not answer") || !strings.Contains(err.Error(), "radius_secret") {
			t.Errorf("error %v, want one saying the replies failed authentication", err)
		}
	})
}

func TestRADIUSServerDown(t *testing.T) {
	fr := freeradius.Start(t, freeradius.Config{})
	fr.Stop()
	gw := gateway(t, fr.Addr, fr.Secret, "300ms")
	srv := startSession(t, gw, "eap-mschapv2", true)
	cli := startSession(t, passwordClient(t, "eap-mschapv2", "alice", "x"), "eap-mschapv2", false)
	start := time.Now()
	_, _, err := relay(t, srv, cli)
	if err == nil || !strings.Contains(err.Error(), "did not answer within 300ms") {
		t.Fatalf("error %v, want a timeout naming radius_timeout", err)
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Errorf("gave up after %v, before radius_timeout", time.Since(start))
	}
}

// TestRADIUSTLS13 runs EAP-TLS 1.3 (RFC 9190) through to FreeRADIUS.
func TestRADIUSTLS13(t *testing.T) {
	fr := freeradius.Start(t, freeradius.Config{TLSMaxVersion: "1.3"})
	gw := gateway(t, fr.Addr, fr.Secret, "")
	cli := configure(t, Config{Connections: map[string]ConnConfig{"c": {
		Method: "eap-tls", EAPID: "alice", Certificate: fr.ClientCert, Key: "file:" + fr.ClientKey, CACerts: []string{fr.CA}}}})
	srv, c, err := relay(t, startSession(t, gw, "eap-tls", true), startSession(t, cli, "eap-tls", false))
	if err != nil || srv == nil || !srv.Success || !c.Success {
		t.Fatalf("conversation failed: error %v server %+v client %+v", err, srv, c)
	}
	if len(srv.MSK) != 64 || !bytes.Equal(srv.MSK, c.MSK) {
		t.Errorf("MSKs differ: server %x client %x", srv.MSK, c.MSK)
	}
	if !strings.Contains(fr.Log(), "send TLS 1.3 Handshake, ServerHello") {
		t.Error("FreeRADIUS did not answer in TLS 1.3")
	}
}

// fakeRADIUS is a UDP server on loopback whose handler sees each request
// (its copy number counts retransmissions) and returns the replies to send.
type fakeRADIUS struct {
	addr     string
	requests chan []byte
}

func startFakeRADIUS(t *testing.T, handle func(req []byte) [][]byte) *fakeRADIUS {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRADIUS{addr: c.LocalAddr().String(), requests: make(chan []byte, 100)}
	done := make(chan struct{})
	t.Cleanup(func() { c.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 5000)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			req := bytes.Clone(buf[:n])
			f.requests <- req
			for _, r := range handle(req) {
				c.WriteToUDP(r, from)
			}
		}
	}()
	return f
}

// signedReply answers req the way a RADIUS server does: Message-Authenticator
// over the reply with the Request Authenticator, then the Response
// Authenticator. withMA false leaves the Message-Authenticator out.
func signedReply(t testing.TB, req []byte, code uint8, secret string, withMA bool, attrs ...radiusAttr) []byte {
	t.Helper()
	p := &radiusPacket{Code: code, ID: req[1], Attrs: attrs}
	copy(p.Auth[:], req[4:20])
	if withMA {
		p.add(attrMessageAuth, make([]byte, 16))
	}
	b, err := p.marshal()
	if err != nil {
		t.Fatal(err)
	}
	if withMA {
		m := hmac.New(md5.New, []byte(secret))
		m.Write(b)
		copy(b[len(b)-16:], m.Sum(nil))
	}
	h := md5.New()
	h.Write(b)
	h.Write([]byte(secret))
	copy(b[4:20], h.Sum(nil))
	return b
}

// mppeKey encrypts key as RFC 2548 §2.4.2 describes, inside a Microsoft
// Vendor-Specific attribute.
func mppeKey(typ uint8, key []byte, reqAuth []byte, secret string) radiusAttr {
	plain := append([]byte{byte(len(key))}, key...)
	for len(plain)%16 != 0 {
		plain = append(plain, 0)
	}
	salt := []byte{0x80 | typ, 0x42}
	ct := make([]byte, len(plain))
	prev := append(bytes.Clone(reqAuth), salt...)
	for i := 0; i < len(plain); i += 16 {
		b := md5.Sum(append([]byte(secret), prev...))
		for j := range 16 {
			ct[i+j] = plain[i+j] ^ b[j]
		}
		prev = ct[i : i+16]
	}
	sub := append([]byte{typ, byte(2 + 2 + len(ct))}, append(salt, ct...)...)
	return radiusAttr{Type: attrVendorSpecific, Value: append([]byte{0, 0, 1, 0x37}, sub...)}
}

func rawSession(t *testing.T, addr, secret, timeout string) auth.EAPSession {
	t.Helper()
	return startSession(t, gateway(t, addr, secret, timeout), "eap", true)
}

// identityResponse answers the session's Identity request.
func identityResponse(t *testing.T, s auth.EAPSession, identity string) []byte {
	t.Helper()
	st, err := s.Step(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := ParsePacket(st.Message)
	if err != nil || pk.Code != CodeRequest || pk.Type != TypeIdentity {
		t.Fatalf("first message %x is not an EAP-Request/Identity", st.Message)
	}
	return (&Packet{Code: CodeResponse, ID: pk.ID, Type: TypeIdentity, Data: []byte(identity)}).Marshal()
}

// TestRADIUSRetransmit: an unanswered request goes again unchanged, and an
// Access-Accept's MS-MPPE keys become the MSK.
func TestRADIUSRetransmit(t *testing.T) {
	const secret = "s3cret"
	recv, send := bytes.Repeat([]byte{0xaa}, 32), bytes.Repeat([]byte{0xbb}, 32)
	var first []byte
	f := startFakeRADIUS(t, func(req []byte) [][]byte {
		if first == nil {
			first = req
			return nil
		}
		if !bytes.Equal(req, first) {
			t.Errorf("retransmission %x differs from the request %x", req, first)
		}
		return [][]byte{signedReply(t, req, radiusAccessAccept, secret, true,
			radiusAttr{attrEAPMessage, []byte{CodeSuccess, 7, 0, 4}},
			mppeKey(msMPPERecvKey, recv, req[4:20], secret),
			mppeKey(msMPPESendKey, send, req[4:20], secret))}
	})
	s := rawSession(t, f.addr, secret, "600ms")
	st, err := s.Step(context.Background(), identityResponse(t, s, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if !st.Done || !st.Success || string(st.Identity) != "alice" {
		t.Fatalf("step %+v, want success for alice", st)
	}
	if want := append(bytes.Clone(recv), send...); !bytes.Equal(st.MSK, want) {
		t.Errorf("MSK %x, want Recv|Send %x", st.MSK, want)
	}
	if !bytes.Equal(st.Message, []byte{CodeSuccess, 7, 0, 4}) {
		t.Errorf("message %x, want the server's EAP-Success", st.Message)
	}
	if len(f.requests) < 2 {
		t.Errorf("%d requests, want the request and a retransmission", len(f.requests))
	}
}

// TestRADIUSRequestsAndBadReplies checks what an Access-Request carries
// and that replies which are malformed, unauthenticated or for another
// request are dropped while the real answer is taken.
func TestRADIUSRequestsAndBadReplies(t *testing.T) {
	const secret = "s3cret"
	identity := strings.Repeat("a", 250) // its EAP packet needs two EAP-Message attributes
	state := []byte("state-1")
	challenge := (&Packet{Code: CodeRequest, ID: 9, Type: TypeMD5, Data: append([]byte{16}, make([]byte, 16)...)}).Marshal()
	n := 0
	f := startFakeRADIUS(t, func(req []byte) [][]byte {
		n++
		p, err := parseRADIUS(req)
		if err == nil && len(p.eapMessage()) > 4 && p.eapMessage()[4] == TypeIdentity {
			n = 1
		}
		if err != nil {
			t.Errorf("request %d: %v", n, err)
			return nil
		}
		if ma, ok := messageAuthenticator(bytes.Clone(req), nil, []byte(secret)); !ok || !bytes.Equal(ma, p.get(attrMessageAuth)) {
			t.Errorf("request %d: Message-Authenticator missing or wrong", n)
		}
		if p.Code != radiusAccessRequest || string(p.get(attrUserName)) != identity ||
			!bytes.Equal(p.get(attrNASPortType), []byte{0, 0, 0, 5}) || !bytes.Equal(p.get(attrServiceType), []byte{0, 0, 0, 2}) ||
			len(p.get(attrNASIdentifier)) == 0 {
			t.Errorf("request %d lacks User-Name, NAS-Port-Type Virtual, Service-Type Framed or NAS-Identifier: %+v", n, p)
		}
		switch n {
		case 1:
			var sizes []int
			for _, a := range p.Attrs {
				if a.Type == attrEAPMessage {
					sizes = append(sizes, len(a.Value))
				}
			}
			if len(sizes) != 2 || sizes[0] != 253 || sizes[1] != 5+250-253 {
				t.Errorf("EAP-Message attributes of %v bytes, want 253 and %d", sizes, 5+250-253)
			}
			if p.get(attrState) != nil {
				t.Error("the first request carries a State")
			}
			chal := []radiusAttr{{attrEAPMessage, challenge}, {attrState, state}}
			other := bytes.Clone(req)
			other[1]++
			return [][]byte{
				[]byte("garbage"),
				signedReply(t, req, radiusAccessChallenge, "wrong", true, chal...),
				signedReply(t, req, radiusAccessChallenge, secret, false, chal...),
				signedReply(t, other, radiusAccessChallenge, secret, true, chal...),
				signedReply(t, req, radiusAccessRequest, secret, true, chal...),
				signedReply(t, req, radiusAccessChallenge, secret, true, chal...),
			}
		default:
			if !bytes.Equal(p.get(attrState), state) {
				t.Errorf("request %d: State %q, want %q echoed", n, p.get(attrState), state)
			}
			return [][]byte{signedReply(t, req, radiusAccessReject, secret, true,
				radiusAttr{attrReplyMessage, []byte("no\xffpe\n")})}
		}
	})
	s := rawSession(t, f.addr, secret, "3s")
	st, err := s.Step(context.Background(), identityResponse(t, s, identity))
	if err != nil {
		t.Fatal(err)
	}
	if st.Done || !bytes.Equal(st.Message, challenge) {
		t.Fatalf("step %+v, want the challenge relayed", st)
	}
	if d := s.(*radiusSession).dropped; d != 4 {
		t.Errorf("%d replies dropped, want 4 (garbage, wrong secret, no Message-Authenticator, wrong code)", d)
	}
	resp := (&Packet{Code: CodeResponse, ID: 9, Type: TypeMD5, Data: append([]byte{16}, make([]byte, 16)...)}).Marshal()
	st, err = s.Step(context.Background(), resp)
	if err != nil {
		t.Fatal(err)
	}
	want := `RADIUS server rejected "` + identity + `": no?pe?`
	if !st.Done || st.Success || st.Reason != want || !bytes.Equal(st.Message, []byte{CodeFailure, 9, 0, 4}) {
		t.Errorf("step %+v, want EAP-Failure 9 with reason %q", st, want)
	}
	if _, err := s.Step(context.Background(), resp); err == nil {
		t.Error("a step after the end was taken")
	}
}

func TestRADIUSRepliesWithAnotherSecret(t *testing.T) {
	f := startFakeRADIUS(t, func(req []byte) [][]byte {
		return [][]byte{signedReply(t, req, radiusAccessReject, "other", true)}
	})
	s := rawSession(t, f.addr, "s3cret", "300ms")
	_, err := s.Step(context.Background(), identityResponse(t, s, "alice"))
	if err == nil || !strings.Contains(err.Error(), "replies dropped") || !strings.Contains(err.Error(), "Response Authenticator") {
		t.Errorf("error %v, want one naming the dropped, unauthenticated replies", err)
	}
}

// TestRADIUSAcceptWithoutSuccess: an Access-Accept carrying an
// EAP-Failure is not a login.
func TestRADIUSAcceptWithoutSuccess(t *testing.T) {
	const secret = "s3cret"
	f := startFakeRADIUS(t, func(req []byte) [][]byte {
		return [][]byte{signedReply(t, req, radiusAccessAccept, secret, true,
			radiusAttr{attrEAPMessage, []byte{CodeFailure, 7, 0, 4}})}
	})
	s := rawSession(t, f.addr, secret, "3s")
	st, err := s.Step(context.Background(), identityResponse(t, s, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if !st.Done || st.Success || st.MSK != nil || !strings.Contains(st.Reason, "no EAP-Success") {
		t.Errorf("step %+v, want a failure naming the missing EAP-Success", st)
	}
}

// TestRADIUSCancel: a cancelled context ends the wait for an answer.
func TestRADIUSCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := startFakeRADIUS(t, func([]byte) [][]byte { cancel(); return nil })
	s := rawSession(t, f.addr, "s3cret", "1h")
	_, err := s.Step(ctx, identityResponse(t, s, "alice"))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

func TestRADIUSBadConfig(t *testing.T) {
	p := gateway(t, "no-such-host.invalid:1812", "s", "")
	if _, err := p.StartEAP(context.Background(), &auth.EAPRequest{Connection: "c", Method: "eap", Server: true}); err == nil || !strings.Contains(err.Error(), "radius_server") {
		t.Errorf("StartEAP error %v, want one naming radius_server", err)
	}
}

// FuzzRADIUS feeds replies to the pass-through: raw bytes (dropped unless
// valid) and well-signed replies with arbitrary code and attributes, which
// must end in a step or an error, never a panic.
func FuzzRADIUS(f *testing.F) {
	const secret = "s3cret"
	reqAuth := [16]byte{1, 2, 3}
	req := append([]byte{radiusAccessRequest, 5, 0, 20}, reqAuth[:]...)
	f.Add(uint8(radiusAccessChallenge), []byte{attrEAPMessage, 7, CodeRequest, 1, 0, 5, TypeMD5, attrState, 3, 'x'})
	f.Add(uint8(radiusAccessAccept), append([]byte{attrEAPMessage, 6, CodeSuccess, 1, 0, 4}, mppeKey(msMPPERecvKey, make([]byte, 32), reqAuth[:], secret).Value...))
	f.Add(uint8(radiusAccessReject), []byte{attrReplyMessage, 4, 'n', 'o'})
	f.Fuzz(func(t *testing.T, code uint8, attrs []byte) {
		s := &radiusSession{cfg: &radiusConfig{Secret: []byte(secret)}, radID: 5, identity: []byte("alice"), started: true, log: slog.New(slog.DiscardHandler)}
		raw := append(bytes.Clone(req[:20]), attrs...)
		raw[0] = code
		binary.BigEndian.PutUint16(raw[2:4], uint16(min(len(raw), 0xffff)))
		s.check(raw, &reqAuth)
		s.check(attrs, &reqAuth)
		decryptMPPEKey(attrs, &reqAuth, []byte(secret))
		p, err := parseRADIUS(raw)
		if err != nil {
			return
		}
		var kept []radiusAttr
		for _, a := range p.Attrs {
			if a.Type != attrMessageAuth {
				kept = append(kept, a)
			}
		}
		if len(raw) > radiusMaxLen-18 {
			return
		}
		signed := signedReply(t, req, code, secret, true, kept...)
		reply, why := s.check(signed, &reqAuth)
		if reply == nil {
			if code == radiusAccessAccept || code == radiusAccessReject || code == radiusAccessChallenge {
				t.Fatalf("a well-signed reply was dropped: %s", why)
			}
			return
		}
		st := s.answer(3, reply, &reqAuth)
		if st == nil || (st.Done && st.Message == nil) {
			t.Fatalf("answer gave %+v", st)
		}
		if st.Message != nil {
			if _, err := ParsePacket(st.Message); err != nil {
				t.Fatalf("answer's message %x: %v", st.Message, err)
			}
		}
	})
}
