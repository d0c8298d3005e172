package ike

// Realistic messages shared by the fuzz corpus, the benchmarks and the
// tshark cross-check (exported here so package ike_test can use them). The
// IKE_SA_INIT pair follows what strongSwan 6 sends: proposals with ADDKE,
// Curve25519 KE, 32-byte nonces, NAT detection hashes computed as RFC 7296
// §2.23 says, fragmentation/signature-hash/intermediate support notifies.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Addresses and SPIs of the sample exchange.
var (
	SampleInitiatorAddr = netip.MustParseAddrPort("192.0.2.1:500")
	SampleResponderAddr = netip.MustParseAddrPort("192.0.2.2:500")
)

const (
	SampleSPIi uint64 = 0x0123456789abcdef
	SampleSPIr uint64 = 0xfedcba9876543210
)

// NATDetectionHash is SHA-1(SPIi | SPIr | IP | port) (RFC 7296 §2.23).
func NATDetectionHash(spii, spir uint64, ap netip.AddrPort) []byte {
	h := sha1.New()
	binary.Write(h, binary.BigEndian, spii)
	binary.Write(h, binary.BigEndian, spir)
	h.Write(ap.Addr().AsSlice())
	binary.Write(h, binary.BigEndian, ap.Port())
	return h.Sum(nil)
}

func sampleIKEProposals() *SA {
	return &SA{Proposals: []Proposal{
		{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{
			{Type: TransformENCR, ID: 20, KeyLength: 256}, // AES-GCM-16
			{Type: TransformPRF, ID: 5},                   // HMAC-SHA2-256
			{Type: TransformKE, ID: 31},                   // Curve25519
			{Type: TransformADDKE1, ID: 36},               // ML-KEM-768
			{Type: TransformADDKE1, ID: 0},                // ... or none
		}},
		{Number: 2, Protocol: ProtoIKE, Transforms: []Transform{
			{Type: TransformENCR, ID: 12, KeyLength: 256}, // AES-CBC
			{Type: TransformPRF, ID: 5},
			{Type: TransformINTEG, ID: 12}, // HMAC-SHA2-256-128
			{Type: TransformKE, ID: 31},
			{Type: TransformKE, ID: 19}, // ECP-256
		}},
	}}
}

func sampleNonce(seed byte) *Nonce { return &Nonce{Data: bytes.Repeat([]byte{seed}, 32)} }

// SampleSAInitRequest is an initiator's IKE_SA_INIT request.
func SampleSAInitRequest() *Message {
	return &Message{
		Header: Header{SPIi: SampleSPIi, Major: 2, Exchange: IKE_SA_INIT, Flags: FlagInitiator},
		Payloads: []Payload{
			sampleIKEProposals(),
			&KeyExchange{Group: 31, Data: bytes.Repeat([]byte{0x31}, 32)},
			sampleNonce(0x11),
			&Notify{NotifyType: NotifyNatDetectionSourceIp, Data: NATDetectionHash(SampleSPIi, 0, SampleInitiatorAddr)},
			&Notify{NotifyType: NotifyNatDetectionDestinationIp, Data: NATDetectionHash(SampleSPIi, 0, SampleResponderAddr)},
			&Notify{NotifyType: NotifyIkev2FragmentationSupported},
			&Notify{NotifyType: NotifySignatureHashAlgorithms, Data: []byte{0, 2, 0, 3, 0, 4, 0, 5}},
			&Notify{NotifyType: NotifyIntermediateExchangeSupported},
			&VendorID{Data: []byte("veil-ipsec")},
		},
	}
}

// SampleSAInitResponse is the responder's answer, choosing proposal 1.
func SampleSAInitResponse() *Message {
	chosen := sampleIKEProposals()
	chosen.Proposals = chosen.Proposals[:1]
	chosen.Proposals[0].Transforms = chosen.Proposals[0].Transforms[:4]
	return &Message{
		Header: Header{SPIi: SampleSPIi, SPIr: SampleSPIr, Major: 2, Exchange: IKE_SA_INIT, Flags: FlagResponse},
		Payloads: []Payload{
			chosen,
			&KeyExchange{Group: 31, Data: bytes.Repeat([]byte{0x32}, 32)},
			sampleNonce(0x22),
			&Notify{NotifyType: NotifyNatDetectionSourceIp, Data: NATDetectionHash(SampleSPIi, SampleSPIr, SampleResponderAddr)},
			&Notify{NotifyType: NotifyNatDetectionDestinationIp, Data: NATDetectionHash(SampleSPIi, SampleSPIr, SampleInitiatorAddr)},
			&CertificateRequest{Encoding: CertX509Signature, Data: bytes.Repeat([]byte{0xce}, 20)},
			&Notify{NotifyType: NotifyIkev2FragmentationSupported},
			&Notify{NotifyType: NotifyMultipleAuthSupported},
		},
	}
}

