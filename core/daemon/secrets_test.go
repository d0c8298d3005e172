package daemon

import (
	"context"
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/veil-ipsec/veil/config"
	"github.com/veil-ipsec/veil/core/pluginhost"
	"github.com/veil-ipsec/veil/plugins/auth/eap"
	"github.com/veil-ipsec/veil/plugins/auth/psk"
	"github.com/veil-ipsec/veil/sdk/auth"
)

// kvStore is a keystore holding secrets by reference; it remembers the
// slices it handed out so the test can see they were zeroed.
type kvStore struct {
	secrets map[string]string
	given   [][]byte
}

func (s *kvStore) Secret(_ context.Context, ref string) ([]byte, error) {
	v, ok := s.secrets[ref]
	if !ok {
		return nil, errors.New("not found")
	}
	b := []byte(v)
	s.given = append(s.given, b)
	return b, nil
}

func (s *kvStore) Signer(context.Context, string) (crypto.Signer, error) {
	return nil, errors.New("no keys")
}

func parse(t *testing.T, src string) *config.Config {
	t.Helper()
	cfg, diags := config.Parse([]byte(src), "test.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return cfg
}

const vaultPSKConfig = `
plugin "keystore" "vault" {}
connection "lab" {
  remote_addrs = ["192.0.2.2"]
  local {
    auth = "psk"
    id   = "a.test"
    psk  = "vault:secret/ipsec#lab"
  }
  remote {
    auth = "psk"
    id   = "b.test"
    psk  = "vault:secret/ipsec#lab"
  }
  child "c" {}
}
connection "other" {
  remote_addrs = ["192.0.2.3"]
  local {
    auth = "psk"
    psk  = "file:/etc/veil/other.psk"
  }
  remote {
    auth = "psk"
    id   = "c.test"
    psk  = "file:/etc/veil/other.psk"
  }
  child "c" {}
}
`

// The psk plugin gets a keystore secret as bytes in "resolved" and makes
// the same AUTH as with that secret in a file; file: references are left
// to the plugin; the daemon's copy is zeroed by done.
func TestPSKConfigResolvesKeystoreSecrets(t *testing.T) {
	const secret = "a pre-shared key from Vault, 32+ bytes"
	vault := &kvStore{secrets: map[string]string{"vault:secret/ipsec#lab": secret}}
	v, done, err := pskConfig(context.Background(), parse(t, vaultPSKConfig), refKeyStore{"vault": vault})
	if err != nil {
		t.Fatal(err)
	}
	res := v.GetAttr("resolved").AsValueMap()
	if len(res) != 1 || res["vault:secret/ipsec#lab"] == cty.NilVal {
		t.Fatalf("resolved = %#v, want only the vault reference", res)
	}
	if len(vault.given) != 1 {
		t.Errorf("the keystore was asked %d times for one reference", len(vault.given))
	}
	js, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		t.Fatal(err)
	}
	// The real plugin reads file: references itself: give it the file.
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "other.psk")
	os.WriteFile(keyFile, []byte(strings.Repeat("o", 32)), 0o600)
	js = []byte(strings.ReplaceAll(string(js), "/etc/veil/other.psk", keyFile))
	p := psk.New()
	if err := p.Configure(context.Background(), js); err != nil {
		t.Fatal(err)
	}
	done()
	for _, b := range vault.given {
		if strings.Trim(string(b), "\x00") != "" {
			t.Error("done did not zero the secret the keystore gave")
		}
	}

	fileRef := filepath.Join(dir, "lab.psk")
	os.WriteFile(fileRef, []byte(secret), 0o600)
	want := psk.New()
	if err := want.Configure(context.Background(), []byte(`{"secrets":{"b.test":"file:`+fileRef+`"}}`)); err != nil {
		t.Fatal(err)
	}
	req := &auth.Request{RemoteID: auth.Identity{Type: 2, Data: []byte("b.test")}, PRF: 5, SignedOctets: []byte("octets")}
	got, err1 := p.Make(context.Background(), req)
	exp, err2 := want.Make(context.Background(), req)
	if err1 != nil || err2 != nil || string(got.Data) != string(exp.Data) {
		t.Errorf("AUTH with the Vault secret differs from AUTH with the same secret in a file (%v, %v)", err1, err2)
	}
}

