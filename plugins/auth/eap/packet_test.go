package eap

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/veil-ipsec/veil/sdk/auth"
)

func TestParsePacketStrict(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":                {},
		"short header":         {1, 1, 0},
		"length below header":  {1, 1, 0, 3},
		"length beyond buffer": {1, 1, 0, 9, 1},
		"request without type": {1, 1, 0, 4},
		"success with data":    {3, 1, 0, 5, 0},
		"unknown code":         {9, 1, 0, 4},
	} {
		if _, err := ParsePacket(b); err == nil {
			t.Errorf("%s: %x parsed", name, b)
		}
	}
	// Octets past Length are link padding (RFC 3748 §4.1).
	p, err := ParsePacket([]byte{2, 7, 0, 6, 1, 'a', 0xff, 0xff})
	if err != nil || p.Code != CodeResponse || p.ID != 7 || p.Type != TypeIdentity || string(p.Data) != "a" {
		t.Fatalf("%+v %v", p, err)
	}
	if got := p.Marshal(); !bytes.Equal(got, []byte{2, 7, 0, 6, 1, 'a'}) {
		t.Errorf("Marshal = %x", got)
	}
}

// Malformed and unexpected packets end a conversation with an error or a
// failure, never a panic or a success.
func FuzzPacket(f *testing.F) {
	f.Add([]byte{2, 1, 0, 10, 1, 'a', 'l', 'i', 'c', 'e'})
	f.Add([]byte{1, 1, 0, 6, 13, 0x20})
	f.Add([]byte{1, 1, 0, 10, 13, 0xc0, 0, 0, 0, 9})
	f.Add([]byte{1, 1, 0, 9, 26, 1, 1, 0, 4})
	f.Add([]byte{2, 1, 0, 7, 3, 26, 13})
	f.Add([]byte{1, 1, 0, 7, 4, 16, 0})
	f.Add([]byte{3, 1, 0, 4})
	pki := newPKI(f, false)
	users := map[string]string{"alice": writeSecret(f, "a", "pw")}
	srvP := New()
	cliP := New()
	cfg := func(p *Plugin, c Config) {
		js, _ := json.Marshal(c)
		if err := p.Configure(context.Background(), js); err != nil {
			f.Fatal(err)
		}
	}
	cfg(srvP, Config{Users: users, AllowMD5: true, Connections: map[string]ConnConfig{"s": {Method: "eap", Certificate: pki.serverCert, Key: pki.serverKey, CACerts: []string{pki.ca}}}})
	cfg(cliP, Config{AllowMD5: true, Connections: map[string]ConnConfig{"c": {Method: "eap", EAPID: "alice", Secret: users["alice"], Certificate: pki.clientCert, Key: pki.clientKey, CACerts: []string{pki.ca}}}})
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := ParsePacket(b); err == nil {
			q, err := ParsePacket(p.Marshal())
			if err != nil || q.Code != p.Code || q.ID != p.ID || q.Type != p.Type || !bytes.Equal(q.Data, p.Data) {
				t.Fatalf("round trip of %x: %+v %v", b, q, err)
			}
		}
		ctx := context.Background()
		for _, method := range []string{"eap-tls", "eap-mschapv2", "eap-md5"} {
			// The server, after its first request (identity) and after
			// the method's start, given the fuzzed response.
			s, err := srvP.StartEAP(ctx, &auth.EAPRequest{Connection: "s", Method: method, Server: true})
			if err != nil {
				t.Fatal(err)
			}
			first, _ := s.Step(ctx, nil)
			id := first.Message[1]
			if st, err := s.Step(ctx, withID(b, id)); err == nil && st.Success {
				t.Fatalf("%s server succeeded on %x", method, b)
			}
			s.Close()
			s, _ = srvP.StartEAP(ctx, &auth.EAPRequest{Connection: "s", Method: method, Server: true})
			first, _ = s.Step(ctx, nil)
			st, err := s.Step(ctx, []byte{2, first.Message[1], 0, 10, 1, 'a', 'l', 'i', 'c', 'e'})
			if err != nil {
				t.Fatal(err)
			}
			if st, err := s.Step(ctx, withID(b, st.Message[1])); err == nil && st.Success {
				t.Fatalf("%s server succeeded on %x", method, b)
			}
			s.Close()

			c, err := cliP.StartEAP(ctx, &auth.EAPRequest{Connection: "c", Method: "eap"})
			if err != nil {
				t.Fatal(err)
			}
			if st, err := c.Step(ctx, b); err == nil && st.Success {
				t.Fatalf("client succeeded on %x", b)
			}
			c.Close()
		}
	})
}

// withID sets the identifier of a fuzzed packet to the expected one, so
// the input reaches past the identifier check.
func withID(b []byte, id uint8) []byte {
	if len(b) < 2 {
		return b
	}
	c := bytes.Clone(b)
	c[1] = id
	return c
}

func TestTLSAck(t *testing.T) {
	for _, tc := range []struct {
		data []byte
		ack  bool
	}{
		{[]byte{0}, true},
		{[]byte{tlsFlagLength, 0, 0, 0, 0}, true},
		{[]byte{}, false},
		{[]byte{tlsFlagMore}, false},
		{[]byte{tlsFlagStart}, false},
		{[]byte{0, 22}, false},
		{[]byte{tlsFlagLength, 0, 0, 0, 1, 22}, false},
	} {
		if got := isAck(tc.data); got != tc.ack {
			t.Errorf("isAck(%x) = %v", tc.data, got)
		}
	}
}
