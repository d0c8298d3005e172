package pluginhost

import (
	"errors"
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veil-ipsec/veil/sdk/base"
)

// SpecFromSchema turns a plugin's schema into an hcldec spec: an object
// whose attributes and blocks are the schema's. Types are parsed as HCL type
// expressions ("string", "list(string)", ...).
func SpecFromSchema(s base.Schema) (hcldec.Spec, error) {
	spec := hcldec.ObjectSpec{}
	for _, a := range s.Attributes {
		if !hclsyntax.ValidIdentifier(a.Name) {
			return nil, fmt.Errorf("attribute name %q is not an identifier", a.Name)
		}
		if _, dup := spec[a.Name]; dup {
			return nil, fmt.Errorf("attribute %q twice", a.Name)
		}
		expr, diags := hclsyntax.ParseExpression([]byte(a.Type), "schema", hcl.InitialPos)
		if diags.HasErrors() {
			return nil, fmt.Errorf("attribute %q: type %q: %s", a.Name, a.Type, diags.Error())
		}
		ty, diags := typeexpr.TypeConstraint(expr)
		if diags.HasErrors() {
			return nil, fmt.Errorf("attribute %q: type %q: %s", a.Name, a.Type, diags.Error())
		}
		spec[a.Name] = &hcldec.AttrSpec{Name: a.Name, Type: ty, Required: a.Required}
	}
	for _, b := range s.Blocks {
		if !hclsyntax.ValidIdentifier(b.Name) {
			return nil, fmt.Errorf("block name %q is not an identifier", b.Name)
		}
		if _, dup := spec[b.Name]; dup {
			return nil, fmt.Errorf("block %q clashes with another name", b.Name)
		}
		nested, err := SpecFromSchema(b.Body)
		if err != nil {
			return nil, fmt.Errorf("block %q: %w", b.Name, err)
		}
		if b.Multiple {
			spec[b.Name] = &hcldec.BlockListSpec{TypeName: b.Name, Nested: nested}
		} else {
			spec[b.Name] = &hcldec.BlockSpec{TypeName: b.Name, Nested: nested}
		}
	}
	return spec, nil
}

// plainError strips gRPC's "rpc error: code = Unknown desc =" from a
// plugin's own error text.
func plainError(err error) error {
	if err == nil {
		return nil
	}
	var ue *UnavailableError
	if errors.As(err, &ue) {
		return err
	}
	if s, ok := status.FromError(err); ok && s.Code() == codes.Unknown {
		return errors.New(s.Message())
	}
	return err
}
