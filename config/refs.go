package config

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Key references name where a secret or private key lives; the secret
// itself is never in the configuration. The scheme is the keystore:
// "file" is built in, any other scheme is the name of a keystore plugin
// ("vault", "pkcs11", or a third-party one) that a plugin "keystore" block
// configures.
const builtinKeystore = "file"

// sensitive marks a diagnostic whose source line may hold a secret:
// WriteDiagnostics shows its location but not the line.
type sensitive struct{}

// checkRef validates a key reference. what is "key", "psk" or "ppk";
// keystores are the configured keystore plugin names. A psk may be in any
// configured keystore: veild resolves it for the auth plugin.
func checkRef(a *attrs, what string, it listItem, keystores map[string]bool) {
	if what == "psk" || what == "ppk" {
		// Whatever is wrong with it, the value may be the secret itself.
		n := len(*a.diags)
		defer func() {
			for _, d := range (*a.diags)[n:] {
				d.Extra = sensitive{}
			}
		}()
	}
	scheme, rest, ok := strings.Cut(it.s, ":")
	if !ok || !isScheme(scheme) {
		switch {
		case what == "psk" || what == "ppk" || strings.Contains(it.s, "PRIVATE KEY"):
			*a.diags = append(*a.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Literal secret in the configuration",
				Detail: fmt.Sprintf("%s must be a reference to where the secret is kept, not the secret itself. "+
					"Put it in a file readable only by root (chmod 600) and write %s = \"file:/etc/veil/%s.%s\", "+
					"or use vault:... or pkcs11:... ; then change the secret, since it has been in this file.",
					what, what, "NAME", what),
				Subject: it.rng.Ptr(),
				Extra:   sensitive{},
			})
		case filepath.IsAbs(it.s):
			a.errorf(it.rng, "Missing reference scheme", "%s must be a key reference; for a key in a file write \"file:%s\".", what, it.s)
		default:
			a.errorf(it.rng, "Invalid key reference", "%s must be a key reference: file:/path, vault:<mount>/<key>, pkcs11:<RFC 7512 URI>, or <keystore plugin>:...", what)
		}
		return
	}
	switch scheme {
	case builtinKeystore:
		if !filepath.IsAbs(rest) {
			a.errorf(it.rng, "Invalid key reference", "file: references need an absolute path, like \"file:/%s\".", strings.TrimLeft(rest, "./"))
		}
		return
	case "pkcs11":
		if err := checkPKCS11(rest); err != nil {
			a.errorf(it.rng, "Invalid PKCS#11 URI", "%s: %v (RFC 7512: pkcs11:token=NAME;object=LABEL;type=private).", what, err)
			return
		}
	default:
		if rest == "" {
			a.errorf(it.rng, "Invalid key reference", "%s: nothing after %q.", what, scheme+":")
			return
		}
	}
	if !keystores[scheme] {
		a.errorf(it.rng, "Unknown keystore", "%s refers to the %q keystore, but no plugin \"keystore\" %q block configures it. "+
			"Add one, or use a file: reference.", what, scheme, scheme)
	}
}

func isScheme(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z') {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// checkPKCS11 checks the path part of an RFC 7512 URI: attr=value pairs
// separated by ';', optionally followed by a query.
func checkPKCS11(rest string) error {
	path, _, _ := strings.Cut(rest, "?")
	if path == "" {
		return fmt.Errorf("no attributes")
	}
	known := map[string]bool{"token": true, "manufacturer": true, "serial": true, "model": true,
		"library-manufacturer": true, "library-description": true, "library-version": true,
		"object": true, "type": true, "id": true, "slot-description": true, "slot-manufacturer": true, "slot-id": true}
	for _, kv := range strings.Split(path, ";") {
		k, _, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("%q is not attribute=value", kv)
		}
		if !known[k] && !strings.HasPrefix(k, "x-") {
			return fmt.Errorf("unknown attribute %q", k)
		}
	}
	return nil
}
