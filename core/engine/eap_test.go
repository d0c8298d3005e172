package engine

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/core/engine/enginetest"
	"github.com/veil-ipsec/veil/core/ike"
	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/core/transport"
)

// eapPair is A as EAP client and B as EAP server (proving itself with the
// PSK unless eapOnly), each with its own instance of the test method.
func eapPair(t *testing.T, ma, mb *enginetest.EAP, edit func(a, b *Connection)) *pair {
	p := newPairCfg(t, func(a, b *Connection) {
		a.Local.Method = "eap-test"
		b.Remote.Method = "eap-test"
		if edit != nil {
			edit(a, b)
		}
	}, nil)
	for _, x := range []struct {
		peer *peer
		m    *enginetest.EAP
	}{{p.a, ma}, {p.b, mb}} {
		x.peer.e.cfg.Authenticators["eap-test"] = x.m
		x.peer.e.env.Auth = x.peer.e.cfg.Authenticators
	}
	return p
}

func failureOf(p *peer) string { return p.e.Status("conn").LastFailure }

func TestEAPEstablishesChild(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rounds int
		noMSK  bool
	}{{"one round", 1, false}, {"three rounds", 3, false}, {"method without MSK", 2, true}} {
		t.Run(tc.name, func(t *testing.T) {
			ma := &enginetest.EAP{Password: []byte("pw"), Rounds: tc.rounds, NoMSK: tc.noMSK}
			mb := &enginetest.EAP{Password: []byte("pw"), Rounds: tc.rounds, NoMSK: tc.noMSK}
			p := eapPair(t, ma, mb, nil)
			var auths int
			p.filter = func(pk transport.Packet) []transport.Packet {
				if h, ok := exchangeOf(pk); ok && h.Exchange == ike.IKE_AUTH && !h.IsResponse() {
					auths++
				}
				return []transport.Packet{pk}
			}
			p.up()
			p.established(t, 1)
			// first request, one per EAP response, and the AUTH after Success
			if want := 1 + tc.rounds + 1; auths != want {
				t.Errorf("%d IKE_AUTH requests, want %d", auths, want)
			}
			if ma.Open() != 0 || mb.Open() != 0 || ma.Started != 1 || mb.Started != 1 {
				t.Errorf("sessions: client %d started %d open, server %d started %d open", ma.Started, ma.Open(), mb.Started, mb.Open())
			}
			if r := mb.LastRequest; !r.Server || r.Method != "eap-test" || string(r.RemoteID.Data) != "conn-192.0.2.1" {
				t.Errorf("server request %+v", r)
			}
			if ma.LastRequest.Server {
				t.Error("client session started as server")
			}
			// The client never made a PSK AUTH; the server made one (its own proof).
			if p.a.psk.MakeCalls != 0 || p.b.psk.MakeCalls != 1 || p.a.psk.VerifyCalls != 1 {
				t.Errorf("PSK calls: client make %d verify %d, server make %d", p.a.psk.MakeCalls, p.a.psk.VerifyCalls, p.b.psk.MakeCalls)
			}
		})
	}
}

func TestEAPWrongPassword(t *testing.T) {
	ma, mb := &enginetest.EAP{Password: []byte("guess")}, &enginetest.EAP{Password: []byte("pw")}
	p := eapPair(t, ma, mb, nil)
	ch := p.a.e.StartInitiate("conn", "")
	p.flush()
	err, ok := result(ch)
	if !ok || err == nil {
		t.Fatalf("initiate: %v, %v", err, ok)
	}
	if f := failureOf(p.b); !strings.Contains(f, "EAP authentication of tester failed: wrong password") {
		t.Errorf("server: %q", f)
	}
	if f := failureOf(p.a); !strings.Contains(f, "EAP authentication failed") {
		t.Errorf("client: %q", f)
	}
	p.gone(t)
	if ma.Open() != 0 || mb.Open() != 0 {
		t.Errorf("sessions left open: %d %d", ma.Open(), mb.Open())
	}
}