// A keystore that cannot give the secret fails the configuration with an
// error naming the reference; no secret appears in any error.
func TestPSKConfigKeystoreErrors(t *testing.T) {
	cfg := parse(t, vaultPSKConfig)
	_, _, err := pskConfig(context.Background(), cfg, refKeyStore{"vault": &kvStore{}})
	if err == nil || !strings.Contains(err.Error(), "vault:secret/ipsec#lab") || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing secret: err = %v, want the reference and the keystore's reason", err)
	}
	_, _, err = pskConfig(context.Background(), cfg, refKeyStore{"vault": &kvStore{secrets: map[string]string{"vault:secret/ipsec#lab": ""}}})
	if err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty secret: err = %v", err)
	}

	// A hand-written plugin block is not checked like connections: a
	// value with an unknown scheme may be a secret and is not shown, one
	// without a scheme is left to the plugin, which refuses it unshown.
	cfg = parse(t, `
plugin "auth" "psk" {
  config {
    secrets = { "b.test" = "hunter2:hunter2hunter2hunter2" }
  }
}`)
	cfg.Plugins[0].Value = cty.ObjectVal(map[string]cty.Value{"secrets": cty.MapVal(map[string]cty.Value{
		"b.test": cty.StringVal("hunter2:hunter2hunter2hunter2"), "c.test": cty.StringVal("hunter3hunter3hunter3hunter3")})})
	_, _, err = pskConfig(context.Background(), cfg, refKeyStore{})
	if err == nil || strings.Contains(err.Error(), "hunter2hunter2") || !strings.Contains(err.Error(), `"hunter2"`) {
		t.Errorf("unknown keystore: err = %v, want the scheme named and the rest not shown", err)
	}
}

// The eap plugin's passwords (users, RADIUS secret, client passwords) come
// from keystores the same way; an MSCHAPv2 login works with them.
func TestEAPConfigResolvesKeystoreSecrets(t *testing.T) {
	cfg := parse(t, `
plugin "keystore" "vault" {}
connection "client" {
  remote_addrs = ["10.0.0.2"]
  local {
    auth   = "eap-mschapv2"
    eap_id = "alice"
    psk    = "vault:secret/eap#alice"
  }
  remote {
    auth = "psk"
    psk  = "vault:secret/ipsec#lab"
  }
  child "c" {}
}`)
	cfg.Plugins = append(cfg.Plugins, config.Plugin{Kind: "auth", Name: "eap", Value: cty.ObjectVal(map[string]cty.Value{
		"users": cty.MapVal(map[string]cty.Value{"bob": cty.StringVal("vault:secret/eap#bob")})})})
	vault := &kvStore{secrets: map[string]string{"vault:secret/eap#alice": "alice's password", "vault:secret/eap#bob": "bob's password"}}
	v, done, err := eapConfig(context.Background(), cfg, refKeyStore{"vault": vault})
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	if n := len(v.GetAttr("resolved").AsValueMap()); n != 2 {
		t.Errorf("%d secrets resolved, want alice's and bob's", n)
	}
	js, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		t.Fatal(err)
	}
	if err := eap.New().Configure(context.Background(), js); err != nil {
		t.Fatalf("the eap plugin refused the config: %v", err)
	}
	if _, _, err := eapConfig(context.Background(), cfg, refKeyStore{"vault": &kvStore{}}); err == nil || !strings.Contains(err.Error(), "vault:secret/eap#") {
		t.Errorf("missing password: err = %v", err)
	}
}

// "resolved" is not in the auth plugins' schemas: an operator cannot put a
// secret into the configuration through it.
func TestResolvedNotInSchema(t *testing.T) {
	for name, schema := range map[string]func() (hcldec.Spec, error){
		"psk": func() (hcldec.Spec, error) { return pluginhost.SpecFromSchema(psk.New().ConfigSchema()) },
		"eap": func() (hcldec.Spec, error) { return pluginhost.SpecFromSchema(eap.New().ConfigSchema()) },
	} {
		cfg := parse(t, `
plugin "auth" "`+name+`" {
  config {
    resolved = { "vault:secret/x#y" = "c2VjcmV0IHNlY3JldCBzZWNyZXQgc2VjcmV0" }
  }
}`)
		diags := cfg.DecodePluginConfigs(func(string, string) (hcldec.Spec, error) { return schema() })
		refused := false
		for _, d := range diags {
			refused = refused || strings.Contains(d.Summary+d.Detail, `"resolved"`)
		}
		if !refused {
			t.Errorf("%s plugin block with resolved: %v", name, diags)
		}
	}
}
