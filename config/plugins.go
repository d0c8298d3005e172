package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"
)

// DecodePluginConfigs is the second decoding stage: for each plugin block
// it asks schemas for the plugin's spec and decodes the config { ... } body
// with it into Plugin.Value. A nil spec means the plugin takes no
// configuration (any attribute in config is then reported). Diagnostics
// point into the plugin block like any other.
func (c *Config) DecodePluginConfigs(schemas func(kind, name string) (hcldec.Spec, error)) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for i := range c.Plugins {
		p := &c.Plugins[i]
		spec, err := schemas(p.Kind, p.Name)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Plugin unavailable",
				Detail:   fmt.Sprintf("plugin %q %q: %v", p.Kind, p.Name, err),
				Subject:  p.Range.Ptr(),
			})
			continue
		}
		if spec == nil {
			spec = &hcldec.ObjectSpec{}
		}
		v, d := hcldec.Decode(p.Body, spec, nil)
		for _, diag := range d {
			if diag.Summary == "Unsupported argument" || diag.Summary == "Unsupported block type" {
				diag.Detail += fmt.Sprintf(" (in the config of plugin %q %q; see that plugin's documentation.)", p.Kind, p.Name)
			}
		}
		for _, diag := range d {
			remap(diag.Subject, c.orig)
			remap(diag.Context, c.orig)
		}
		diags = append(diags, d...)
		if d.HasErrors() {
			p.Value = cty.NilVal
			continue
		}
		p.Value = v
	}
	return diags
}