// The client checks the server's AUTH before it says anything in EAP.
func TestEAPServerAuthCheckedFirst(t *testing.T) {
	ma, mb := &enginetest.EAP{Password: []byte("pw")}, &enginetest.EAP{Password: []byte("pw")}
	p := eapPair(t, ma, mb, nil)
	p.a.psk.Secret = []byte("not the server's key")
	p.a.e.StartInitiate("conn", "")
	p.flush()
	if ma.Started != 0 {
		t.Error("client started EAP with an unauthenticated server")
	}
	if f := failureOf(p.a); !strings.Contains(f, "did not verify") {
		t.Errorf("client: %q", f)
	}
	p.advance(time.Minute)
	p.flush()
	p.gone(t)
}

// RFC 5998: with EAP-only on both sides the server sends no AUTH before
// EAP; both AUTHs come from the MSK.
func TestEAPOnly(t *testing.T) {
	ma, mb := &enginetest.EAP{Password: []byte("pw")}, &enginetest.EAP{Password: []byte("pw")}
	p := eapPair(t, ma, mb, func(a, b *Connection) {
		a.Remote.Method = "eap-test"
		b.Local.Method = "eap-test"
	})
	p.up()
	p.established(t, 1)
	if p.b.psk.MakeCalls != 0 || p.a.psk.VerifyCalls != 0 {
		t.Errorf("PSK used in EAP-only: server make %d, client verify %d", p.b.psk.MakeCalls, p.a.psk.VerifyCalls)
	}
}

func TestEAPOnlyRefusedUnlessOffered(t *testing.T) {
	ma, mb := &enginetest.EAP{Password: []byte("pw")}, &enginetest.EAP{Password: []byte("pw")}
	p := eapPair(t, ma, mb, func(a, b *Connection) { b.Local.Method = "eap-test" })
	p.a.e.StartInitiate("conn", "")
	p.flush()
	if f := failureOf(p.b); !strings.Contains(f, "RFC 5998") {
		t.Errorf("server: %q", f)
	}
	if f := failureOf(p.a); !strings.Contains(f, "AUTHENTICATION_FAILED") {
		t.Errorf("client: %q", f)
	}
	p.gone(t)
}

// Lost and duplicated messages inside the conversation: retransmits
// complete it, duplicates are answered from the cache, each step runs once.
func TestEAPLossAndDuplicates(t *testing.T) {
	for _, tc := range []struct {
		name   string
		filter func() func(transport.Packet) []transport.Packet
	}{
		{"EAP request lost", func() func(transport.Packet) []transport.Packet {
			n := 0
			return func(pk transport.Packet) []transport.Packet {
				if h, ok := exchangeOf(pk); ok && h.Exchange == ike.IKE_AUTH && !h.IsResponse() {
					if n++; n == 2 {
						return nil
					}
				}
				return []transport.Packet{pk}
			}
		}},
		{"EAP response lost", func() func(transport.Packet) []transport.Packet {
			n := 0
			return func(pk transport.Packet) []transport.Packet {
				if h, ok := exchangeOf(pk); ok && h.Exchange == ike.IKE_AUTH && h.IsResponse() {
					if n++; n == 2 {
						return nil
					}
				}
				return []transport.Packet{pk}
			}
		}},
		{"everything duplicated", func() func(transport.Packet) []transport.Packet {
			return func(pk transport.Packet) []transport.Packet { return []transport.Packet{pk, pk} }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ma, mb := &enginetest.EAP{Password: []byte("pw"), Rounds: 2}, &enginetest.EAP{Password: []byte("pw"), Rounds: 2}
			p := eapPair(t, ma, mb, nil)
			p.filter = tc.filter()
			ch := p.a.e.StartInitiate("conn", "")
			for i := 0; i < 5; i++ {
				p.flush()
				if _, ok := result(ch); ok {
					break
				}
				p.advance(5 * time.Second)
			}
			p.established(t, 1)
			if ma.Started != 1 || mb.Started != 1 {
				t.Errorf("sessions started: %d %d", ma.Started, mb.Started)
			}
		})
	}
}

