package ike_test

// Interop check against real strongSwan messages (testdata/
// strongswan-psk-exchange.txt): parse them, decrypt both IKE_AUTH messages
// with core/transform's cipher and strongSwan's logged keys, and recompute
// both AUTH payloads from Message.Raw and Identification.Body (RFC 7296
// §2.15). The AUTH check is what proves that Raw and Body are the exact
// octets the peer signed.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"net/netip"
	"testing"

	"github.com/veil-ipsec/veil/core/ike"
	"github.com/veil-ipsec/veil/core/transform"
)

func hmacSHA256(key []byte, data ...[]byte) []byte {
	h := hmac.New(sha256.New, key)
	for _, d := range data {
		h.Write(d)
	}
	return h.Sum(nil)
}

// pskAuth is AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"),
// <SignedOctets>), SignedOctets = RealMessage | NonceData | prf(SK_p, ID').
func pskAuth(psk string, message, peerNonce, skp, idBody []byte) []byte {
	return hmacSHA256(hmacSHA256([]byte(psk), []byte("Key Pad for IKEv2")), message, peerNonce, hmacSHA256(skp, idBody))
}

func TestStrongSwanExchange(t *testing.T) {
	x, err := ike.ReadStrongSwanExchange()
	if err != nil {
		t.Fatal(err)
	}
	if len(x.Datagrams) != 4 {
		t.Fatalf("%d datagrams, want 4", len(x.Datagrams))
	}
	var msgs []*ike.Message
	for i, d := range x.Datagrams {
		b := d.Payload
		if d.Dst.Port() == 4500 {
			var isIKE bool
			if b, isIKE = ike.StripNonESPMarker(b); !isIKE {
				t.Fatalf("datagram %d to port 4500 has no non-ESP marker", i+1)
			}
		}
		m, err := ike.ParseMessage(b)
		if err != nil {
			t.Fatalf("datagram %d: %v", i+1, err)
		}
		if !bytes.Equal(m.Raw, b) {
			t.Fatalf("datagram %d: Raw differs from the input", i+1)
		}
		// Parse -> marshal gives strongSwan's bytes back.
		again := &ike.Message{Header: m.Header, Payloads: m.Payloads}
		if out, err := again.Marshal(); err != nil || !bytes.Equal(out, b) {
			t.Fatalf("datagram %d re-marshals differently (%v)", i+1, err)
		}
		msgs = append(msgs, m)
	}
	initReq, initResp, authReq, authResp := msgs[0], msgs[1], msgs[2], msgs[3]

	t.Run("IKE_SA_INIT", func(t *testing.T) {
		h := initReq.Header
		if h.Exchange != ike.IKE_SA_INIT || !h.IsInitiator() || h.IsResponse() || h.SPIr != 0 || h.MessageID != 0 {
			t.Fatalf("request header %+v", h)
		}
		if r := initResp.Header; r.SPIi != h.SPIi || r.SPIr == 0 || !r.IsResponse() || r.IsInitiator() {
			t.Fatalf("response header %+v", r)
		}
		sa := ike.Get[*ike.SA](initReq.Payloads)
		want := []ike.Transform{{Type: ike.TransformENCR, ID: 12, KeyLength: 256}, {Type: ike.TransformINTEG, ID: 12},
			{Type: ike.TransformPRF, ID: 5}, {Type: ike.TransformKE, ID: 31}}
		if sa == nil || len(sa.Proposals) != 1 || sa.Proposals[0].Protocol != ike.ProtoIKE {
			t.Fatalf("SA %+v", sa)
		}
		for _, tf := range want {
			found := false
			for _, got := range sa.Proposals[0].Transforms {
				found = found || got == tf
			}
			if !found {
				t.Errorf("proposal lacks %+v: %+v", tf, sa.Proposals[0].Transforms)
			}
		}
		for _, m := range []*ike.Message{initReq, initResp} {
			if ke := ike.Get[*ike.KeyExchange](m.Payloads); ke == nil || ke.Group != 31 || len(ke.Data) != 32 {
				t.Errorf("KE %+v", ke)
			}
			if n := ike.Get[*ike.Nonce](m.Payloads); n == nil || len(n.Data) != 32 {
				t.Errorf("nonce %+v", n)
			}
			if m.Notify(ike.NotifyIkev2FragmentationSupported) == nil || m.Notify(ike.NotifySignatureHashAlgorithms) == nil {
				t.Errorf("missing FRAGMENTATION/SIGNATURE_HASH notifies in %v", m.Payloads)
			}
		}
		// Our NAT detection hash agrees with strongSwan's (no NAT here).
		src, dst := x.Datagrams[0].Src, x.Datagrams[0].Dst
		if n := initReq.Notify(ike.NotifyNatDetectionSourceIp); n == nil || !bytes.Equal(n.Data, ike.NATDetectionHash(h.SPIi, 0, src)) {
			t.Errorf("NAT_DETECTION_SOURCE_IP %x", n)
		}
		if n := initReq.Notify(ike.NotifyNatDetectionDestinationIp); n == nil || !bytes.Equal(n.Data, ike.NATDetectionHash(h.SPIi, 0, dst)) {
			t.Errorf("NAT_DETECTION_DESTINATION_IP %x", n)
		}
	})

	suite := transform.Suite{Protocol: transform.ProtoIKE, Encr: transform.EncrAESCBC, EncrKeyBits: 256,
		Integ: transform.IntegHMACSHA256128, PRF: 5, KE: 31}
	open := func(t *testing.T, m *ike.Message, ek, ak []byte) []ike.Payload {
		t.Helper()
		c, err := suite.NewSKCipher(ek, ak)
		if err != nil {
			t.Fatal(err)
		}
		inner, err := ike.OpenMessage(m, c)
		if err != nil {
			t.Fatal(err)
		}
		// The plaintext strongSwan encrypted is exactly what we marshal.
		sk := m.Payloads[len(m.Payloads)-1].(*ike.Encrypted)
		plain, err := c.Open(nil, m.Raw[:len(m.Raw)-len(sk.Data)], sk.Data)
		if err != nil {
			t.Fatal(err)
		}
		if _, body, err := ike.MarshalPayloads(inner); err != nil || !bytes.Equal(body, plain) {
			t.Errorf("inner payloads re-marshal differently (%v)", err)
		}
		return inner
	}
	ni := ike.Get[*ike.Nonce](initReq.Payloads).Data
	nr := ike.Get[*ike.Nonce](initResp.Payloads).Data

	t.Run("IKE_AUTH request", func(t *testing.T) {
		inner := open(t, authReq, x.Keys["sk_ei"], x.Keys["sk_ai"])
		idi, idr := ike.GetID(inner, true), ike.GetID(inner, false)
		if idi == nil || idi.IDType != ike.IDFQDN || string(idi.Data) != "client.example.org" {
			t.Fatalf("IDi %+v", idi)
		}
		if idr == nil || string(idr.Data) != "gw.example.org" {
			t.Fatalf("IDr %+v", idr)
		}
		auth := ike.Get[*ike.Authentication](inner)
		if auth == nil || auth.Method != ike.AuthSharedKey {
			t.Fatalf("AUTH %+v", auth)
		}
		if want := pskAuth(x.PSK, initReq.Raw, nr, x.Keys["sk_pi"], idi.SignedBody()); !bytes.Equal(auth.Data, want) {
			t.Fatalf("initiator AUTH does not verify over Raw and IDi.Body")
		}
		tsi, tsr := ike.GetTS(inner, true), ike.GetTS(inner, false)
		wantTSi := ike.TrafficSelector{Type: ike.TSIPv4AddrRange, EndPort: 65535,
			Start: netip.MustParseAddr("10.1.0.0"), End: netip.MustParseAddr("10.1.255.255")}
		wantTSr := ike.TrafficSelector{Type: ike.TSIPv4AddrRange, EndPort: 65535,
			Start: netip.MustParseAddr("10.2.0.0"), End: netip.MustParseAddr("10.2.0.255")}
		if tsi == nil || len(tsi.Selectors) != 1 || tsi.Selectors[0] != wantTSi {
			t.Errorf("TSi %+v", tsi)
		}
		if tsr == nil || len(tsr.Selectors) != 1 || tsr.Selectors[0] != wantTSr {
			t.Errorf("TSr %+v", tsr)
		}
		sa := ike.Get[*ike.SA](inner)
		if sa == nil || sa.Proposals[0].Protocol != ike.ProtoESP || len(sa.Proposals[0].SPI) != 4 {
			t.Errorf("child SA %+v", sa)
		}
		if ike.FindNotify(inner, ike.NotifyInitialContact) == nil || ike.FindNotify(inner, ike.NotifyMobikeSupported) == nil {
			t.Errorf("missing INITIAL_CONTACT/MOBIKE_SUPPORTED")
		}
	})

	t.Run("IKE_AUTH response", func(t *testing.T) {
		inner := open(t, authResp, x.Keys["sk_er"], x.Keys["sk_ar"])
		idr := ike.GetID(inner, false)
		auth := ike.Get[*ike.Authentication](inner)
		if idr == nil || auth == nil {
			t.Fatalf("inner %v", inner)
		}
		if want := pskAuth(x.PSK, initResp.Raw, ni, x.Keys["sk_pr"], idr.SignedBody()); !bytes.Equal(auth.Data, want) {
			t.Fatalf("responder AUTH does not verify over Raw and IDr.Body")
		}
		if ike.FindNotify(inner, ike.NotifyNoProposalChosen) == nil {
			t.Errorf("missing NO_PROPOSAL_CHOSEN")
		}
	})
}
