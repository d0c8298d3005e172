package ike

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"
)

const roundTrips = 300

// TestPayloadRoundTrip checks, for every payload kind, that marshal -> parse
// gives back the payload and that re-marshalling the parsed payload gives
// the same bytes.
func TestPayloadRoundTrip(t *testing.T) {
	for name, gen := range payloadGenerators {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(len(name))))
			for i := range roundTrips {
				p := gen(r)
				first, body, err := MarshalPayloads([]Payload{p})
				if err != nil {
					t.Fatalf("#%d marshal %#v: %v", i, p, err)
				}
				if first != p.Type() {
					t.Fatalf("#%d first payload %v, want %v", i, first, p.Type())
				}
				got, err := ParsePayloads(first, body)
				if err != nil {
					t.Fatalf("#%d parse of %x: %v", i, body, err)
				}
				if len(got) != 1 || !reflect.DeepEqual(got[0], p) {
					t.Fatalf("#%d round trip:\n got %#v\nwant %#v", i, got[0], p)
				}
				_, again, err := MarshalPayloads(got)
				if err != nil || !bytes.Equal(again, body) {
					t.Fatalf("#%d re-marshal: %v\n got %x\nwant %x", i, err, again, body)
				}
			}
		})
	}
}

// TestMessageRoundTrip does the same for whole messages with random chains.
func TestMessageRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	for i := range roundTrips {
		m := &Message{Header: randHeader(r), Payloads: randChain(r)}
		raw, err := m.Marshal()
		if err != nil {
			t.Fatalf("#%d marshal: %v", i, err)
		}
		if int(m.Header.Length) != len(raw) || !bytes.Equal(m.Raw, raw) {
			t.Fatalf("#%d Length %d / Raw not set for %d bytes", i, m.Header.Length, len(raw))
		}
		got, err := ParseMessage(raw)
		if err != nil {
			t.Fatalf("#%d parse: %v", i, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("#%d round trip:\n got %#v\nwant %#v", i, got, m)
		}
		again, err := got.Marshal()
		if err != nil || !bytes.Equal(again, raw) {
			t.Fatalf("#%d re-marshal: %v", i, err)
		}
	}
}

func TestParseMessageCopiesInput(t *testing.T) {
	m := &Message{Header: Header{SPIi: 1, Exchange: IKE_SA_INIT}, Payloads: []Payload{&Nonce{Data: make([]byte, 32)}}}
	raw, _ := m.Marshal()
	buf := append([]byte(nil), raw...)
	got, err := ParseMessage(buf)
	if err != nil {
		t.Fatal(err)
	}
	clear(buf) // the transport reuses its receive buffer
	if !bytes.Equal(got.Raw, raw) {
		t.Fatal("Raw aliases the input buffer")
	}
}

func TestIdentificationKeepsReceivedBody(t *testing.T) {
	// Reserved bytes set by a sloppy peer: AUTH covers them as sent, so Body
	// must keep them although a re-marshal would write zeros.
	body := []byte{byte(IDFQDN), 1, 2, 3, 'a', '.', 'b'}
	ps, err := ParsePayloads(PayloadIDr, append([]byte{0, 0, 0, byte(4 + len(body))}, body...))
	if err != nil {
		t.Fatal(err)
	}
	id := Get[*Identification](ps)
	if id == nil || id.Initiator || string(id.Data) != "a.b" || !bytes.Equal(id.SignedBody(), body) {
		t.Fatalf("got %#v", ps[0])
	}
	local := &Identification{IDType: IDFQDN, Data: []byte("a.b")}
	if want := []byte{byte(IDFQDN), 0, 0, 0, 'a', '.', 'b'}; !bytes.Equal(local.SignedBody(), want) {
		t.Fatalf("SignedBody of a local ID = %x, want %x", local.SignedBody(), want)
	}
}

func TestHelpers(t *testing.T) {
	ps := []Payload{
		&Notify{NotifyType: NotifyNatDetectionSourceIp, Data: []byte{1}},
		&TrafficSelectors{Initiator: false},
		&Notify{NotifyType: NotifyNatDetectionDestinationIp, Data: []byte{2}},
		&TrafficSelectors{Initiator: true},
	}
	m := &Message{Payloads: ps}
	if n := m.Notify(NotifyNatDetectionDestinationIp); n == nil || n.Data[0] != 2 {
		t.Fatalf("Notify: %v", n)
	}
	if m.Notify(NotifyCookie) != nil {
		t.Fatal("Notify found an absent type")
	}
	if GetTS(ps, true) != ps[3] || GetTS(ps, false) != ps[1] {
		t.Fatal("GetTS picked the wrong payload")
	}
	if Get[*Notify](ps) != ps[0] || Get[*SA](ps) != nil {
		t.Fatal("Get picked the wrong payload")
	}
	ike, ok := StripNonESPMarker([]byte{0, 0, 0, 0, 9})
	if !ok || !bytes.Equal(ike, []byte{9}) {
		t.Fatal("non-ESP marker not stripped")
	}
	if _, ok := StripNonESPMarker([]byte{0, 0, 0, 1, 9}); ok {
		t.Fatal("ESP packet taken for IKE")
	}
	if _, ok := StripNonESPMarker([]byte{0, 0, 0}); ok {
		t.Fatal("short packet taken for IKE")
	}
}

func TestNames(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{IKE_INTERMEDIATE.String(), "IKE_INTERMEDIATE"},
		{IKE_FOLLOWUP_KE.String(), "IKE_FOLLOWUP_KE"},
		{ExchangeType(99).String(), "EXCHANGE(99)"},
		{PayloadSKF.String(), "SKF"},
		{PayloadType(54).String(), "PS"},
		{PayloadType(200).String(), "PAYLOAD(200)"},
		{TransformADDKE1.String(), "ADDKE1"},
		{TransformADDKE7.String(), "ADDKE7"},
		{TransformType(13).String(), "TRANSFORM(13)"},
		{NotifyAdditionalKeyExchange.String(), "ADDITIONAL_KEY_EXCHANGE"},
		{NotifyType(16441).String(), "ADDITIONAL_KEY_EXCHANGE"},
		{NotifyType(16438).String(), "INTERMEDIATE_EXCHANGE_SUPPORTED"},
		{NotifyType(16435).String(), "USE_PPK"},
		{NotifyType(16430).String(), "IKEV2_FRAGMENTATION_SUPPORTED"},
		{NotifyType(14).String(), "NO_PROPOSAL_CHOSEN"},
		{NotifyType(17).String(), "INVALID_KE_PAYLOAD"},
		{NotifyType(16390).String(), "COOKIE"},
		{ProtoESP.String(), "ESP"},
		{IDFQDN.String(), "ID_FQDN"},
		{AuthSharedKey.String(), "PSK"},
		{CertX509Signature.String(), "X509_SIGNATURE"},
		{CfgReply.String(), "CFG_REPLY"},
		{CPAttributeName(CfgInternalIP4Address), "INTERNAL_IP4_ADDRESS"},
		{TSTypeName(TSIPv6AddrRange), "TS_IPV6_ADDR_RANGE"},
		{(FlagInitiator | FlagResponse).String(), "[IR]"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if !NotifyType(24).IsError() || NotifyType(16384).IsError() {
		t.Error("IsError wrong")
	}
}
