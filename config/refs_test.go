package config

import "testing"

// A psk (pre-shared key or EAP password) may be in any configured keystore:
// veild resolves it for the auth plugin.
func TestPSKInKeystore(t *testing.T) {
	for _, ref := range []string{"vault:secret/ipsec#lab", "pkcs11:token=veil;object=labpsk", "onepassword:vault/item"} {
		src := `
plugin "keystore" "vault" {}
plugin "keystore" "pkcs11" {}
plugin "keystore" "onepassword" {}
connection "lab" {
  remote_addrs = ["192.0.2.2"]
  local {
    auth = "psk"
    psk  = "` + ref + `"
  }
  remote {
    auth = "eap-mschapv2"
  }
}
connection "client" {
  remote_addrs = ["192.0.2.3"]
  local {
    auth = "eap-mschapv2"
    psk  = "` + ref + `"
  }
  remote {
    auth = "psk"
    psk  = "` + ref + `"
  }
}`
		c, diags := Parse([]byte(src), "psk.hcl")
		if diags.HasErrors() {
			t.Errorf("psk = %q: %s", ref, diags.Error())
			continue
		}
		if got := c.Connections[1].Local.PSK; got != ref {
			t.Errorf("psk = %q read as %q", ref, got)
		}
	}
}
