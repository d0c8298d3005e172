package vault

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	for ref, want := range map[string]Ref{
		"vault:transit/db1":                  {Mount: "transit", Name: "db1"},
		"vault:teams/ipsec/transit/gw1":      {Mount: "teams/ipsec/transit", Name: "gw1"},
		"vault:secret/veil/ppk#value":        {Mount: "secret", Name: "veil/ppk", Field: "value"},
		"vault:kv/a/b/c#f":                   {Mount: "kv", Name: "a/b/c", Field: "f"},
		"vault:transit/key-with.dots_and-_1": {Mount: "transit", Name: "key-with.dots_and-_1"},
	} {
		got, err := ParseRef(ref)
		if err != nil || got != want {
			t.Errorf("ParseRef(%q) = %+v, %v; want %+v", ref, got, err, want)
		}
	}
	for _, ref := range []string{"", "vault:", "vault:x", "vault:/x", "vault:x/", "vault:x//y", "vault:a/../b",
		"vault:a/./b", "vault:a/b?x=1", "vault:a/b#", "vault:a#f", "vault:a/b\n", "file:/x", "vault:a/b\x00"} {
		if r, err := ParseRef(ref); err == nil {
			t.Errorf("ParseRef(%q) = %+v, want an error", ref, r)
		}
	}
}

// Replies a broken proxy or another Vault version might give: an error,
// never a panic.
func TestOddReplies(t *testing.T) {
	for _, js := range []string{
		`{}`,
		`{"type": 5}`,
		`{"type": "ecdsa-p256"}`,
		`{"type": "ecdsa-p256", "latest_version": "1"}`,
		`{"type": "ecdsa-p256", "latest_version": 1}`,
		`{"type": "ecdsa-p256", "latest_version": 1, "keys": []}`,
		`{"type": "ecdsa-p256", "latest_version": 1, "keys": {"1": 3}}`,
		`{"type": "ecdsa-p256", "latest_version": 1, "keys": {"1": {"public_key": 3}}}`,
		`{"type": "ecdsa-p256", "latest_version": 1, "keys": {"1": {"public_key": "not pem"}}}`,
		`{"type": "ecdsa-p256", "latest_version": 1, "keys": {"1": {"public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}}}`,
		`{"type": "ed25519", "latest_version": 1, "keys": {"1": {"public_key": "AAAA"}}}`,
		`{"type": "ed25519", "latest_version": 1, "keys": {"1": {"public_key": "%%%"}}}`,
		`{"type": "ed25519", "latest_version": 1, "derived": true, "keys": {"1": {"public_key": "AAAA"}}}`,
		`{"type": "aes256-gcm96", "latest_version": 1}`,
		`{"type": "ecdsa-p256", "latest_version": -1}`,
		`{"type": "ecdsa-p256", "latest_version": 1e99}`,
	} {
		d := map[string]any{}
		dec := json.NewDecoder(strings.NewReader(js))
		dec.UseNumber()
		if err := dec.Decode(&d); err != nil {
			t.Fatal(err)
		}
		if k, err := parseTransitKey(d); err == nil {
			t.Errorf("parseTransitKey(%s) = %+v, want an error", js, k)
		}
	}
	for _, s := range []string{"", "vault:", "vault:v1", "vault:v1:", "vault:vx:AAAA", "vault:v1:%%%", "v1:AAAA", "AAAA"} {
		if sig, err := decodeSignature(s); err == nil {
			t.Errorf("decodeSignature(%q) = %x, want an error", s, sig)
		}
	}
	if sig, err := decodeSignature("vault:v12:AQID"); err != nil || string(sig) != "\x01\x02\x03" {
		t.Errorf("decodeSignature(vault:v12:AQID) = %x, %v", sig, err)
	}
}
