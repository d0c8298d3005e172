package daemon

import (
	"testing"

	"github.com/veil-ipsec/veil/config"
	"github.com/zclconf/go-cty/cty"
)

// The EAP plugin learns each connection's side of the conversation from the
// connections.
func TestEAPValueFromConnections(t *testing.T) {
	cfg, diags := config.Parse([]byte(`
connection "client" {
  remote_addrs = ["10.0.0.2"]
  local {
    auth   = "eap-mschapv2"
    id     = "alice@example.com"
    eap_id = "alice"
    psk    = "file:/etc/veil/alice.password"
  }
  remote {
    auth    = "pubkey"
    id      = "gw.example.com"
    cacerts = ["/etc/veil/ca.pem"]
  }
  child "c" {}
}
connection "gateway" {
  local {
    auth        = "pubkey"
    id          = "gw.example.com"
    certificate = "/etc/veil/gw.pem"
    key         = "file:/etc/veil/gw.key"
  }
  remote {
    auth = "eap-tls"
  }
  child "c" {}
}
connection "plain" {
  remote_addrs = ["10.0.0.3"]
  local {
    auth = "psk"
    psk  = "file:/etc/veil/p.psk"
  }
  remote {
    auth = "psk"
    psk  = "file:/etc/veil/p.psk"
  }
  child "c" {}
}
`), "t.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if !usesEAP(cfg) {
		t.Fatal("usesEAP = false")
	}
	v := eapValue(cfg)
	conns := v.GetAttr("connections")
	if conns.LengthInt() != 2 {
		t.Fatalf("connections %#v", conns)
	}
	c := conns.Index(cty.StringVal("client"))
	if c.GetAttr("method").AsString() != "eap-mschapv2" || c.GetAttr("eap_id").AsString() != "alice" ||
		c.GetAttr("secret").AsString() != "file:/etc/veil/alice.password" || c.GetAttr("cacerts").LengthInt() != 1 {
		t.Errorf("client %#v", c)
	}
	g := conns.Index(cty.StringVal("gateway"))
	if g.GetAttr("method").AsString() != "eap-tls" || g.GetAttr("certificate").AsString() != "/etc/veil/gw.pem" ||
		g.GetAttr("key").AsString() != "file:/etc/veil/gw.key" || g.GetAttr("secret").AsString() != "" {
		t.Errorf("gateway %#v", g)
	}
}
