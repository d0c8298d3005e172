package eap

import (
	"encoding/json"
	"testing"

	"github.com/veil-ipsec/veil/sdk/auth"
	"github.com/veil-ipsec/veil/sdk/plugintest"
)

// The SDK's EAP conformance suite, over real gRPC, for each method.
func TestEAPConformance(t *testing.T) {
	pki := newPKI(t, false)
	good := writeSecret(t, "good", "alice's password")
	bad := writeSecret(t, "bad", "guess")
	cfg := func(method string, client, wrong ConnConfig) []byte {
		client.Method, wrong.Method = method, method
		js, err := json.Marshal(Config{
			Users:    map[string]string{"alice": good},
			AllowMD5: true,
			Connections: map[string]ConnConfig{
				"gw":    {Method: method, EAPID: "%any", Certificate: pki.serverCert, Key: pki.serverKey, CACerts: []string{pki.ca}},
				"c":     client,
				"wrong": wrong,
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		return js
	}
	other := newPKI(t, false)
	var cases []plugintest.EAPCase
	for _, m := range []struct {
		method        string
		client, wrong ConnConfig
	}{
		{"eap-mschapv2", ConnConfig{EAPID: "alice", Secret: good}, ConnConfig{EAPID: "alice", Secret: bad}},
		{"eap-md5", ConnConfig{EAPID: "alice", Secret: good}, ConnConfig{EAPID: "alice", Secret: bad}},
		{"eap-tls",
			ConnConfig{EAPID: "alice", Certificate: pki.clientCert, Key: pki.clientKey, CACerts: []string{pki.ca}},
			ConnConfig{EAPID: "alice", Certificate: other.clientCert, Key: other.clientKey, CACerts: []string{pki.ca}}},
	} {
		cases = append(cases, plugintest.EAPCase{
			Name:        m.method,
			Config:      cfg(m.method, m.client, m.wrong),
			Server:      &auth.EAPRequest{Connection: "gw", Method: m.method, Server: true},
			Client:      &auth.EAPRequest{Connection: "c", Method: m.method},
			WrongClient: &auth.EAPRequest{Connection: "wrong", Method: m.method},
			Identity:    "alice",
			NoMSK:       m.method == "eap-md5",
		})
	}
	plugintest.RunEAPConformance(t, New(), cases)
}
