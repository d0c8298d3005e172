package plugintest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/netip"
	"os"
	"regexp"
	"testing"

	"github.com/veil-ipsec/veil/sdk/auth"
	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/dataplane"
	"github.com/veil-ipsec/veil/sdk/keystore"
)

func TestDataplaneMockConformance(t *testing.T) {
	RunDataplaneConformance(t, &dataplane.Mock{}, DataplaneCase{
		Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2"),
	})
}

func TestKeystoreMockConformance(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	RunKeystoreConformance(t, &keystore.Mock{
		Secrets: map[string][]byte{"mem:psk": []byte("sixteen bytes ok")},
		Keys:    map[string]crypto.Signer{"mem:ec": ec, "mem:ed": ed},
	}, KeystoreCase{SecretRef: "mem:psk", Secret: []byte("sixteen bytes ok"), SignerRefs: []string{"mem:ec", "mem:ed"}, MissingRef: "mem:none"})
}

// TestAuthHarnessCarriesEverything: every field of a request reaches the
// plugin and every field of a result comes back.
func TestAuthHarnessCarriesEverything(t *testing.T) {
	want := &auth.Request{Connection: "c", Role: auth.Responder, LocalID: auth.Identity{Type: 2, Data: []byte("l")},
		RemoteID: auth.Identity{Type: 9, Data: []byte("r")}, PRF: 7, SignedOctets: []byte{1}, Method: 14,
		Data: []byte{2}, Certs: [][]byte{{3}, {4}}, SignatureHashes: []uint16{2, 4}}
	var got *auth.Request
	c := AuthClient(t, &auth.Mock{
		MakeFn: func(_ context.Context, r *auth.Request) (*auth.Result, error) {
			got = r
			return &auth.Result{Method: 14, Data: []byte{9}, Certs: [][]byte{{8}}}, nil
		},
		VerifyFn: func(context.Context, *auth.Request) error { return errors.New("plain reason") },
	})
	res, err := c.Make(context.Background(), want)
	if err != nil {
		t.Fatal(err)
	}
	if got.Connection != want.Connection || got.Role != want.Role || string(got.LocalID.Data) != "l" || got.RemoteID.Type != 9 ||
		got.PRF != 7 || got.Method != 14 || len(got.Certs) != 2 || len(got.SignatureHashes) != 2 || got.SignatureHashes[1] != 4 {
		t.Errorf("plugin got %+v", got)
	}
	if res.Method != 14 || res.Data[0] != 9 || len(res.Certs) != 1 {
		t.Errorf("host got %+v", res)
	}
	if err := c.Verify(context.Background(), want); err == nil || err.Error() != "plain reason" {
		t.Errorf("Verify error = %v, want the plugin's text unchanged", err)
	}
}

// TestProtocolVersionMatchesProto keeps base.ProtocolVersion and the proto
// package name (veil.plugin.v1) in step.
func TestProtocolVersionMatchesProto(t *testing.T) {
	for _, f := range []string{"base.proto", "auth.proto", "keystore.proto", "dataplane.proto"} {
		b, err := os.ReadFile("../proto/" + f)
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^package veil\.plugin\.v(\d+);`).FindSubmatch(b)
		if m == nil || string(m[1]) != "1" || base.ProtocolVersion != 1 {
			t.Errorf("%s: package version %q, base.ProtocolVersion %d", f, m, base.ProtocolVersion)
		}
	}
}
