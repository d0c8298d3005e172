// Package exampleconf checks shipped example configurations against the
// plugins they configure: a plugin block is decoded with the plugin's own
// schema, as veild decodes it, into the JSON the plugin's Configure gets.
package exampleconf

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/hcl/v2/hcldec"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/veil-ipsec/veil/config"
	"github.com/veil-ipsec/veil/core/pluginhost"
	"github.com/veil-ipsec/veil/sdk/base"
)

// PluginJSON reads the configuration at path, which must hold exactly one
// plugin block, and returns that block decoded with schema, as JSON.
func PluginJSON(t testing.TB, path string, schema base.Schema) []byte {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, diags := config.Parse(src, filepath.Base(path))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	spec, err := pluginhost.SpecFromSchema(schema)
	if err != nil {
		t.Fatal(err)
	}
	if diags := cfg.DecodePluginConfigs(func(kind, name string) (hcldec.Spec, error) { return spec, nil }); diags.HasErrors() {
		t.Fatal(diags)
	}
	if len(cfg.Plugins) != 1 {
		t.Fatalf("%s: %d plugin blocks, want 1", path, len(cfg.Plugins))
	}
	v := cfg.Plugins[0].Value
	js, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		t.Fatal(err)
	}
	return js
}
