package daemon

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/veil-ipsec/veil/config"
)

// The psk and eap auth plugins read file: references themselves. A secret
// in another keystore (vault:, pkcs11:, a third-party plugin) is fetched
// here, through the keystore plugin of its scheme, each time the auth
// plugin is configured (start, reload), and handed to the plugin in its
// config's "resolved" field: reference -> secret (base64). That field is
// not in the plugins' schemas, so only veild can fill it in; an operator
// cannot write a secret into the configuration that way.

// pskConfig is the psk plugin's configuration with the keystore secrets
// resolved. done zeroes the secrets this side holds; call it after
// Configure.
func pskConfig(ctx context.Context, cfg *config.Config, ks refKeyStore) (v cty.Value, done func(), err error) {
	v = pskValue(cfg)
	return withResolved(ctx, ks, v, stringElems(v.GetAttr("secrets")))
}

// eapConfig is the eap plugin's configuration with the keystore secrets of
// its passwords (users, radius_secret, the connections' client passwords)
// resolved. EAP-TLS keys stay file: only.
func eapConfig(ctx context.Context, cfg *config.Config, ks refKeyStore) (v cty.Value, done func(), err error) {
	v = eapValue(cfg)
	var refs []string
	attrs := v.AsValueMap()
	if u, ok := attrs["users"]; ok {
		refs = append(refs, stringElems(u)...)
	}
	if r, ok := attrs["radius_secret"]; ok && r.Type() == cty.String && r.IsKnown() && !r.IsNull() {
		refs = append(refs, r.AsString())
	}
	if cs, ok := attrs["connections"]; ok && cs.IsKnown() && !cs.IsNull() {
		for it := cs.ElementIterator(); it.Next(); {
			_, c := it.Element()
			if s := c.GetAttr("secret"); s.IsKnown() && !s.IsNull() && s.AsString() != "" {
				refs = append(refs, s.AsString())
			}
		}
	}
	return withResolved(ctx, ks, v, refs)
}

// stringElems are the known, non-empty strings of a map, list or tuple.
func stringElems(m cty.Value) []string {
	if !m.IsKnown() || m.IsNull() || !m.CanIterateElements() {
		return nil
	}
	var out []string
	for it := m.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.Type() == cty.String && e.IsKnown() && !e.IsNull() && e.AsString() != "" {
			out = append(out, e.AsString())
		}
	}
	return out
}

// withResolved fetches the secret of every reference in refs that a
// keystore plugin (not the plugin itself) must resolve and adds them to
// the object v as "resolved". An error names the reference, never a
// secret.
func withResolved(ctx context.Context, ks refKeyStore, v cty.Value, refs []string) (cty.Value, func(), error) {
	secrets := map[string][]byte{}
	done := func() {
		for _, b := range secrets {
			clear(b)
		}
	}
	enc := map[string]cty.Value{}
	for _, ref := range refs {
		scheme, _, ok := strings.Cut(ref, ":")
		if !ok || scheme == "file" || secrets[ref] != nil {
			// file: the plugin reads it. No scheme: maybe a literal
			// secret, which the plugin refuses without showing it.
			continue
		}
		if _, ok := ks[scheme]; !ok {
			// Not shown whole: without a keystore, "x:y" may be a secret.
			done()
			return cty.NilVal, nil, fmt.Errorf("a secret reference names the keystore %q, but no plugin \"keystore\" %q block configures it", scheme, scheme)
		}
		b, err := ks.Secret(ctx, ref)
		if err != nil {
			done()
			if !strings.Contains(err.Error(), ref) {
				err = fmt.Errorf("secret %s from the %s keystore: %w", ref, scheme, err)
			}
			return cty.NilVal, nil, err
		}
		if len(b) == 0 {
			done()
			return cty.NilVal, nil, fmt.Errorf("secret %s from the %s keystore is empty", ref, scheme)
		}
		secrets[ref] = b
		enc[ref] = cty.StringVal(base64.StdEncoding.EncodeToString(b))
	}
	if len(enc) == 0 {
		return v, done, nil
	}
	attrs := v.AsValueMap()
	attrs["resolved"] = cty.MapVal(enc)
	return cty.ObjectVal(attrs), done, nil
}
