package pkcs11

import (
	"os"
	"testing"

	"github.com/hashicorp/hcl/v2/hcldec"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	veilconfig "github.com/veil-ipsec/veil/config"
	"github.com/veil-ipsec/veil/core/pluginhost"
)

// The shipped example's plugin block decodes with the plugin's own schema,
// as veild decodes it, into the config the plugin expects.
func TestExampleConfig(t *testing.T) {
	src, err := os.ReadFile("../../../examples/pkcs11.hcl")
	if err != nil {
		t.Fatal(err)
	}
	cfg, diags := veilconfig.Parse(src, "pkcs11.hcl")
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
	if want := `{"max_sessions":null,"module":"/usr/lib/softhsm/libsofthsm2.so","pin_file":"/etc/veil/token.pin","token":"veil"}`; string(js) != want {
		t.Errorf("example decodes to %s, want %s", js, want)
	}
}
