package daemon

import (
	"context"
	"crypto"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/veil-ipsec/veil/config"
	"github.com/veil-ipsec/veil/core/pluginhost"
	"github.com/veil-ipsec/veil/core/provider"
)

// pluginSet is what the engine gets from the plugins the configuration
// names, plus the bundled ones every daemon runs (the file keystore and the
// PSK authenticator).
type pluginSet struct {
	dataplane *pluginhost.Dataplane
	keystore  refKeyStore
	auth      map[string]provider.Authenticator
	pubkey    *pubkeyAuth // nil unless a connection uses certificates
}

// always are the bundled plugins started even without a plugin block.
var always = []config.Plugin{{Kind: "keystore", Name: "file"}, {Kind: "auth", Name: "psk"}}

// startPlugins launches every plugin, decodes each plugin's config with the
// schema it supplies (errors name file:line:col) and configures it.
func startPlugins(ctx context.Context, host *pluginhost.Host, cfg *config.Config) (*pluginSet, hcl.Diagnostics, error) {
	ps := &pluginSet{auth: map[string]provider.Authenticator{}}
	want := append([]config.Plugin(nil), cfg.Plugins...)
	if !hasKind(want, "dataplane") {
		want = append(want, config.Plugin{Kind: "dataplane", Name: cfg.Dataplane()})
	}
	needed := always
	if usesPubkey(cfg) {
		needed = append(needed[:len(needed):len(needed)], config.Plugin{Kind: "auth", Name: "x509"})
	}
	if usesEAP(cfg) {
		needed = append(needed[:len(needed):len(needed)], config.Plugin{Kind: "auth", Name: "eap"})
	}
	for _, p := range needed {
		if !hasPlugin(want, p.Kind, p.Name) {
			want = append(want, p)
		}
	}
	// Keystores first: the auth plugins' secrets may come from them.
	sort.SliceStable(want, func(i, j int) bool { return want[i].Kind == "keystore" && want[j].Kind != "keystore" })
	for _, p := range want {
		if err := host.Start(ctx, p.Kind, p.Name, p.Path); err != nil {
			return nil, nil, fmt.Errorf("plugin %s %q: %w", p.Kind, p.Name, err)
		}
	}
	if diags := cfg.DecodePluginConfigs(host.Schema); diags.HasErrors() {
		return nil, diags, fmt.Errorf("plugin configuration has errors")
	}
	values := map[string]config.Plugin{}
	for _, p := range cfg.Plugins {
		values[p.Kind+"/"+p.Name] = p
	}
	ks := refKeyStore{}
	for _, p := range want {
		v := values[p.Kind+"/"+p.Name].Value
		done := func() {}
		var err error
		switch {
		case p.Kind == "auth" && p.Name == "psk":
			v, done, err = pskConfig(ctx, cfg, ks)
		case p.Kind == "auth" && p.Name == "x509":
			v = x509Value(cfg)
		case p.Kind == "auth" && p.Name == "eap":
			v, done, err = eapConfig(ctx, cfg, ks)
		case p.Kind == "dataplane" && p.Name == "userspace":
			v = userspaceValue(cfg, v)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("configuring plugin %s %q: %w", p.Kind, p.Name, err)
		}
		err = host.Configure(ctx, p.Kind, p.Name, v)
		done()
		if err != nil {
			return nil, nil, fmt.Errorf("configuring plugin %s %q: %w", p.Kind, p.Name, err)
		}
		switch p.Kind {
		case "dataplane":
			dp, err := host.Dataplane(p.Name)
			if err != nil {
				return nil, nil, err
			}
			ps.dataplane = dp
		case "keystore":
			k, err := host.KeyStore(p.Name)
			if err != nil {
				return nil, nil, err
			}
			ks[p.Name] = k
		case "auth":
			a, err := host.Authenticator(p.Name)
			if err != nil {
				return nil, nil, err
			}
			ps.auth[p.Name] = a
		}
	}
	ps.keystore = ks
	if v, ok := ps.auth["eap"]; ok {
		for _, m := range eapMethods {
			ps.auth[m] = v
		}
	}
	if v, ok := ps.auth["x509"]; ok {
		ps.pubkey = &pubkeyAuth{keys: ks, verify: v}
		if err := ps.pubkey.setConnections(cfg); err != nil {
			return nil, nil, err
		}
		ps.auth["pubkey"] = ps.pubkey
	}
	return ps, nil, nil
}

func hasKind(ps []config.Plugin, kind string) bool {
	for _, p := range ps {
		if p.Kind == kind {
			return true
		}
	}
	return false
}

func hasPlugin(ps []config.Plugin, kind, name string) bool {
	for _, p := range ps {
		if p.Kind == kind && p.Name == name {
			return true
		}
	}
	return false
}

// refKeyStore sends a reference to the keystore plugin its scheme names:
// "file:/etc/veil/x" to "file", "vault:transit/x" to "vault".
type refKeyStore map[string]provider.KeyStore

func (r refKeyStore) route(ref string) (provider.KeyStore, error) {
	scheme, _, ok := strings.Cut(ref, ":")
	if !ok {
		return nil, fmt.Errorf("key reference %q has no scheme (file:, vault:, pkcs11:)", ref)
	}
	ks, ok := r[scheme]
	if !ok {
		return nil, fmt.Errorf("key reference %q: no keystore plugin %q is configured", ref, scheme)
	}
	return ks, nil
}

func (r refKeyStore) Secret(ctx context.Context, ref string) ([]byte, error) {
	ks, err := r.route(ref)
	if err != nil {
		return nil, err
	}
	return ks.Secret(ctx, ref)
}

func (r refKeyStore) Signer(ctx context.Context, ref string) (crypto.Signer, error) {
	ks, err := r.route(ref)
	if err != nil {
		return nil, err
	}
	return ks.Signer(ctx, ref)
}

// pskValue is the PSK plugin's configuration: the secrets that connections
// name, plus those of a plugin "auth" "psk" block (which win).
func pskValue(cfg *config.Config) cty.Value {
	secrets := map[string]cty.Value{}
	for id, ref := range pskSecrets(cfg) {
		secrets[id] = cty.StringVal(ref)
	}
	for _, p := range cfg.Plugins {
		if p.Kind == "auth" && p.Name == "psk" && p.Value.Type().IsObjectType() && p.Value.Type().HasAttribute("secrets") {
			if m := p.Value.GetAttr("secrets"); !m.IsNull() && m.CanIterateElements() {
				for it := m.ElementIterator(); it.Next(); {
					k, v := it.Element()
					secrets[k.AsString()] = v
				}
			}
		}
	}
	if len(secrets) == 0 {
		return cty.ObjectVal(map[string]cty.Value{"secrets": cty.MapValEmpty(cty.String)})
	}
	return cty.ObjectVal(map[string]cty.Value{"secrets": cty.MapVal(secrets)})
}
