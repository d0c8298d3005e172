package vault

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/hashicorp/hcl/v2/hcldec"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	veilconfig "github.com/veil-ipsec/veil/config"
	"github.com/veil-ipsec/veil/core/pluginhost"
)

// The shipped example's plugin block decodes with the plugin's own schema,
// as veild decodes it, into the Config the plugin reads.
func TestExampleConfig(t *testing.T) {
	src, err := os.ReadFile("../../../examples/vault-key-custody.hcl")
	if err != nil {
		t.Fatal(err)
	}
	cfg, diags := veilconfig.Parse(src, "vault-key-custody.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	spec, err := pluginhost.SpecFromSchema(New().ConfigSchema())
	if err != nil {
		t.Fatal(err)
	}
	diags = cfg.DecodePluginConfigs(func(kind, name string) (hcldec.Spec, error) { return spec, nil })
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if len(cfg.Plugins) != 1 {
		t.Fatalf("%d plugin blocks", len(cfg.Plugins))
	}
	v := cfg.Plugins[0].Value
	js, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		t.Fatal(err)
	}
	var c Config
	if err := json.Unmarshal(js, &c); err != nil {
		t.Fatal(err)
	}
	if c.Address != "https://vault.example.com:8200" || c.CACert == nil || *c.CACert != "/etc/veil/vault-ca.pem" ||
		c.TokenFile != nil || c.Namespace != nil || c.AppRole == nil ||
		c.AppRole.RoleID == "" || c.AppRole.SecretIDFile != "/etc/veil/vault-secret-id" || c.AppRole.Mount != nil {
		t.Errorf("example decodes to %s", js)
	}
	c.CACert = nil // the file is not on this machine
	if _, err := newConn(c, nil); err != nil {
		t.Errorf("the example's config is refused: %v", err)
	}
}
