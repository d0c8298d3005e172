package ike

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

func testCiphers() map[string]SKCipher {
	key := bytes.Repeat([]byte{7}, 32)
	return map[string]SKCipher{
		"aes-gcm-16":            NewGCMCipher(append(bytes.Repeat([]byte{3}, 32), 1, 2, 3, 4)),
		"aes-cbc+hmac-sha2-256": NewCBCHMACCipher(key, bytes.Repeat([]byte{9}, 32)),
	}
}

func authPayloads() []Payload {
	return []Payload{
		&Identification{Initiator: true, IDType: IDFQDN, Data: []byte("client.example.org"),
			Body: append([]byte{byte(IDFQDN), 0, 0, 0}, "client.example.org"...)},
		&Authentication{Method: AuthSharedKey, Data: bytes.Repeat([]byte{0xaa}, 32)},
		&SA{Proposals: []Proposal{{Number: 1, Protocol: ProtoESP, SPI: []byte{1, 2, 3, 4},
			Transforms: []Transform{{Type: TransformENCR, ID: 20, KeyLength: 256}, {Type: TransformESN, ID: 0}}}}},
		&TrafficSelectors{Initiator: true, Selectors: []TrafficSelector{{Type: TSIPv4AddrRange, EndPort: 65535,
			Start: mustAddr("10.1.0.0"), End: mustAddr("10.1.255.255")}}},
		&TrafficSelectors{Selectors: []TrafficSelector{{Type: TSIPv4AddrRange, EndPort: 65535,
			Start: mustAddr("10.2.0.0"), End: mustAddr("10.2.255.255")}}},
	}
}

func TestSealOpenMessage(t *testing.T) {
	for name, c := range testCiphers() {
		t.Run(name, func(t *testing.T) {
			h := Header{SPIi: 1, SPIr: 2, Exchange: IKE_AUTH, Flags: FlagInitiator, MessageID: 1}
			inner := authPayloads()
			raw, err := SealMessage(h, inner, c)
			if err != nil {
				t.Fatal(err)
			}
			m, err := ParseMessage(raw)
			if err != nil {
				t.Fatal(err)
			}
			sk, ok := m.Payloads[0].(*Encrypted)
			if len(m.Payloads) != 1 || !ok || sk.NextPayload != PayloadIDi || m.Header.NextPayload != PayloadSK {
				t.Fatalf("outer message %+v %#v", m.Header, m.Payloads)
			}
			got, err := OpenMessage(m, c)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, inner) {
				t.Fatalf("inner payloads:\n got %#v\nwant %#v", got, inner)
			}
			// Every byte is authenticated: the header and SK payload header as
			// AAD, the rest as IV, ciphertext or ICV.
			for i := range raw {
				bad := append([]byte(nil), raw...)
				bad[i] ^= 0x01
				bm, err := ParseMessage(bad)
				if err != nil {
					continue // the flip broke the framing already
				}
				if _, err := OpenMessage(bm, c); err == nil {
					t.Fatalf("flipped byte %d went unnoticed", i)
				}
			}
		})
	}
}

func TestOpenMessageErrors(t *testing.T) {
	c := testCiphers()["aes-gcm-16"]
	plain := &Message{Payloads: []Payload{&Nonce{Data: nonce16}}}
	plain.Marshal()
	if _, err := OpenMessage(plain, c); err == nil || !strings.Contains(err.Error(), "no SK payload") {
		t.Fatalf("message without SK: %v", err)
	}
	built := &Message{Payloads: []Payload{&Encrypted{Data: make([]byte, 40)}}}
	if _, err := OpenMessage(built, c); err == nil {
		t.Fatal("message without Raw opened")
	}
	if _, err := OpenMessage(&Message{}, c); err == nil {
		t.Fatal("empty message opened")
	}
	nested, err := SealMessage(Header{Exchange: IKE_AUTH}, []Payload{&Nonce{Data: nonce16}, &Encrypted{Data: []byte{1}}}, c)
	if err != nil {
		t.Fatal(err)
	}
	nm, err := ParseMessage(nested)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenMessage(nm, c); err == nil || !strings.Contains(err.Error(), "inside an encrypted payload") {
		t.Fatalf("SK inside SK: %v", err)
	}
}

// bigInner is a CERT-sized IKE_AUTH that needs fragmenting.
func bigInner() []Payload {
	return append(authPayloads(), &Certificate{Encoding: CertX509Signature, Data: bytes.Repeat([]byte("certificate "), 300)})
}

func fragment(t *testing.T, c SKCipher, msgID uint32, inner []Payload, max int) []*Message {
	t.Helper()
	h := Header{SPIi: 1, SPIr: 2, Exchange: IKE_AUTH, Flags: FlagInitiator, MessageID: msgID}
	dgrams, err := SealFragments(h, inner, c, max)
	if err != nil {
		t.Fatal(err)
	}
	var ms []*Message
	for i, d := range dgrams {
		if len(d) > max {
			t.Fatalf("fragment %d is %d bytes, max %d", i+1, len(d), max)
		}
		m, err := ParseMessage(d)
		if err != nil {
			t.Fatalf("fragment %d: %v", i+1, err)
		}
		ms = append(ms, m)
	}
	return ms
}

