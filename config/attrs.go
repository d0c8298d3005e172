package config

import (
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// attrs reads the attributes of one block into typed values. Each reader
// returns the zero value and records a diagnostic at the attribute when the
// value is wrong, so decoding goes on and every problem is reported.
type attrs struct {
	m     hcl.Attributes
	diags *hcl.Diagnostics
	bad   map[string]bool // attributes already reported as unreadable
}

func (a *attrs) errorf(rng hcl.Range, summary, format string, args ...any) {
	*a.diags = append(*a.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  rng.Ptr(),
	})
}

func (a *attrs) warnf(rng hcl.Range, summary, format string, args ...any) {
	*a.diags = append(*a.diags, &hcl.Diagnostic{
		Severity: hcl.DiagWarning,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  rng.Ptr(),
	})
}

// has reports whether the attribute is set.
func (a *attrs) has(name string) bool { return a.m[name] != nil }

// rng is the value range of an attribute (zero when absent).
func (a *attrs) rng(name string) hcl.Range {
	if at := a.m[name]; at != nil {
		return at.Expr.Range()
	}
	return hcl.Range{}
}

// value evaluates name and converts it to ty; ok is false when the
// attribute is absent, null or wrong (then a diagnostic was recorded).
func (a *attrs) value(name string, ty cty.Type) (cty.Value, bool) {
	at := a.m[name]
	if at == nil || a.bad[name] {
		return cty.NilVal, false
	}
	fail := func() (cty.Value, bool) {
		if a.bad == nil {
			a.bad = map[string]bool{}
		}
		a.bad[name] = true // report once, however often it is read
		return cty.NilVal, false
	}
	v, d := at.Expr.Value(nil)
	if d.HasErrors() {
		*a.diags = append(*a.diags, d...)
		return fail()
	}
	if v.IsNull() {
		return cty.NilVal, false
	}
	cv, err := convert.Convert(v, ty)
	if err != nil || !cv.IsWhollyKnown() {
		a.errorf(at.Expr.Range(), "Incorrect attribute value type",
			"Inappropriate value for attribute %q: %s required, got %s.", name, typeName(ty), typeName(v.Type()))
		return fail()
	}
	return cv, true
}

func typeName(t cty.Type) string {
	switch {
	case t == cty.String:
		return "a string"
	case t == cty.Bool:
		return "a bool (true or false)"
	case t == cty.Number:
		return "a number"
	case t.IsListType() && t.ElementType() == cty.String:
		return `a list of strings (["a", "b"])`
	case t.IsMapType():
		return `a map ({ key = "value" })`
	case t.IsTupleType() || t.IsListType():
		return "a list"
	case t.IsObjectType():
		return "an object"
	}
	return t.FriendlyName()
}

func (a *attrs) str(name, def string) string {
	v, ok := a.value(name, cty.String)
	if !ok {
		return def
	}
	return v.AsString()
}

func (a *attrs) boolean(name string, def bool) bool {
	v, ok := a.value(name, cty.Bool)
	if !ok {
		return def
	}
	return v.True()
}

// integer reads a whole number in [lo, hi].
func (a *attrs) integer(name string, def, lo, hi int64) int64 {
	v, ok := a.value(name, cty.Number)
	if !ok {
		return def
	}
	bf := v.AsBigFloat()
	n, acc := bf.Int64()
	if !bf.IsInt() || acc != 0 || n < lo || n > hi {
		a.errorf(a.rng(name), "Invalid value", "%s must be a whole number from %d to %d.", name, lo, hi)
		return def
	}
	return n
}

// listItem is one string of a list attribute with its own range, so a
// diagnostic can point at the bad element.
type listItem struct {
	s   string
	rng hcl.Range
}

func (a *attrs) list(name string) []listItem {
	v, ok := a.value(name, cty.List(cty.String))
	if !ok {
		return nil
	}
	at := a.m[name]
	exprs, d := hcl.ExprList(at.Expr)
	var items []listItem
	for i, e := range v.AsValueSlice() {
		rng := at.Expr.Range()
		if !d.HasErrors() && i < len(exprs) {
			rng = exprs[i].Range()
		}
		items = append(items, listItem{e.AsString(), rng})
	}
	return items
}

func (a *attrs) strings(name string) []string {
	var out []string
	for _, it := range a.list(name) {
		out = append(out, it.s)
	}
	return out
}

func (a *attrs) stringMap(name string) (map[string]string, bool) {
	v, ok := a.value(name, cty.Map(cty.String))
	if !ok {
		return nil, false
	}
	out := map[string]string{}
	for k, e := range v.AsValueMap() {
		out[k] = e.AsString()
	}
	return out, true
}

