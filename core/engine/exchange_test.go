package engine

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/core/ike"
	"github.com/veil-ipsec/veil/core/transport"
)

// exchangeOf parses a queued packet's header.
func exchangeOf(p transport.Packet) (ike.Header, bool) {
	h, err := ike.ParseHeader(p.Data)
	return h, err == nil
}

// dropFirst drops the first n packets matching match.
func dropFirst(n int, match func(h ike.Header) bool) func(transport.Packet) []transport.Packet {
	return func(p transport.Packet) []transport.Packet {
		if h, ok := exchangeOf(p); ok && n > 0 && match(h) {
			n--
			return nil
		}
		return []transport.Packet{p}
	}
}

func isReq(ex ike.ExchangeType) func(ike.Header) bool {
	return func(h ike.Header) bool { return h.Exchange == ex && !h.IsResponse() }
}

func isResp(ex ike.ExchangeType) func(ike.Header) bool {
	return func(h ike.Header) bool { return h.Exchange == ex && h.IsResponse() }
}

// TestLostMessages drops one request or response of each exchange and
// checks that the retransmit after 4 s completes it, and that a responder
// answers a retransmitted request with the exact cached bytes.
func TestLostMessages(t *testing.T) {
	for _, tc := range []struct {
		name  string
		match func(ike.Header) bool
	}{
		{"init request", isReq(ike.IKE_SA_INIT)},
		{"init response", isResp(ike.IKE_SA_INIT)},
		{"auth request", isReq(ike.IKE_AUTH)},
		{"auth response", isResp(ike.IKE_AUTH)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, nil)
			var responses [][]byte
			drop := dropFirst(1, tc.match)
			p.filter = func(pk transport.Packet) []transport.Packet {
				if h, ok := exchangeOf(pk); ok && h.IsResponse() && h.Exchange == ike.IKE_AUTH {
					responses = append(responses, pk.Data)
				}
				return drop(pk)
			}
			ch := p.a.e.StartInitiate("conn", "")
			p.flush()
			if _, done := result(ch); done {
				t.Fatal("finished despite the loss")
			}
			p.advance(3 * time.Second)
			p.flush()
			if _, done := result(ch); done {
				t.Fatal("retransmitted before 4 s")
			}
			p.advance(time.Second)
			p.flush()
			if err, done := result(ch); !done || err != nil {
				t.Fatalf("after retransmit: done=%v err=%v", done, err)
			}
			p.established(t, 1)
			if st := p.a.e.Stats(); st.Retransmits != 1 {
				t.Fatalf("retransmits %d", st.Retransmits)
			}
			if tc.name == "auth response" && (len(responses) != 2 || !bytes.Equal(responses[0], responses[1])) {
				t.Fatalf("responder did not resend the cached response bytes (%d responses)", len(responses))
			}
		})
	}
}

// TestSilentPeer: every packet is lost; after 5 tries (4 s x 1.8^n) the
// initiator gives up with a reason naming the ports and NAT.
func TestSilentPeer(t *testing.T) {
	p := newPair(t, nil)
	sent := 0
	p.filter = func(transport.Packet) []transport.Packet { sent++; return nil }
	ch := p.a.e.StartInitiate("conn", "")
	p.flush()
	for _, d := range []time.Duration{4 * time.Second, 7200 * time.Millisecond, 12960 * time.Millisecond, 23328 * time.Millisecond} {
		p.advance(d)
		p.flush()
	}
	if _, done := result(ch); done {
		t.Fatal("gave up too early")
	}
	if sent != 5 {
		t.Fatalf("sent %d times, want 5", sent)
	}
	p.advance(42 * time.Second)
	p.flush()
	err, done := result(ch)
	if !done || err == nil {
		t.Fatal("did not give up after the last try")
	}
	st := p.a.e.Status("conn")
	for _, want := range []string{"5 transmissions", "500", "4500", "NAT"} {
		if !strings.Contains(st.LastFailure, want) || !strings.Contains(err.Error(), want) {
			t.Fatalf("failure %q lacks %q", st.LastFailure, want)
		}
	}
	if st.State != "DOWN" || p.a.e.Stats().Handshakes["timeout"] != 1 {
		t.Fatalf("status %+v stats %+v", st, p.a.e.Stats())
	}
}

// TestDuplicatedAndReordered delivers every packet twice and checks the
// duplicates are detected without harm.
func TestDuplicatedAndReordered(t *testing.T) {
	p := newPair(t, nil)
	p.filter = func(pk transport.Packet) []transport.Packet { return []transport.Packet{pk, pk} }
	p.up()
	p.established(t, 1)
	if d := p.b.e.Stats().Drops["retransmitted-request"]; d < 2 {
		t.Fatalf("responder saw %d duplicate requests", d)
	}
}

// A connection whose peer proves itself with a certificate asks for one
// from the CAs it trusts: CERTREQ in the responder's IKE_SA_INIT (RFC 7296
// §3.7); none without CAs.
func TestCertReqInInitResponse(t *testing.T) {
	hashes := bytes.Repeat([]byte{0xca}, 40) // two CAs
	for _, want := range [][]byte{hashes, nil} {
		p := newPair(t, func(a, b *Connection) { b.Remote.CertReq = want })
		var got []*ike.CertificateRequest
		p.filter = func(pk transport.Packet) []transport.Packet {
			if h, ok := exchangeOf(pk); ok && h.Exchange == ike.IKE_SA_INIT && h.IsResponse() {
				m, err := ike.ParseMessage(pk.Data)
				if err != nil {
					t.Fatal(err)
				}
				for _, pl := range m.Payloads {
					if c, ok := pl.(*ike.CertificateRequest); ok {
						got = append(got, c)
					}
				}
			}
			return []transport.Packet{pk}
		}
		p.up()
		switch {
		case want == nil && len(got) != 0:
			t.Errorf("CERTREQ sent without CAs: %+v", got)
		case want != nil && (len(got) != 1 || got[0].Encoding != 4 || !bytes.Equal(got[0].Data, want)):
			t.Errorf("CERTREQ %+v, want X.509 with %x", got, want)
		}
	}
}