func TestFragmentsReassemble(t *testing.T) {
	for name, c := range testCiphers() {
		t.Run(name, func(t *testing.T) {
			inner := bigInner()
			ms := fragment(t, c, 1, inner, 576)
			if len(ms) < 5 {
				t.Fatalf("only %d fragments", len(ms))
			}
			for i, m := range ms {
				f := m.Payloads[0].(*EncryptedFragment)
				if int(f.Number) != i+1 || int(f.Total) != len(ms) || (i == 0) != (f.NextPayload != PayloadNone) {
					t.Fatalf("fragment %d header %+v", i+1, f)
				}
			}
			// Shuffled, with every fragment delivered twice.
			r := rand.New(rand.NewPCG(3, 3))
			order := append(append([]*Message{}, ms...), ms...)
			r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			var ra Reassembler
			var got []Payload
			deliveries := 0
			for _, m := range order {
				out, done, err := ra.Add(m, c)
				if err != nil {
					t.Fatal(err)
				}
				if done {
					got = out
					deliveries++
				}
			}
			if deliveries != 1 || !reflect.DeepEqual(got, inner) {
				t.Fatalf("%d deliveries; got %#v", deliveries, got)
			}
		})
	}
}

func TestReassemblerRules(t *testing.T) {
	c := testCiphers()["aes-gcm-16"]
	inner := bigInner()
	small := fragment(t, c, 5, inner, 576)  // more fragments
	large := fragment(t, c, 5, inner, 1280) // fewer fragments

	t.Run("smaller total is dropped", func(t *testing.T) {
		var ra Reassembler
		ra.Add(small[0], c)
		if _, _, err := ra.Add(large[1], c); err == nil || !strings.Contains(err.Error(), "smaller total") {
			t.Fatalf("err = %v", err)
		}
		for _, m := range small[1:] {
			if _, done, err := ra.Add(m, c); err != nil || (done != (m == small[len(small)-1])) {
				t.Fatalf("done %v err %v", done, err)
			}
		}
	})
	t.Run("larger total starts over", func(t *testing.T) {
		var ra Reassembler
		for _, m := range large[:len(large)-1] {
			ra.Add(m, c)
		}
		var done bool
		for _, m := range small {
			_, done, _ = ra.Add(m, c)
		}
		if !done {
			t.Fatal("not reassembled from the smaller fragments")
		}
	})
	t.Run("unauthenticated fragment is rejected and not kept", func(t *testing.T) {
		var ra Reassembler
		raw := append([]byte(nil), small[0].Raw...)
		raw[len(raw)-1] ^= 1
		forged, _ := ParseMessage(raw)
		if _, _, err := ra.Add(forged, c); err == nil {
			t.Fatal("forged fragment accepted")
		}
		var done bool
		for _, m := range small {
			_, done, _ = ra.Add(m, c)
		}
		if !done {
			t.Fatal("genuine fragments not reassembled after a forgery")
		}
	})
	t.Run("older message is rejected, newer replaces", func(t *testing.T) {
		var ra Reassembler
		newer := fragment(t, c, 6, inner, 1280)
		ra.Add(newer[0], c)
		if _, _, err := ra.Add(small[0], c); err == nil || !strings.Contains(err.Error(), "older") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("delivered message ignores late fragments", func(t *testing.T) {
		var ra Reassembler
		for _, m := range large {
			ra.Add(m, c)
		}
		out, done, err := ra.Add(large[0], c)
		if out != nil || done || err != nil {
			t.Fatalf("late fragment: %v %v %v", out, done, err)
		}
	})
	t.Run("duplicate of an empty fragment", func(t *testing.T) {
		// Found by FuzzReassembler: an empty fragment decrypts to nil, which
		// once made its duplicate count as a second fragment.
		h := Header{SPIi: 1, SPIr: 2, Exchange: IKE_AUTH, MessageID: 9, NextPayload: PayloadSKF}
		sealed := c.SealedLen(0)
		h.Length = uint32(HeaderLen + 8 + sealed)
		raw := appendHeader(nil, &h)
		raw = append(raw, 0, 0, 0, byte(8+sealed), 0, 1, 0, 2)
		raw, _ = c.Seal(raw, raw, nil)
		m, err := ParseMessage(raw)
		if err != nil {
			t.Fatal(err)
		}
		var ra Reassembler
		for range 2 {
			if _, done, err := ra.Add(m, c); done || err != nil {
				t.Fatalf("done %v, err %v after fragment 1 of 2", done, err)
			}
		}
	})
	t.Run("byte limit", func(t *testing.T) {
		huge := []Payload{&Certificate{Encoding: CertX509Signature, Data: make([]byte, 60000)},
			&Certificate{Encoding: CertX509Signature, Data: make([]byte, 10000)}}
		ms := fragment(t, c, 7, huge, 8000)
		var ra Reassembler
		var err error
		for _, m := range ms {
			if _, _, err = ra.Add(m, c); err != nil {
				break
			}
		}
		if err == nil || !strings.Contains(err.Error(), "exceeds") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("fragment count limit", func(t *testing.T) {
		h := Header{SPIi: 1, SPIr: 2, Exchange: IKE_AUTH, MessageID: 8}
		_, err := SealFragments(h, inner, c, 100)
		if err == nil || !strings.Contains(err.Error(), "limit") {
			t.Fatalf("SealFragments: %v", err)
		}
		// A peer announcing more than MaxFragments.
		m := &Message{Header: h, Payloads: []Payload{&EncryptedFragment{Number: 1, Total: MaxFragments + 1, Data: make([]byte, 40)}}}
		raw, _ := m.Marshal()
		pm, err := ParseMessage(raw)
		if err != nil {
			t.Fatal(err)
		}
		var ra Reassembler
		if _, _, err := ra.Add(pm, c); err == nil || !strings.Contains(err.Error(), "limit") {
			t.Fatalf("Add: %v", err)
		}
	})
	t.Run("no room", func(t *testing.T) {
		if _, err := SealFragments(Header{}, inner, c, HeaderLen+8); err == nil {
			t.Fatal("fragmented into zero-size pieces")
		}
	})
}
