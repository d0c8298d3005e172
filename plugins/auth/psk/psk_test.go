package psk

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"hash"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veil-ipsec/veil/sdk/auth"
	"github.com/veil-ipsec/veil/sdk/plugintest"
)

func writeKey(t *testing.T, key string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "peer.psk")
	if err := os.WriteFile(p, []byte(key), mode); err != nil {
		t.Fatal(err)
	}
	return "file:" + p
}

func config(t *testing.T, secrets map[string]string) []byte {
	t.Helper()
	b, err := json.Marshal(Config{Secrets: secrets})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var request = &auth.Request{
	Connection:   "lab",
	Role:         auth.Initiator,
	LocalID:      auth.Identity{Type: 2, Data: []byte("a.lab.example")},
	RemoteID:     auth.Identity{Type: 2, Data: []byte("b.lab.example")},
	PRF:          5,
	SignedOctets: []byte("first message | Nr | prf(SK_pi, IDi')"),
}

func TestConformance(t *testing.T) {
	ref := writeKey(t, "0123456789abcdef0123456789abcdef\n", 0o600)
	plugintest.RunAuthConformance(t, New(), plugintest.AuthCase{
		Config:  config(t, map[string]string{"b.lab.example": ref}),
		Request: request,
	})
}

// TestAuthValue checks Make against RFC 7296 §2.15's formula computed here
// step by step, for each PRF, with the trailing newline of the file trimmed.
func TestAuthValue(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	p := New()
	if err := p.Configure(context.Background(), config(t, map[string]string{"b.lab.example": writeKey(t, secret+"\n", 0o600)})); err != nil {
		t.Fatal(err)
	}
	for prf, h := range map[uint16]func() hash.Hash{5: sha256.New, 6: sha512.New384, 7: sha512.New} {
		inner := hmac.New(h, []byte(secret))
		inner.Write([]byte("Key Pad for IKEv2"))
		outer := hmac.New(h, inner.Sum(nil))
		outer.Write(request.SignedOctets)
		want := outer.Sum(nil)

		req := *request
		req.PRF = prf
		res, err := p.Make(context.Background(), &req)
		if err != nil {
			t.Fatal(err)
		}
		if res.Method != MethodSharedKey || !hmac.Equal(res.Data, want) {
			t.Errorf("PRF %d: Make = method %d %x, want method 2 %x", prf, res.Method, res.Data, want)
		}
	}
}

func TestPeerSelection(t *testing.T) {
	p := New()
	err := p.Configure(context.Background(), config(t, map[string]string{
		"b.lab.example": writeKey(t, strings.Repeat("b", 32), 0o600),
		"192.0.2.9":     writeKey(t, strings.Repeat("c", 32), 0o600),
	}))
	if err != nil {
		t.Fatal(err)
	}
	resB, err := p.Make(context.Background(), request)
	if err != nil {
		t.Fatal(err)
	}
	req := *request
	req.RemoteID = auth.Identity{Type: 1, Data: []byte{192, 0, 2, 9}}
	resC, err := p.Make(context.Background(), &req)
	if err != nil {
		t.Fatal(err)
	}
	if hmac.Equal(resB.Data, resC.Data) {
		t.Error("two peers with different keys got the same AUTH")
	}
	req.RemoteID = auth.Identity{Type: 2, Data: []byte("unknown.example")}
	if _, err := p.Make(context.Background(), &req); err == nil || !strings.Contains(err.Error(), "no pre-shared key") {
		t.Errorf("unknown peer: err = %v", err)
	}
}

func TestKeyRules(t *testing.T) {
	for _, tc := range []struct {
		name, key string
		mode      os.FileMode
		wantErr   string
	}{
		{"short", strings.Repeat("k", 15), 0o600, "at least 16"},
		{"group readable", strings.Repeat("k", 32), 0o640, "chmod 600"},
		{"empty", "\n", 0o600, "empty"},
		{"minimum", strings.Repeat("k", 16), 0o600, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := New().Configure(context.Background(), config(t, map[string]string{"*": writeKey(t, tc.key, tc.mode)}))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), strings.TrimSpace(tc.key)) && strings.TrimSpace(tc.key) != "" {
				t.Fatalf("error shows the key: %v", err)
			}
		})
	}
}

func TestVerifyRejectsOtherMethod(t *testing.T) {
	p := New()
	if err := p.Configure(context.Background(), config(t, map[string]string{"*": writeKey(t, strings.Repeat("k", 32), 0o600)})); err != nil {
		t.Fatal(err)
	}
	res, err := p.Make(context.Background(), request)
	if err != nil {
		t.Fatal(err)
	}
	req := *request
	req.Method, req.Data = 1, res.Data // RSA signature method with a valid MIC
	if err := p.Verify(context.Background(), &req); err == nil {
		t.Error("Verify accepted a shared-key MIC labelled as method 1")
	}
}

// TestResolvedSecrets: a reference veild resolved through a keystore is
// used as the key, with the same length rules; an unresolved keystore
// reference is refused naming it; errors never show the secret.
func TestResolvedSecrets(t *testing.T) {
	const ref = "vault:secret/ipsec#lab"
	secret := strings.Repeat("v", 32)
	cfg := func(resolved map[string][]byte) []byte {
		b, err := json.Marshal(Config{Secrets: map[string]string{"b.lab.example": ref}, Resolved: resolved})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	p := New()
	if err := p.Configure(context.Background(), cfg(map[string][]byte{ref: []byte(secret)})); err != nil {
		t.Fatal(err)
	}
	got, err := p.Make(context.Background(), request)
	if err != nil {
		t.Fatal(err)
	}
	file := New()
	if err := file.Configure(context.Background(), config(t, map[string]string{"b.lab.example": writeKey(t, secret, 0o600)})); err != nil {
		t.Fatal(err)
	}
	want, err := file.Make(context.Background(), request)
	if err != nil {
		t.Fatal(err)
	}
	if !hmac.Equal(got.Data, want.Data) {
		t.Error("the resolved secret gives another AUTH than the same secret in a file")
	}

	for _, tc := range []struct {
		name     string
		resolved map[string][]byte
		wantErr  string
	}{
		{"not resolved", nil, "not resolved by veild"},
		{"short", map[string][]byte{ref: []byte("short-secret-123"[:15])}, "at least 16"},
		{"empty", map[string][]byte{ref: {}}, "empty secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := New()
			err := p.Configure(context.Background(), cfg(tc.resolved))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), ref) {
				t.Fatalf("err = %v, want it to mention %q and the reference", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "short-secret") {
				t.Fatalf("error shows the secret: %v", err)
			}
		})
	}

	// A refused reconfiguration keeps the keys in use.
	if err := p.Configure(context.Background(), cfg(nil)); err == nil {
		t.Fatal("unresolved keystore reference accepted")
	}
	if again, err := p.Make(context.Background(), request); err != nil || !hmac.Equal(again.Data, want.Data) {
		t.Errorf("after a refused reconfiguration: %v", err)
	}
}

// A literal secret in a hand-written plugin block is refused without being
// shown.
func TestLiteralNotShown(t *testing.T) {
	for _, lit := range []string{"hunter2hunter2hunter2hunter2", "a long pass phrase: with a colon"} {
		err := New().Configure(context.Background(), config(t, map[string]string{"*": lit}))
		if err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "pass phrase") {
			t.Errorf("Configure with a literal: %v", err)
		}
	}
}
