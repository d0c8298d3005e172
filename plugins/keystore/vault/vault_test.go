package vault

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/veil-ipsec/veil/sdk/keystore"
	"github.com/veil-ipsec/veil/sdk/plugintest"
	vaulttest "github.com/veil-ipsec/veil/test/vault"
)

func TestMain(m *testing.M) {
	code := m.Run()
	vaulttest.Cleanup()
	os.Exit(code)
}

// keyTypes are the transit keys every test server has, by name.
var keyTypes = map[string]string{
	"ec":    "ecdsa-p256",
	"ec384": "ecdsa-p384",
	"ed":    "ed25519",
	"rsa":   "rsa-2048",
}

const ppk = "a post-quantum preshared key of 40 bytes"

// server starts Vault with transit at "transit" (the keys above), KV
// version 2 at "secret" (secret/veil/ppk#value = ppk) and writes the root
// token to a 0600 file.
func server(t *testing.T) (*vaulttest.Server, string) {
	t.Helper()
	srv := vaulttest.Start(t)
	srv.Mount(t, "transit", "transit", nil)
	srv.Mount(t, "secret", "kv", map[string]string{"version": "2"})
	for name, typ := range keyTypes {
		srv.Write(t, "transit/keys/"+name, map[string]any{"type": typ})
	}
	srv.Write(t, "secret/data/veil/ppk", map[string]any{"data": map[string]any{"value": ppk, "other": "x"}})
	return srv, writeFile(t, "token", srv.Token)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func configJSON(t *testing.T, v map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func configured(t *testing.T, cfg map[string]any) *Store {
	t.Helper()
	s := New()
	if err := s.Configure(context.Background(), configJSON(t, cfg)); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	t.Cleanup(func() { s.conn.close() })
	return s
}

func TestConformance(t *testing.T) {
	srv, tokenFile := server(t)
	plugintest.RunKeystoreConformance(t, New(), plugintest.KeystoreCase{
		Config:     configJSON(t, map[string]any{"address": srv.Addr, "token_file": tokenFile}),
		SecretRef:  "vault:secret/veil/ppk#value",
		Secret:     []byte(ppk),
		SignerRefs: []string{"vault:transit/ec", "vault:transit/ec384", "vault:transit/ed", "vault:transit/rsa"},
		MissingRef: "vault:transit/missing",
	})
}

// TestSignaturesAreVaults checks the plugin against Vault itself: the
// public keys are the ones transit/keys shows, and Vault's own
// transit/verify accepts what the plugin returns, for each hash and
// padding veild asks for.
func TestSignaturesAreVaults(t *testing.T) {
	srv, tokenFile := server(t)
	s := configured(t, map[string]any{"address": srv.Addr, "token_file": tokenFile})
	ctx := context.Background()
	msg := []byte("IKE_AUTH signed octets")
	d256, d384, d512 := sha256.Sum256(msg), sha512.Sum384(msg), sha512.Sum512(msg)
	digests := map[crypto.Hash][]byte{crypto.SHA256: d256[:], crypto.SHA384: d384[:], crypto.SHA512: d512[:]}
	names := map[crypto.Hash]string{crypto.SHA256: "sha2-256", crypto.SHA384: "sha2-384", crypto.SHA512: "sha2-512"}

	for name, typ := range keyTypes {
		ref := "vault:transit/" + name
		pub, err := s.Public(ctx, ref)
		if err != nil {
			t.Fatalf("Public(%s): %v", ref, err)
		}
		// The same key as Vault shows (version 1 of a new key).
		sec, err := srv.API.Logical().Read("transit/keys/" + name)
		if err != nil {
			t.Fatal(err)
		}
		want, err := parseTransitKey(sec.Data)
		if err != nil {
			t.Fatal(err)
		}
		if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(want.pub) {
			t.Errorf("%s: Public differs from transit/keys/%s", ref, name)
		}

		type variant struct {
			opts   keystore.SignOptions
			params map[string]any
		}
		var variants []variant
		switch typ {
		case "ed25519":
			variants = append(variants, variant{keystore.SignOptions{}, map[string]any{}})
		case "rsa-2048":
			for h := range digests {
				variants = append(variants,
					variant{keystore.SignOptions{Hash: h}, map[string]any{"signature_algorithm": "pkcs1v15"}},
					variant{keystore.SignOptions{Hash: h, PSS: true, SaltLength: rsa.PSSSaltLengthEqualsHash}, map[string]any{"signature_algorithm": "pss", "salt_length": "hash"}},
					variant{keystore.SignOptions{Hash: h, PSS: true, SaltLength: rsa.PSSSaltLengthAuto}, map[string]any{"signature_algorithm": "pss", "salt_length": "auto"}})
			}
		default:
			for h := range digests {
				variants = append(variants, variant{keystore.SignOptions{Hash: h}, map[string]any{"marshaling_algorithm": "asn1"}})
			}
		}
		for _, v := range variants {
			in := msg
			if v.opts.Hash != 0 {
				in = digests[v.opts.Hash]
				v.params["prehashed"] = true
				v.params["hash_algorithm"] = names[v.opts.Hash]
			}
			sig, err := s.Sign(ctx, ref, in, v.opts)
			if err != nil {
				t.Fatalf("Sign(%s, %+v): %v", ref, v.opts, err)
			}
			// Locally, with Go's crypto.
			ok := false
			switch k := pub.(type) {
			case *ecdsa.PublicKey:
				ok = ecdsa.VerifyASN1(k, in, sig)
			case ed25519.PublicKey:
				ok = ed25519.Verify(k, in, sig)
			case *rsa.PublicKey:
				if v.opts.PSS {
					ok = rsa.VerifyPSS(k, v.opts.Hash, in, sig, &rsa.PSSOptions{SaltLength: v.opts.SaltLength}) == nil
				} else {
					ok = rsa.VerifyPKCS1v15(k, v.opts.Hash, in, sig) == nil
				}
			}
			if !ok {
				t.Errorf("%s %+v: the signature does not verify with Go's crypto", ref, v.opts)
			}
			// And by Vault.
			v.params["input"] = base64.StdEncoding.EncodeToString(in)
			v.params["signature"] = "vault:v1:" + base64.StdEncoding.EncodeToString(sig)
			res := srv.Write(t, "transit/verify/"+name, v.params)
			if res.Data["valid"] != true {
				t.Errorf("%s %+v: transit/verify says %v", ref, v.opts, res.Data["valid"])
			}
		}
	}
}

// TestRotation: after the key is rotated in Vault, the plugin keeps
// signing with the version whose public key it gave out, until reload.
func TestRotation(t *testing.T) {
	srv, tokenFile := server(t)
	cfg := map[string]any{"address": srv.Addr, "token_file": tokenFile}
	s := configured(t, cfg)
	ctx := context.Background()
	pub1, err := s.Public(ctx, "vault:transit/ec")
	if err != nil {
		t.Fatal(err)
	}
	srv.Write(t, "transit/keys/ec/rotate", nil)
	d := sha256.Sum256([]byte("m"))
	sig, err := s.Sign(ctx, "vault:transit/ec", d[:], keystore.SignOptions{Hash: crypto.SHA256})
	if err != nil || !ecdsa.VerifyASN1(pub1.(*ecdsa.PublicKey), d[:], sig) {
		t.Fatalf("after rotation: signature does not verify with the first public key (%v)", err)
	}
	if err := s.Configure(ctx, configJSON(t, cfg)); err != nil {
		t.Fatal(err)
	}
	pub2, err := s.Public(ctx, "vault:transit/ec")
	if err != nil {
		t.Fatal(err)
	}
	if pub2.(*ecdsa.PublicKey).Equal(pub1) {
		t.Fatal("after reload: still the old version's public key")
	}
	sig, err = s.Sign(ctx, "vault:transit/ec", d[:], keystore.SignOptions{Hash: crypto.SHA256})
	if err != nil || !ecdsa.VerifyASN1(pub2.(*ecdsa.PublicKey), d[:], sig) {
		t.Fatalf("after reload: signature does not verify with the new public key (%v)", err)
	}
}

// TestAppRole logs in with AppRole under a policy that allows one key,
// and logs in again when Vault revokes the token.
func TestAppRole(t *testing.T) {
	srv, _ := server(t)
	if err := srv.API.Sys().EnableAuthWithOptions("approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	policy := `
path "transit/keys/ec" { capabilities = ["read"] }
path "transit/sign/ec" { capabilities = ["update"] }
path "secret/data/veil/ppk" { capabilities = ["read"] }
`
	if err := srv.API.Sys().PutPolicy("veil", policy); err != nil {
		t.Fatal(err)
	}
	srv.Write(t, "auth/approle/role/veil", map[string]any{"token_policies": "veil", "token_ttl": "1h"})
	roleID, err := srv.API.Logical().Read("auth/approle/role/veil/role-id")
	if err != nil {
		t.Fatal(err)
	}
	secretID := srv.Write(t, "auth/approle/role/veil/secret-id", nil).Data["secret_id"].(string)
	secretFile := writeFile(t, "secret-id", secretID)
	s := configured(t, map[string]any{
		"address": srv.Addr,
		"approle": map[string]any{"role_id": roleID.Data["role_id"], "secret_id_file": secretFile, "mount": nil},
	})
	ctx := context.Background()
	d := sha256.Sum256([]byte("m"))
	sign := func(ref string) error {
		_, err := s.Sign(ctx, ref, d[:], keystore.SignOptions{Hash: crypto.SHA256})
		return err
	}
	if err := sign("vault:transit/ec"); err != nil {
		t.Fatalf("Sign with the AppRole token: %v", err)
	}
	if got, err := s.Secret(ctx, "vault:secret/veil/ppk#value"); err != nil || string(got) != ppk {
		t.Fatalf("Secret with the AppRole token: %q, %v", got, err)
	}
	err = sign("vault:transit/rsa")
	if err == nil || !strings.Contains(err.Error(), "vault:transit/rsa") || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("Sign outside the policy: err = %v, want the reference and permission denied", err)
	}
	if s.conn.epoch != 1 {
		t.Errorf("a call outside the policy logged in again (%d logins): the token was still good", s.conn.epoch)
	}
	if err := s.Health(ctx); err != nil {
		t.Fatalf("Health: %v", err)
	}

	// Revoke the plugin's token: the next call logs in again.
	srv.Write(t, "auth/token/revoke", map[string]any{"token": s.conn.client.Token()})
	s.mu.Lock()
	s.keys = nil // so Sign reads the key again, first of all
	s.mu.Unlock()
	if err := sign("vault:transit/ec"); err != nil {
		t.Fatalf("Sign after the token was revoked: %v", err)
	}
	if s.conn.epoch != 2 {
		t.Errorf("%d logins after the token was revoked, want 2", s.conn.epoch)
	}

	// A wrong secret_id: Configure fails, naming AppRole, not the secret.
	bad := writeFile(t, "bad-secret-id", "00000000-0000-0000-0000-000000000000")
	err = New().Configure(ctx, configJSON(t, map[string]any{
		"address": srv.Addr,
		"approle": map[string]any{"role_id": roleID.Data["role_id"], "secret_id_file": bad},
	}))
	if err == nil || !strings.Contains(err.Error(), "AppRole login") || strings.Contains(err.Error(), "00000000-0000") {
		t.Fatalf("wrong secret_id: err = %v", err)
	}
}

// TestTokenRenewed: a renewable token with a short TTL is renewed, so the
// plugin keeps working past the first TTL (the file's token has no
// replacement, so logging in again would not help).
func TestTokenRenewed(t *testing.T) {
	t.Parallel()
	srv, _ := server(t)
	tok := srv.Write(t, "auth/token/create", map[string]any{"ttl": "3s", "explicit_max_ttl": "10m", "renewable": true})
	file := writeFile(t, "token", tok.Auth.ClientToken)
	s := configured(t, map[string]any{"address": srv.Addr, "token_file": file})
	time.Sleep(6 * time.Second)
	if err := s.Health(context.Background()); err != nil {
		t.Fatalf("Health after twice the token's TTL: %v", err)
	}
	if s.conn.epoch != 1 {
		t.Fatalf("logged in %d times; want the first token renewed", s.conn.epoch)
	}
}

func TestErrors(t *testing.T) {
	srv, tokenFile := server(t)
	srv.Write(t, "transit/keys/aes", map[string]any{"type": "aes256-gcm96"})
	srv.Write(t, "secret/data/big", map[string]any{"data": map[string]any{"v": strings.Repeat("x", keystore.MaxSecretLen+1), "n": 5}})
	s := configured(t, map[string]any{"address": srv.Addr, "token_file": tokenFile})
	ctx := context.Background()
	d := sha256.Sum256([]byte("m"))

	for ref, want := range map[string]string{
		"vault:transit/missing":   "key not found",
		"vault:nomount/ec":        "no secrets engine is mounted there",
		"vault:transit/aes":       "cannot sign",
		"vault:transit/ec#field":  "without '#'",
		"vault:transit":           "vault:MOUNT/KEY",
		"vault:/ec":               "vault:MOUNT/KEY",
		"vault:transit/../sys/ec": "invalid path segment",
		"file:/etc/x":             "not a vault: reference",
	} {
		_, err := s.Sign(ctx, ref, d[:], keystore.SignOptions{Hash: crypto.SHA256})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), ref) {
			t.Errorf("Sign(%s): err = %v, want %q and the reference", ref, err, want)
		}
	}
	_, err := s.Public(ctx, "vault:transit/missing")
	if !errors.Is(err, keystore.ErrNotFound) {
		t.Errorf("Public(missing): err = %v, want ErrNotFound", err)
	}
	for _, c := range []struct {
		opts  keystore.SignOptions
		ref   string
		input []byte
		want  string
	}{
		{keystore.SignOptions{Hash: crypto.SHA256}, "vault:transit/ed", []byte("m"), "hash must be 0"},
		{keystore.SignOptions{}, "vault:transit/ec", d[:], "is not one transit signs with"},
		{keystore.SignOptions{Hash: crypto.SHA384}, "vault:transit/ec", d[:], "does not match hash"},
		{keystore.SignOptions{Hash: crypto.SHA256, PSS: true, SaltLength: rsa.PSSSaltLengthEqualsHash}, "vault:transit/ec", d[:], "PSS asked of an ECDSA key"},
		{keystore.SignOptions{Hash: crypto.SHA256, PSS: true, SaltLength: -7}, "vault:transit/rsa", d[:], "salt length"},
	} {
		_, err := s.Sign(ctx, c.ref, c.input, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Sign(%s, %+v): err = %v, want %q", c.ref, c.opts, err, c.want)
		}
	}
	for ref, want := range map[string]string{
		"vault:secret/veil/ppk#nofield": "no field",
		"vault:secret/veil/none#value":  "key not found",
		"vault:secret/veil/ppk":         "names no field",
		"vault:secret/big#v":            "1-8192 allowed",
		"vault:secret/big#n":            "not a string",
		"vault:secret/veil/ppk#":        "nothing after '#'",
	} {
		_, err := s.Secret(ctx, ref)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), ref) {
			t.Errorf("Secret(%s): err = %v, want %q and the reference", ref, err, want)
		}
	}

	// Configuration errors; no token ever appears in them.
	wrong := writeFile(t, "wrong", "hvs.wrongtokenwrongtoken")
	loose := writeFile(t, "loose", srv.Token)
	os.Chmod(loose, 0o644)
	for _, c := range []struct {
		cfg  map[string]any
		want string
	}{
		{map[string]any{"address": srv.Addr, "token_file": wrong}, "permission denied"},
		{map[string]any{"address": srv.Addr, "token_file": loose}, "chmod 600"},
		{map[string]any{"address": srv.Addr, "token_file": "relative/token"}, "absolute"},
		{map[string]any{"address": srv.Addr}, "no login method"},
		{map[string]any{"token_file": tokenFile}, "address is required"},
		{map[string]any{"address": "::", "token_file": tokenFile}, "not a URL"},
		{map[string]any{"address": srv.Addr, "token_file": tokenFile, "approle": map[string]any{"role_id": "r", "secret_id_file": tokenFile}}, "not both"},
		{map[string]any{"address": "http://192.0.2.1:8200", "token_file": tokenFile}, "loopback"},
		{map[string]any{"address": "ftp://x", "token_file": tokenFile}, "scheme"},
		{map[string]any{"address": srv.Addr, "token_file": tokenFile, "ca_cert": tokenFile}, "no PEM certificate"},
		{map[string]any{"address": "http://127.0.0.1:1", "token_file": tokenFile}, "cannot reach vault"},
	} {
		err := New().Configure(ctx, configJSON(t, c.cfg))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Configure(%v): err = %v, want %q", c.cfg, err, c.want)
		}
		if err != nil && (strings.Contains(err.Error(), srv.Token) || strings.Contains(err.Error(), "wrongtoken")) {
			t.Errorf("Configure(%v): the error shows the token: %v", c.cfg, err)
		}
	}
	// VAULT_* variables in veild's environment do not count: only the
	// config block says how to log in.
	t.Setenv("VAULT_TOKEN", srv.Token)
	t.Setenv("VAULT_ADDR", srv.Addr)
	if err := New().Configure(ctx, configJSON(t, map[string]any{"address": srv.Addr, "token_file": wrong})); err == nil {
		t.Error("Configure with a wrong token file succeeded: VAULT_TOKEN from the environment was used")
	}
	if err := New().Health(ctx); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("Health before Configure: %v", err)
	}
}

// TestUnixSocket: a Vault (Agent) listening on a unix socket.
func TestUnixSocket(t *testing.T) {
	srv := vaulttest.StartOn(t, "unix:"+filepath.Join(t.TempDir(), "vault.sock"))
	srv.Mount(t, "transit", "transit", nil)
	srv.Write(t, "transit/keys/ed", map[string]any{"type": "ed25519"})
	s := configured(t, map[string]any{"address": srv.Addr, "token_file": writeFile(t, "token", srv.Token)})
	ctx := context.Background()
	pub, err := s.Public(ctx, "vault:transit/ed")
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.Sign(ctx, "vault:transit/ed", []byte("message"), keystore.SignOptions{})
	if err != nil || !ed25519.Verify(pub.(ed25519.PublicKey), []byte("message"), sig) {
		t.Fatalf("Sign over %s: %v", srv.Addr, err)
	}
}

// TestAppRoleTokenRenewed: the AppRole login's token (renewable, short TTL)
// is renewed rather than replaced by a new login.
func TestAppRoleTokenRenewed(t *testing.T) {
	t.Parallel()
	srv, _ := server(t)
	if err := srv.API.Sys().EnableAuthWithOptions("approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	srv.Write(t, "auth/approle/role/veil", map[string]any{"token_policies": "default", "token_ttl": "3s", "token_max_ttl": "10m"})
	roleID, err := srv.API.Logical().Read("auth/approle/role/veil/role-id")
	if err != nil {
		t.Fatal(err)
	}
	secretID := srv.Write(t, "auth/approle/role/veil/secret-id", nil).Data["secret_id"].(string)
	s := configured(t, map[string]any{
		"address": srv.Addr,
		"approle": map[string]any{"role_id": roleID.Data["role_id"], "secret_id_file": writeFile(t, "secret-id", secretID)},
	})
	token := s.conn.client.Token()
	time.Sleep(6 * time.Second)
	if err := s.Health(context.Background()); err != nil {
		t.Fatalf("Health after twice the token's TTL: %v", err)
	}
	if s.conn.epoch != 1 || s.conn.client.Token() != token {
		t.Fatalf("logged in %d times; want the first token renewed", s.conn.epoch)
	}
}
