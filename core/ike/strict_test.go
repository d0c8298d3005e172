package ike

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// pl is one payload: generic header with a correct length, then body.
func pl(next PayloadType, body ...byte) []byte {
	n := 4 + len(body)
	return append([]byte{byte(next), 0, byte(n >> 8), byte(n)}, body...)
}

// rawMessage is an IKE header (correct length) followed by payloads.
func rawMessage(first PayloadType, payloads ...[]byte) []byte {
	b := make([]byte, HeaderLen)
	binary.BigEndian.PutUint64(b[0:], 0x1122334455667788)
	b[16], b[17], b[18], b[19] = byte(first), 0x20, byte(IKE_SA_INIT), byte(FlagInitiator)
	for _, p := range payloads {
		b = append(b, p...)
	}
	binary.BigEndian.PutUint32(b[24:], uint32(len(b)))
	return b
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

var (
	nonce16 = make([]byte, 16)
	// A valid ESP transform: ENCR AES-CBC with Key Length 256.
	transformAES = []byte{0, 0, 0, 12, 1, 0, 0, 12, 0x80, 14, 1, 0}
	// A proposal header for one transform, no SPI.
	proposal1 = []byte{0, 0, 0, 8 + 12, 1, 1, 0, 1}
)

func TestParseStrict(t *testing.T) {
	okMsg := rawMessage(PayloadNonce, pl(PayloadNone, nonce16...))
	withLength := func(b []byte, n uint32) []byte {
		b = append([]byte(nil), b...)
		binary.BigEndian.PutUint32(b[24:], n)
		return b
	}
	tests := []struct {
		name  string
		input []byte
		want  string // substring of the error
	}{
		{"header truncated", okMsg[:20], "truncated"},
		{"header length over datagram", withLength(okMsg, uint32(len(okMsg)+1)), "header length"},
		{"header length under datagram", withLength(okMsg, uint32(len(okMsg)-1)), "header length"},
		{"major version 1", func() []byte { b := append([]byte(nil), okMsg...); b[17] = 0x10; return b }(), "major version 1"},
		{"payload length < 4", rawMessage(PayloadNonce, []byte{0, 0, 0, 3}), "payload length 3"},
		{"payload length over message", rawMessage(PayloadNonce, []byte{0, 0, 0, 40}, nonce16), "payload length 40"},
		{"payload header truncated", rawMessage(PayloadNonce, []byte{0, 0}), "header truncated"},
		{"bytes after last payload", rawMessage(PayloadNonce, pl(PayloadNone, nonce16...), []byte{1}), "after the last payload"},
		{"chain names a missing payload", rawMessage(PayloadNonce, pl(PayloadKE, nonce16...)), "KE payload header truncated"},
		{"SA empty", rawMessage(PayloadSA, pl(PayloadNone)), "no proposals"},
		{"SA proposal length over payload", rawMessage(PayloadSA, pl(PayloadNone, 0, 0, 0, 40, 1, 1, 0, 0)), "proposal length exceeds"},
		{"SA proposal length < 8", rawMessage(PayloadSA, pl(PayloadNone, 0, 0, 0, 7, 1, 1, 0, 0)), "bad proposal header"},
		{"SA transform count too high", rawMessage(PayloadSA, pl(PayloadNone, cat([]byte{0, 0, 0, 20, 1, 1, 0, 2}, transformAES)...)), "transform count disagrees"},
		{"SA transform count too high, flags say more", rawMessage(PayloadSA, pl(PayloadNone, cat([]byte{0, 0, 0, 20, 1, 1, 0, 2}, []byte{3}, transformAES[1:])...)), "bad transform header"},
		{"SA transform count too low", rawMessage(PayloadSA, pl(PayloadNone, cat([]byte{0, 0, 0, 32, 1, 1, 0, 1}, transformAES, transformAES)...)), "bytes after the last transform"},
		{"SA transform count too low, flags say more", rawMessage(PayloadSA, pl(PayloadNone, cat([]byte{0, 0, 0, 32, 1, 1, 0, 1}, []byte{3}, transformAES[1:], transformAES)...)), "transform count disagrees"},
		{"SA transform count zero, transforms present", rawMessage(PayloadSA, pl(PayloadNone, cat([]byte{0, 0, 0, 20, 1, 1, 0, 0}, transformAES)...)), "bytes after the last transform"},
		{"SA proposal says more, none follow", rawMessage(PayloadSA, pl(PayloadNone, cat([]byte{2, 0, 0, 20, 1, 1, 0, 1}, transformAES)...)), "more follow"},
		{"SA bytes after last proposal", rawMessage(PayloadSA, pl(PayloadNone, cat(proposal1, transformAES, proposal1, transformAES)...)), "after the last proposal"},
		{"SA proposal substruc value", rawMessage(PayloadSA, pl(PayloadNone, cat([]byte{1, 0, 0, 20, 1, 1, 0, 1}, transformAES, proposal1, transformAES)...)), "last substruc' 1"},
		{"SA transform length < 8", rawMessage(PayloadSA, pl(PayloadNone, cat([]byte{0, 0, 0, 16, 1, 1, 0, 1}, []byte{0, 0, 0, 7, 1, 0, 0, 12})...)), "bad transform header"},
		{"SA attribute truncated", rawMessage(PayloadSA, pl(PayloadNone, cat([]byte{0, 0, 0, 19, 1, 1, 0, 1}, []byte{0, 0, 0, 11, 1, 0, 0, 12, 0x80, 14, 1})...)), "attribute truncated"},
		{"SA TLV attribute overlong", rawMessage(PayloadSA, pl(PayloadNone, cat([]byte{0, 0, 0, 20, 1, 1, 0, 1}, []byte{0, 0, 0, 12, 1, 0, 0, 12, 0, 1, 0, 9})...)), "attribute truncated"},
		{"SA SPI over proposal", rawMessage(PayloadSA, pl(PayloadNone, 0, 0, 0, 10, 1, 3, 4, 0, 1, 2)), "SPI truncated"},
		{"KE truncated", rawMessage(PayloadKE, pl(PayloadNone, 0, 14)), "truncated"},
		{"KE without data", rawMessage(PayloadKE, pl(PayloadNone, 0, 14, 0, 0)), "empty key exchange"},
		{"ID truncated", rawMessage(PayloadIDi, pl(PayloadNone, 1, 0)), "truncated"},
		{"ID IPv4 of 5 bytes", rawMessage(PayloadIDi, pl(PayloadNone, 1, 0, 0, 0, 1, 2, 3, 4, 5)), "ID_IPV4_ADDR of 5"},
		{"ID IPv6 of 4 bytes", rawMessage(PayloadIDr, pl(PayloadNone, 5, 0, 0, 0, 1, 2, 3, 4)), "ID_IPV6_ADDR of 4"},
		{"CERT empty", rawMessage(PayloadCERT, pl(PayloadNone)), "truncated"},
		{"AUTH without data", rawMessage(PayloadAUTH, pl(PayloadNone, 2, 0, 0, 0)), "empty authentication"},
		{"nonce of 15 bytes", rawMessage(PayloadNonce, pl(PayloadNone, nonce16[:15]...)), "nonce of 15 bytes"},
		{"nonce of 257 bytes", rawMessage(PayloadNonce, pl(PayloadNone, make([]byte, 257)...)), "nonce of 257 bytes"},
		{"notify SPI over payload", rawMessage(PayloadNotify, pl(PayloadNone, 3, 4, 0, 1, 9, 9)), "truncated"},
		{"delete count over payload", rawMessage(PayloadDelete, pl(PayloadNone, 3, 4, 0, 2, 1, 2, 3, 4)), "2 SPIs of 4 bytes in 4 bytes"},
		{"delete bytes after SPIs", rawMessage(PayloadDelete, pl(PayloadNone, 3, 4, 0, 1, 1, 2, 3, 4, 5)), "1 SPIs of 4 bytes in 5 bytes"},
		{"IKE delete with SPIs", rawMessage(PayloadDelete, pl(PayloadNone, 1, 8, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8)), "IKE SA delete with SPIs"},
		{"TS count zero", rawMessage(PayloadTSi, pl(PayloadNone, 0, 0, 0, 0)), "no traffic selectors"},
		{"TS count over payload", rawMessage(PayloadTSi, pl(PayloadNone, 2, 0, 0, 0, 7, 0, 0, 16, 0, 0, 255, 255, 10, 0, 0, 0, 10, 0, 0, 255)), "truncated"},
		{"TS IPv4 length 40", rawMessage(PayloadTSi, pl(PayloadNone, 1, 0, 0, 0, 7, 0, 0, 40, 0, 0, 255, 255, 10, 0, 0, 0, 10, 0, 0, 255)), "length 40 for type 7"},
		{"TS IPv6 length 16", rawMessage(PayloadTSr, pl(PayloadNone, 1, 0, 0, 0, 8, 0, 0, 16, 0, 0, 255, 255, 10, 0, 0, 0, 10, 0, 0, 255)), "length 16 for type 8"},
		{"TS unknown type", rawMessage(PayloadTSr, pl(PayloadNone, 1, 0, 0, 0, 9, 0, 0, 16, 0, 0, 255, 255, 10, 0, 0, 0, 10, 0, 0, 255)), "traffic selector type 9"},
		{"TS trailing bytes", rawMessage(PayloadTSi, pl(PayloadNone, 1, 0, 0, 0, 7, 0, 0, 16, 0, 0, 255, 255, 10, 0, 0, 0, 10, 0, 0, 255, 0)), "trailing"},
		{"CP attribute overlong", rawMessage(PayloadCP, pl(PayloadNone, 1, 0, 0, 0, 0, 1, 0, 4, 10, 0)), "truncated"},
		{"EAP length mismatch", rawMessage(PayloadEAP, pl(PayloadNone, 1, 1, 0, 9, 1)), "EAP length 9 in a 5-byte"},
		{"EAP code 0", rawMessage(PayloadEAP, pl(PayloadNone, 0, 1, 0, 4)), "EAP code 0"},
		{"SKF fragment 0", rawMessage(PayloadSKF, pl(PayloadNone, 0, 0, 0, 1)), "fragment 0 of 1"},
		{"SKF number over total", rawMessage(PayloadSKF, pl(PayloadNone, 0, 3, 0, 2)), "fragment 3 of 2"},
		{"SKF next payload in fragment 2", rawMessage(PayloadSKF, pl(PayloadIDi, 0, 2, 0, 2)), "non-first fragment"},
		{"SK not last", rawMessage(PayloadSK, pl(PayloadIDi, 1, 2, 3), pl(PayloadNone, nonce16...)), "after the last payload"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseMessage(tc.input)
			if err == nil {
				t.Fatalf("parsed: %#v", m)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestParseAcceptsValid(t *testing.T) {
	sa := pl(PayloadNonce, cat(proposal1, transformAES)...)
	m, err := ParseMessage(rawMessage(PayloadSA, sa, pl(PayloadNone, nonce16...)))
	if err != nil {
		t.Fatal(err)
	}
	got := Get[*SA](m.Payloads)
	want := Transform{Type: TransformENCR, ID: 12, KeyLength: 256}
	if got == nil || len(got.Proposals) != 1 || len(got.Proposals[0].Transforms) != 1 || got.Proposals[0].Transforms[0].Type != want.Type ||
		got.Proposals[0].Transforms[0].ID != want.ID || got.Proposals[0].Transforms[0].KeyLength != want.KeyLength {
		t.Fatalf("SA = %#v", got)
	}
	if m.Header.SPIi != 0x1122334455667788 || m.Header.Exchange != IKE_SA_INIT || !m.Header.IsInitiator() || m.Header.IsResponse() {
		t.Fatalf("header = %+v", m.Header)
	}
}

func TestUnknownPayloads(t *testing.T) {
	// Non-critical unknown type 60 between known payloads: kept, and the
	// chain continues past it.
	raw := rawMessage(PayloadNonce, pl(60, nonce16...), pl(PayloadVendor, 'x', 'y'), pl(PayloadNone, 'v'))
	m, err := ParseMessage(raw)
	if err != nil {
		t.Fatal(err)
	}
	u, ok := m.Payloads[1].(*UnknownPayload)
	if len(m.Payloads) != 3 || !ok || u.PayloadType != 60 || string(u.Body) != "xy" {
		t.Fatalf("payloads = %#v", m.Payloads)
	}
	// The same with the critical bit: an error naming the type, for
	// UNSUPPORTED_CRITICAL_PAYLOAD.
	critical := rawMessage(PayloadNonce, pl(60, nonce16...), []byte{byte(PayloadVendor), 0x80, 0, 6, 'x', 'y'}, pl(PayloadNone, 'v'))
	_, err = ParseMessage(critical)
	var uc *UnsupportedCriticalPayloadError
	if !errors.As(err, &uc) || uc.Type != 60 {
		t.Fatalf("error %v, want UnsupportedCriticalPayloadError{60}", err)
	}
	// The critical bit on a known type changes nothing (RFC 7296 §3.2).
	known := rawMessage(PayloadNonce, []byte{0, 0x80, 0, 20}, nonce16)
	if _, err := ParseMessage(known); err != nil {
		t.Fatalf("critical bit on a known payload: %v", err)
	}
}

func TestMarshalRejectsInvalid(t *testing.T) {
	tests := []struct {
		name string
		p    Payload
	}{
		{"SA without proposals", &SA{}},
		{"SA SPI over 255", &SA{Proposals: []Proposal{{SPI: make([]byte, 256)}}}},
		{"KE without data", &KeyExchange{Group: 31}},
		{"ID IPv4 of 3 bytes", &Identification{IDType: IDIPv4, Data: []byte{1, 2, 3}}},
		{"AUTH without data", &Authentication{Method: AuthSharedKey}},
		{"short nonce", &Nonce{Data: make([]byte, 8)}},
		{"notify SPI over 255", &Notify{SPI: make([]byte, 256)}},
		{"delete SPIs of two sizes", &Delete{Protocol: ProtoESP, SPIs: [][]byte{{1, 2, 3, 4}, {1, 2}}}},
		{"IKE delete with SPIs", &Delete{Protocol: ProtoIKE, SPIs: [][]byte{{1, 2, 3, 4}}}},
		{"TS empty", &TrafficSelectors{}},
		{"TS without addresses", &TrafficSelectors{Selectors: []TrafficSelector{{Type: TSIPv4AddrRange}}}},
		{"TS mixed families", &TrafficSelectors{Selectors: []TrafficSelector{{Start: mustAddr("10.0.0.1"), End: mustAddr("::1")}}}},
		{"EAP data not matching code", &EAP{Code: 1, Data: []byte{2, 0, 0, 4}}},
		{"EAP data with a wrong length", &EAP{Code: 1, Data: []byte{1, 0, 0, 9}}},
		{"payload over 64 KiB", &VendorID{Data: make([]byte, 70000)}},
		{"SKF fragment 0", &EncryptedFragment{Number: 0, Total: 2}},
		{"SKF next payload in fragment 2", &EncryptedFragment{NextPayload: PayloadIDi, Number: 2, Total: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := MarshalPayloads([]Payload{tc.p}); err == nil {
				t.Fatal("marshalled")
			}
		})
	}
	if _, _, err := MarshalPayloads([]Payload{&Encrypted{}, &Nonce{Data: nonce16}}); err == nil {
		t.Fatal("SK payload not last was marshalled")
	}
}

// Transform stays comparable, so proposal selection can use == and maps.
var _ = map[Transform]bool{{Type: TransformENCR, ID: 20, KeyLength: 256}: true}

func TestTransformAttributes(t *testing.T) {
	// ENCR with an unknown TV attribute 17 before the Key Length: the key
	// length is found, the other attribute kept so the engine can refuse
	// the transform (RFC 7296 §3.3.6).
	tf := []byte{0, 0, 0, 16, 1, 0, 0, 12, 0x80, 17, 0, 1, 0x80, 14, 1, 0}
	prop := cat([]byte{0, 0, 0, byte(8 + len(tf)), 1, 1, 0, 1}, tf)
	ps, err := ParsePayloads(PayloadSA, pl(PayloadNone, prop...))
	if err != nil {
		t.Fatal(err)
	}
	got := ps[0].(*SA).Proposals[0].Transforms[0]
	want := Transform{Type: TransformENCR, ID: 12, KeyLength: 256, OtherAttributes: "\x80\x11\x00\x01"}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}
