package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/hcl/v2/hcldec"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/veil-ipsec/veil/config"
	"github.com/veil-ipsec/veil/core/pluginhost"
	"github.com/veil-ipsec/veil/plugins/auth/eap"
	"github.com/veil-ipsec/veil/sdk/auth"
)

// What the daemon hands the EAP plugin (the operator's block decoded with
// the plugin's schema, plus the connections) configures it, and a client
// and a server configured that way complete an EAP-MSCHAPv2 login.
func TestEAPValueConfiguresThePlugin(t *testing.T) {
	dir := t.TempDir()
	secret := func(name, pw string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return "file:" + p
	}
	cfg, diags := config.Parse([]byte(fmt.Sprintf(`
plugin "auth" "eap" {
  config {
    users     = { alice = %q }
    allow_md5 = false
  }
}
connection "client" {
  remote_addrs = ["10.0.0.2"]
  local {
    auth   = "eap-mschapv2"
    id     = "alice@example.com"
    eap_id = "alice"
    psk    = %q
  }
  remote {
    auth = "psk"
    psk  = %q
  }
  child "c" {}
}
connection "gateway" {
  local {
    auth = "psk"
    psk  = %q
  }
  remote {
    auth   = "eap-mschapv2"
    eap_id = "%%any"
  }
  child "c" {}
}
`, secret("users-alice", "alice's password"), secret("alice", "alice's password"),
		secret("psk1", "0123456789abcdef0123456789abcdef"), secret("psk2", "0123456789abcdef0123456789abcdef"))), "t.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	schema := eap.New().ConfigSchema()
	if diags := cfg.DecodePluginConfigs(func(kind, name string) (hcldec.Spec, error) {
		return pluginhost.SpecFromSchema(schema)
	}); diags.HasErrors() {
		t.Fatal(diags)
	}
	v := eapValue(cfg)
	js, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		t.Fatal(err)
	}
	p := eap.New()
	if err := p.Configure(context.Background(), js); err != nil {
		t.Fatalf("Configure(%s): %v", js, err)
	}
	ctx := context.Background()
	srv, err := p.StartEAP(ctx, &auth.EAPRequest{Connection: "gateway", Method: "eap-mschapv2", Server: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli, err := p.StartEAP(ctx, &auth.EAPRequest{Connection: "client", Method: "eap-mschapv2"})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	st, err := srv.Step(ctx, nil)
	for i := 0; err == nil && !st.Done && i < 10; i++ {
		var c *auth.EAPStep
		if c, err = cli.Step(ctx, st.Message); err != nil {
			break
		}
		st, err = srv.Step(ctx, c.Message)
	}
	if err != nil || !st.Done || !st.Success || string(st.Identity) != "alice" || len(st.MSK) != 64 {
		t.Fatalf("login: %+v, %v", st, err)
	}
	end, err := cli.Step(ctx, st.Message)
	if err != nil || !end.Success || string(end.MSK) != string(st.MSK) {
		t.Fatalf("client's end: %+v, %v", end, err)
	}
}
