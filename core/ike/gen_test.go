package ike

import (
	"math/rand/v2"
	"net/netip"
)

// Random payload generators for the round-trip property tests. Each returns
// a payload in the canonical form ParsePayloads produces (nil for empty
// slices, Identification.Body filled in), so marshal -> parse must give it
// back exactly.

func randBytes(r *rand.Rand, min, max int) []byte {
	n := min + r.IntN(max-min+1)
	if n == 0 {
		return nil
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func randAttributes(r *rand.Rand) []byte {
	var b []byte
	for range r.IntN(3) {
		typ := uint16(r.IntN(0x7fff))
		if typ == attrKeyLength {
			typ++
		}
		if r.IntN(2) == 0 {
			b = append(b, byte((typ|attrTV)>>8), byte(typ), byte(r.Uint32()), byte(r.Uint32()))
		} else {
			v := randBytes(r, 0, 6)
			b = append(b, byte(typ>>8), byte(typ), 0, byte(len(v)))
			b = append(b, v...)
		}
	}
	return b
}

func randSA(r *rand.Rand) *SA {
	p := &SA{}
	for i := range 1 + r.IntN(4) {
		prop := Proposal{Number: uint8(i + 1), Protocol: ProtocolID(1 + r.IntN(3)), SPI: randBytes(r, 0, 8)}
		for range r.IntN(8) {
			t := Transform{Type: TransformType(1 + r.IntN(12)), ID: uint16(r.Uint32())}
			if r.IntN(2) == 0 {
				t.KeyLength = uint16(1 + r.IntN(512))
			}
			if r.IntN(4) == 0 {
				t.OtherAttributes = string(randAttributes(r))
			}
			prop.Transforms = append(prop.Transforms, t)
		}
		p.Proposals = append(p.Proposals, prop)
	}
	return p
}

func randID(r *rand.Rand) *Identification {
	p := &Identification{Initiator: r.IntN(2) == 0}
	switch r.IntN(4) {
	case 0:
		p.IDType, p.Data = IDIPv4, randBytes(r, 4, 4)
	case 1:
		p.IDType, p.Data = IDIPv6, randBytes(r, 16, 16)
	case 2:
		p.IDType, p.Data = IDFQDN, []byte("gw.example.org")
	default:
		p.IDType, p.Data = IDType(r.IntN(256)), randBytes(r, 0, 40)
		if p.IDType == IDIPv4 || p.IDType == IDIPv6 {
			p.IDType = IDKeyID
		}
	}
	p.Body = append([]byte{byte(p.IDType), 0, 0, 0}, p.Data...)
	return p
}

func randAddr(r *rand.Rand, v4 bool) netip.Addr {
	if v4 {
		return netip.AddrFrom4([4]byte(randBytes(r, 4, 4)))
	}
	return netip.AddrFrom16([16]byte(randBytes(r, 16, 16)))
}

func randTS(r *rand.Rand) *TrafficSelectors {
	p := &TrafficSelectors{Initiator: r.IntN(2) == 0}
	for range 1 + r.IntN(5) {
		v4 := r.IntN(2) == 0
		ts := TrafficSelector{Type: TSIPv6AddrRange, Protocol: uint8(r.IntN(256)),
			StartPort: uint16(r.Uint32()), EndPort: uint16(r.Uint32()),
			Start: randAddr(r, v4), End: randAddr(r, v4)}
		if v4 {
			ts.Type = TSIPv4AddrRange
		}
		p.Selectors = append(p.Selectors, ts)
	}
	return p
}

func randDelete(r *rand.Rand) *Delete {
	if r.IntN(3) == 0 {
		return &Delete{Protocol: ProtoIKE}
	}
	p := &Delete{Protocol: ProtocolID(2 + r.IntN(2)), SPISize: 4}
	for range r.IntN(6) {
		p.SPIs = append(p.SPIs, randBytes(r, 4, 4))
	}
	return p
}

func randCP(r *rand.Rand) *Configuration {
	p := &Configuration{CfgType: CfgType(1 + r.IntN(4))}
	for range r.IntN(6) {
		p.Attributes = append(p.Attributes, CPAttribute{Type: uint16(r.IntN(0x8000)), Value: randBytes(r, 0, 20)})
	}
	return p
}

func randEAP(r *rand.Rand) *EAP {
	p := &EAP{Code: uint8(1 + r.IntN(4)), Identifier: uint8(r.Uint32())}
	body := randBytes(r, 0, 60)
	p.Data = append([]byte{p.Code, p.Identifier, 0, byte(4 + len(body))}, body...)
	return p
}

func randUnknown(r *rand.Rand) *UnknownPayload {
	t := PayloadType(1 + r.IntN(32)) // IKEv1 numbers: unknown to IKEv2
	if r.IntN(2) == 0 {
		t = PayloadType(54 + r.IntN(200))
	}
	return &UnknownPayload{PayloadType: t, Body: randBytes(r, 0, 30)}
}

// payloadGenerators has one generator per payload kind, by name.
var payloadGenerators = map[string]func(r *rand.Rand) Payload{
	"SA": func(r *rand.Rand) Payload { return randSA(r) },
	"KE": func(r *rand.Rand) Payload {
		return &KeyExchange{Group: uint16(r.Uint32()), Data: randBytes(r, 1, 300)}
	},
	"ID": func(r *rand.Rand) Payload { return randID(r) },
	"CERT": func(r *rand.Rand) Payload {
		return &Certificate{Encoding: CertEncoding(r.IntN(256)), Data: randBytes(r, 0, 300)}
	},
	"CERTREQ": func(r *rand.Rand) Payload {
		return &CertificateRequest{Encoding: CertX509Signature, Data: randBytes(r, 0, 60)}
	},
	"AUTH": func(r *rand.Rand) Payload {
		return &Authentication{Method: AuthMethod(r.IntN(256)), Data: randBytes(r, 1, 100)}
	},
	"Nonce": func(r *rand.Rand) Payload { return &Nonce{Data: randBytes(r, MinNonceLen, MaxNonceLen)} },
	"Notify": func(r *rand.Rand) Payload {
		return &Notify{Protocol: ProtocolID(r.IntN(4)), SPI: randBytes(r, 0, 8),
			NotifyType: NotifyType(r.Uint32()), Data: randBytes(r, 0, 40)}
	},
	"Delete": func(r *rand.Rand) Payload { return randDelete(r) },
	"Vendor": func(r *rand.Rand) Payload { return &VendorID{Data: randBytes(r, 0, 40)} },
	"TS":     func(r *rand.Rand) Payload { return randTS(r) },
	"SK": func(r *rand.Rand) Payload {
		return &Encrypted{NextPayload: PayloadType(r.IntN(256)), Data: randBytes(r, 0, 100)}
	},
	"SKF": func(r *rand.Rand) Payload {
		total := uint16(1 + r.IntN(64))
		n := uint16(1 + r.IntN(int(total)))
		next := PayloadNone
		if n == 1 {
			next = PayloadType(r.IntN(256))
		}
		return &EncryptedFragment{NextPayload: next, Number: n, Total: total, Data: randBytes(r, 0, 100)}
	},
	"CP":      func(r *rand.Rand) Payload { return randCP(r) },
	"EAP":     func(r *rand.Rand) Payload { return randEAP(r) },
	"Unknown": func(r *rand.Rand) Payload { return randUnknown(r) },
}

// randChain builds a valid chain of up to 8 payloads; SK or SKF, if any,
// comes last.
func randChain(r *rand.Rand) []Payload {
	var ps []Payload
	for range r.IntN(8) {
		var gen func(*rand.Rand) Payload
		for name, g := range payloadGenerators {
			if name != "SK" && name != "SKF" {
				gen = g
				if r.IntN(3) == 0 {
					break
				}
			}
		}
		ps = append(ps, gen(r))
	}
	switch r.IntN(4) {
	case 0:
		ps = append(ps, payloadGenerators["SK"](r))
	case 1:
		ps = append(ps, payloadGenerators["SKF"](r))
	}
	return ps
}

func randHeader(r *rand.Rand) Header {
	return Header{SPIi: r.Uint64(), SPIr: r.Uint64(), Major: 2, Minor: uint8(r.IntN(16)),
		Exchange: ExchangeType(r.IntN(256)), Flags: Flags(r.IntN(256)), MessageID: r.Uint32()}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