// SampleAuthPayloads is the inside of an IKE_AUTH request.
func SampleAuthPayloads() []Payload {
	idi := []byte("client.example.org")
	return []Payload{
		&Identification{Initiator: true, IDType: IDFQDN, Data: idi, Body: append([]byte{byte(IDFQDN), 0, 0, 0}, idi...)},
		&Notify{NotifyType: NotifyInitialContact},
		&Authentication{Method: AuthSharedKey, Data: bytes.Repeat([]byte{0xa7}, 32)},
		&Configuration{CfgType: CfgRequest, Attributes: []CPAttribute{{Type: CfgInternalIP4Address}, {Type: CfgInternalIP4DNS}}},
		&SA{Proposals: []Proposal{{Number: 1, Protocol: ProtoESP, SPI: []byte{0xc0, 0x01, 0xca, 0xfe}, Transforms: []Transform{
			{Type: TransformENCR, ID: 20, KeyLength: 128}, {Type: TransformESN, ID: 0}}}}},
		&TrafficSelectors{Initiator: true, Selectors: []TrafficSelector{{Type: TSIPv4AddrRange, Protocol: 6,
			StartPort: 5432, EndPort: 5432, Start: netip.MustParseAddr("10.1.0.0"), End: netip.MustParseAddr("10.1.255.255")}}},
		&TrafficSelectors{Selectors: []TrafficSelector{
			{Type: TSIPv4AddrRange, EndPort: 65535, Start: netip.MustParseAddr("10.2.0.0"), End: netip.MustParseAddr("10.2.0.255")},
			{Type: TSIPv6AddrRange, Protocol: 17, StartPort: 53, EndPort: 53,
				Start: netip.MustParseAddr("2001:db8::"), End: netip.MustParseAddr("2001:db8::ffff")}}},
		&Notify{NotifyType: NotifyEspTfcPaddingNotSupported},
	}
}

// SampleAuthHeader is the IKE_AUTH request's header (Length and
// NextPayload are set by SealMessage).
func SampleAuthHeader() Header {
	return Header{SPIi: SampleSPIi, SPIr: SampleSPIr, Major: 2, Exchange: IKE_AUTH, Flags: FlagInitiator, MessageID: 1}
}

// SampleInformational is an unencrypted INFORMATIONAL carrying the payload
// kinds that normally travel inside SK (so dissectors can check them in
// the clear): Delete, IDr, CERT, AUTH, TSr, CP, EAP, a notify with an SPI.
func SampleInformational() *Message {
	idr := []byte{192, 0, 2, 2}
	return &Message{
		Header: Header{SPIi: SampleSPIi, SPIr: SampleSPIr, Major: 2, Exchange: INFORMATIONAL, Flags: FlagResponse, MessageID: 2},
		Payloads: []Payload{
			&Delete{Protocol: ProtoESP, SPISize: 4, SPIs: [][]byte{{0xc0, 0x01, 0xca, 0xfe}, {0xde, 0xad, 0xbe, 0xef}}},
			&Identification{IDType: IDIPv4, Data: idr, Body: append([]byte{byte(IDIPv4), 0, 0, 0}, idr...)},
			&Certificate{Encoding: CertX509Signature, Data: SampleCertificate()},
			&Authentication{Method: AuthRSASignature, Data: bytes.Repeat([]byte{0x5a}, 48)},
			&TrafficSelectors{Selectors: []TrafficSelector{{Type: TSIPv4AddrRange, EndPort: 65535,
				Start: netip.MustParseAddr("10.9.0.1"), End: netip.MustParseAddr("10.9.0.1")}}},
			&Configuration{CfgType: CfgReply, Attributes: []CPAttribute{{Type: CfgInternalIP4Address, Value: []byte{10, 9, 0, 1}}}},
			&EAP{Code: 1, Identifier: 7, Data: []byte{1, 7, 0, 5, 1}}, // EAP-Request/Identity
			&Notify{Protocol: ProtoESP, SPI: []byte{0xc0, 0x01, 0xca, 0xfe}, NotifyType: NotifyRekeySa},
		},
	}
}

// SampleCertificate is a self-signed Ed25519 certificate; the same bytes
// every time (fixed key, dates and serial; Ed25519 signing is
// deterministic), so the fuzz seed that carries it stays stable.
func SampleCertificate() []byte {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x5e}, ed25519.SeedSize))
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "gw.example.org"},
		NotBefore:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC),
		DNSNames:     []string{"gw.example.org"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		panic(err)
	}
	return der
}

// StrongSwanExchange is testdata/strongswan-psk-exchange.txt: a real
// exchange between two strongSwan instances with the initiator's keys.
type StrongSwanExchange struct {
	PSK       string
	Keys      map[string][]byte // sk_d, sk_ai, sk_ar, sk_ei, sk_er, sk_pi, sk_pr
	Datagrams []StrongSwanDatagram
}

// StrongSwanDatagram is one captured UDP payload.
type StrongSwanDatagram struct {
	Src, Dst netip.AddrPort
	Payload  []byte
}

func ReadStrongSwanExchange() (*StrongSwanExchange, error) {
	content, err := os.ReadFile(filepath.Join("testdata", "strongswan-psk-exchange.txt"))
	if err != nil {
		return nil, err
	}
	x := &StrongSwanExchange{Keys: map[string][]byte{}}
	for _, line := range strings.Split(string(content), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, rest, _ := strings.Cut(line, " ")
		switch {
		case key == "psk":
			x.PSK = rest
		case key == "msg":
			f := strings.Fields(rest)
			if len(f) != 3 {
				return nil, fmt.Errorf("bad line %q", line)
			}
			src, err1 := netip.ParseAddrPort(f[0])
			dst, err2 := netip.ParseAddrPort(f[1])
			b, err3 := hex.DecodeString(f[2])
			if err := errors.Join(err1, err2, err3); err != nil {
				return nil, err
			}
			x.Datagrams = append(x.Datagrams, StrongSwanDatagram{src, dst, b})
		default:
			b, err := hex.DecodeString(rest)
			if err != nil {
				return nil, err
			}
			x.Keys[key] = b
		}
	}
	return x, nil
}
