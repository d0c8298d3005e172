package daemon

import (
	"github.com/veil-ipsec/veil/config"
	"github.com/veil-ipsec/veil/core/ikesa"
	"github.com/zclconf/go-cty/cty"
)

// eapMethods are the auth values the EAP plugin serves; the daemon registers
// the plugin under each so the engine finds it by the configured method.
var eapMethods = []string{"eap", "eap-mschapv2", "eap-tls", "eap-md5"}

func usesEAP(cfg *config.Config) bool {
	for _, c := range cfg.Connections {
		if ikesa.IsEAP(c.Local.Auth) || ikesa.IsEAP(c.Remote.Auth) {
			return true
		}
	}
	return false
}

// eapValue is the EAP plugin's configuration: the operator's plugin block
// (RADIUS server, local users, allow_md5) plus, per connection that uses EAP,
// what the plugin needs for its side of the conversation. As a client: our
// EAP identity and password reference, or the certificate and key for
// EAP-TLS, and the CAs that vouch for the server. As a server: our
// certificate and key (EAP-TLS) and the CAs that vouch for clients.
func eapValue(cfg *config.Config) cty.Value {
	attrs := map[string]cty.Value{}
	for _, p := range cfg.Plugins {
		if p.Kind == "auth" && p.Name == "eap" && p.Value != cty.NilVal && !p.Value.IsNull() && p.Value.Type().IsObjectType() {
			for k, v := range p.Value.AsValueMap() {
				attrs[k] = v
			}
		}
	}
	conns := map[string]cty.Value{}
	for _, c := range cfg.Connections {
		var method, eapID, secret string
		switch {
		case ikesa.IsEAP(c.Local.Auth): // we are the EAP client
			method, eapID, secret = c.Local.Auth, c.Local.EAPID, c.Local.PSK
		case ikesa.IsEAP(c.Remote.Auth): // we are the EAP server
			method, eapID = c.Remote.Auth, c.Remote.EAPID
		default:
			continue
		}
		cas := make([]cty.Value, 0, len(c.Remote.CACerts))
		for _, ca := range c.Remote.CACerts {
			cas = append(cas, cty.StringVal(ca))
		}
		caList := cty.ListValEmpty(cty.String)
		if len(cas) > 0 {
			caList = cty.ListVal(cas)
		}
		conns[c.Name] = cty.ObjectVal(map[string]cty.Value{
			"method":      cty.StringVal(method),
			"eap_id":      cty.StringVal(eapID),
			"secret":      cty.StringVal(secret),
			"certificate": cty.StringVal(c.Local.Certificate),
			"key":         cty.StringVal(c.Local.Key),
			"cacerts":     caList,
		})
	}
	if len(conns) > 0 {
		attrs["connections"] = cty.MapVal(conns)
	}
	return cty.ObjectVal(attrs)
}