// oneOf reads a string that must be one of allowed.
func (a *attrs) oneOf(name, def string, allowed ...string) string {
	s := a.str(name, def)
	for _, x := range allowed {
		if s == x {
			return s
		}
	}
	a.errorf(a.rng(name), "Invalid value", "%s must be one of %s; got %q.", name, quoteList(allowed), s)
	return def
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	if len(q) <= 1 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

func (a *attrs) duration(name string, def time.Duration) time.Duration {
	v, ok := a.value(name, cty.String)
	if !ok {
		return def
	}
	d, err := ParseDuration(v.AsString())
	if err != nil {
		a.errorf(a.rng(name), "Invalid duration", "%s: %v. Write a number with a unit: \"30s\", \"15m\", \"4h\", \"1d\", \"1h30m\".", name, err)
		return def
	}
	return d
}

func (a *attrs) size(name string, def uint64) uint64 {
	if !a.has(name) {
		return def
	}
	// Accept a plain number as well as "1G".
	at := a.m[name]
	if v, d := at.Expr.Value(nil); !d.HasErrors() && v.Type() == cty.Number {
		bf := v.AsBigFloat()
		if n, acc := bf.Uint64(); bf.IsInt() && acc == 0 {
			return n
		}
	}
	s := a.str(name, "")
	n, err := ParseSize(s)
	if err != nil {
		a.errorf(a.rng(name), "Invalid size", "%s: %v. Write a number with an optional unit: \"1000000\", \"500M\", \"1G\" (K, M, G, T are powers of 1024).", name, err)
		return def
	}
	return n
}

// uint32Value reads a number, or a string in decimal or 0x hexadecimal
// (marks are usually written in hex).
func (a *attrs) uint32Value(name string) uint32 {
	if !a.has(name) {
		return 0
	}
	at := a.m[name]
	if v, d := at.Expr.Value(nil); !d.HasErrors() && v.Type() == cty.String {
		s := v.AsString()
		if n, err := strconv.ParseUint(s, 0, 32); err == nil {
			return uint32(n)
		}
		a.errorf(at.Expr.Range(), "Invalid value", "%s must be a number from 0 to 4294967295 (decimal or 0x hexadecimal); got %q.", name, s)
		return 0
	}
	return uint32(a.integer(name, 0, 0, math.MaxUint32))
}

// addrs reads a list of IP addresses; wildcardOK allows 0.0.0.0 and ::.
func (a *attrs) addrs(name string, wildcardOK bool) []netip.Addr {
	var out []netip.Addr
	for _, it := range a.list(name) {
		ip, err := netip.ParseAddr(it.s)
		if err != nil {
			hint := ""
			if _, perr := netip.ParsePrefix(it.s); perr == nil {
				hint = " A prefix is not an address: list single addresses."
			} else if strings.ContainsAny(it.s, "abcdefghijklmnopqrstuvwxyz") && !strings.Contains(it.s, ":") {
				hint = " Host names are not resolved: write the IP address."
			}
			a.errorf(it.rng, "Invalid IP address", "%q in %s is not an IP address.%s", it.s, name, hint)
			continue
		}
		if ip.Zone() != "" {
			a.errorf(it.rng, "Invalid IP address", "%q in %s has a zone; zones are not supported.", it.s, name)
			continue
		}
		ip = ip.Unmap()
		if !wildcardOK && (ip.IsUnspecified() || ip.IsMulticast()) {
			a.errorf(it.rng, "Invalid IP address", "%s in %s is not a host address; list the host's addresses, or leave %s out to mean any.", ip, name, name)
			continue
		}
		out = append(out, ip)
	}
	return out
}

// allowedNames lists the attributes and blocks of a schema for "did you
// mean" details.
func allowedNames(s *hcl.BodySchema) string {
	var names []string
	for _, at := range s.Attributes {
		names = append(names, at.Name)
	}
	for _, b := range s.Blocks {
		names = append(names, b.Type+" { }")
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// content is body.Content with clearer details for unknown names: it adds
// the list of what the block does accept.
func content(body hcl.Body, schema *hcl.BodySchema, block string) (*hcl.BodyContent, hcl.Diagnostics) {
	c, diags := body.Content(schema)
	for _, d := range diags {
		switch d.Summary {
		case "Unsupported argument", "Unsupported block type":
			d.Detail = strings.TrimSpace(d.Detail) + "\n\nAccepted in " + block + ": " + allowedNames(schema) + " (config/README.md describes each)."
		}
	}
	return c, diags
}