// EAP steps run without the engine lock: while the server's method waits
// (as for a RADIUS answer), the engine still runs timers and API calls.
func TestEAPStepsRunOffTheLock(t *testing.T) {
	gate := make(chan struct{})
	ma, mb := &enginetest.EAP{Password: []byte("pw")}, &enginetest.EAP{Password: []byte("pw"), Gate: gate}
	p := eapPair(t, ma, mb, nil)
	released := make(chan struct{})
	go func() {
		defer close(released)
		// Each server step waits for the gate; the engine must answer
		// Snapshot meanwhile, or this goroutine never releases it.
		for i := 0; i < 2; i++ {
			for {
				if s := p.b.e.Snapshot(); len(s) == 1 {
					break
				}
				time.Sleep(time.Millisecond)
			}
			gate <- struct{}{}
		}
	}()
	ch := p.a.e.StartInitiate("conn", "")
	p.flush()
	<-released
	if err, ok := result(ch); !ok || err != nil {
		t.Fatalf("initiate: %v %v", err, ok)
	}
	p.established(t, 1)
}

// A client that stops in the middle leaves nothing behind on the server:
// the half-open timeout closes the session.
func TestEAPAbandonedConversation(t *testing.T) {
	ma, mb := &enginetest.EAP{Password: []byte("pw"), Rounds: 3}, &enginetest.EAP{Password: []byte("pw"), Rounds: 3}
	p := eapPair(t, ma, mb, nil)
	n := 0
	p.filter = func(pk transport.Packet) []transport.Packet {
		if h, ok := exchangeOf(pk); ok && h.Exchange == ike.IKE_AUTH && !h.IsResponse() {
			if n++; n > 2 {
				return nil // the client goes quiet after its first EAP response
			}
		}
		return []transport.Packet{pk}
	}
	p.a.e.StartInitiate("conn", "")
	for i := 0; i < 20; i++ {
		p.flush()
		p.advance(5 * time.Second)
	}
	p.flush()
	p.gone(t)
	if ma.Open() != 0 || mb.Open() != 0 {
		t.Errorf("sessions left open: client %d, server %d", ma.Open(), mb.Open())
	}
}

// A method that returns garbage fails the SA with a reason, no panic.
func TestEAPMalformedFromMethod(t *testing.T) {
	ma, mb := &enginetest.EAP{Password: []byte("pw")}, &enginetest.EAP{Password: []byte("pw")}
	p := eapPair(t, ma, &enginetest.EAP{}, nil)
	p.b.e.cfg.Authenticators["eap-test"] = garbageEAP{mb}
	p.a.e.StartInitiate("conn", "")
	p.flush()
	if f := failureOf(p.b); !strings.Contains(f, "malformed packet") {
		t.Errorf("server: %q", f)
	}
}

type garbageEAP struct{ *enginetest.EAP }

func (g garbageEAP) StartEAP(ctx context.Context, req *provider.EAPRequest) (provider.EAPSession, error) {
	return garbageSession{}, nil
}

type garbageSession struct{}

func (garbageSession) Step(context.Context, []byte) (*provider.EAPStep, error) {
	return &provider.EAPStep{Message: []byte{1, 2, 0, 99}}, nil
}
func (garbageSession) Close() {}

// gatedAuth holds each Verify until the gate opens, like an x509 plugin
// waiting for an OCSP responder.
type gatedAuth struct {
	provider.Authenticator
	gate chan struct{}
}

func (g gatedAuth) Verify(ctx context.Context, req *provider.AuthRequest) error {
	<-g.gate
	return g.Authenticator.Verify(ctx, req)
}

// AUTH checks run without the engine lock: the responder answers API calls
// while its Verify waits.
func TestVerifyRunsOffTheLock(t *testing.T) {
	p := newPair(t, nil)
	gate := make(chan struct{})
	p.b.e.cfg.Authenticators["psk"] = gatedAuth{p.b.psk, gate}
	p.b.e.env.Auth = p.b.e.cfg.Authenticators
	go func() {
		for len(p.b.e.Snapshot()) == 0 {
			time.Sleep(time.Millisecond)
		}
		close(gate)
	}()
	p.up()
	p.established(t, 1)
}
