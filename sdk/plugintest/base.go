package plugintest

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/veil-ipsec/veil/sdk/base"
)

type baseClient interface {
	Info(ctx context.Context) (base.Info, error)
	ConfigSchema(ctx context.Context) (base.Schema, error)
	Configure(ctx context.Context, configJSON []byte) error
	Health(ctx context.Context) error
}

// checkBase checks what every plugin must do: name itself with the right
// kind, supply a schema the host can use, accept its config, be healthy.
func checkBase(t *testing.T, c baseClient, kind string, config []byte) {
	t.Helper()
	ctx := context.Background()
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if info.Kind != kind || info.Name == "" || info.Version == "" {
		t.Fatalf("Info = %+v; want kind %q and a name and version", info, kind)
	}
	schema, err := c.ConfigSchema(ctx)
	if err != nil {
		t.Fatalf("ConfigSchema: %v", err)
	}
	checkSchema(t, "", schema)
	if config == nil {
		config = []byte("{}")
	}
	if err := c.Configure(ctx, config); err != nil {
		t.Fatalf("Configure(%s): %v", config, err)
	}
	if err := c.Health(ctx); err != nil {
		t.Fatalf("Health after Configure: %v", err)
	}
	if err := c.Configure(ctx, []byte("not json")); err == nil && len(schema.Attributes)+len(schema.Blocks) > 0 {
		t.Errorf("Configure accepted a config that is not JSON")
	}
	// A bad config must not leave the plugin unusable: configure again.
	if err := c.Configure(ctx, config); err != nil {
		t.Fatalf("Configure again: %v", err)
	}
}

func checkSchema(t *testing.T, where string, s base.Schema) {
	t.Helper()
	seen := map[string]bool{}
	for _, a := range s.Attributes {
		if !hclsyntax.ValidIdentifier(a.Name) || seen[a.Name] {
			t.Errorf("schema%s: attribute name %q is not a unique identifier", where, a.Name)
		}
		seen[a.Name] = true
		expr, diags := hclsyntax.ParseExpression([]byte(a.Type), "schema", hcl.InitialPos)
		if !diags.HasErrors() {
			_, diags = typeexpr.TypeConstraint(expr)
		}
		if diags.HasErrors() {
			t.Errorf("schema%s: attribute %q: type %q is not an HCL type: %s", where, a.Name, a.Type, diags.Error())
		}
		if strings.TrimSpace(a.Description) == "" {
			t.Errorf("schema%s: attribute %q has no description", where, a.Name)
		}
	}
	for _, b := range s.Blocks {
		if !hclsyntax.ValidIdentifier(b.Name) || seen[b.Name] {
			t.Errorf("schema%s: block name %q is not a unique identifier", where, b.Name)
		}
		seen[b.Name] = true
		checkSchema(t, where+"."+b.Name, b.Body)
	}
}

func noPanic(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), "plugin panicked") {
		t.Errorf("%s: %v", what, err)
	}
}
