package vault

import (
	"encoding/json"
	"testing"

	"github.com/veil-ipsec/veil/test/exampleconf"
)

// The shipped example's plugin block decodes with the plugin's own schema,
// as veild decodes it, into the Config the plugin reads.
func TestExampleConfig(t *testing.T) {
	js := exampleconf.PluginJSON(t, "../../../examples/vault-key-custody.hcl", New().ConfigSchema())
	var c Config
	if err := json.Unmarshal(js, &c); err != nil {
		t.Fatal(err)
	}
	if c.Address != "https://vault.example.com:8200" || c.CACert == nil || *c.CACert != "/etc/veil/vault-ca.pem" ||
		c.TokenFile != nil || c.Namespace != nil || c.AppRole == nil ||
		c.AppRole.RoleID == "" || c.AppRole.SecretIDFile != "/etc/veil/vault-secret-id" || c.AppRole.Mount != nil {
		t.Errorf("example decodes to %s", js)
	}
	c.CACert = nil // the file is not on this machine
	if _, err := newConn(c, nil); err != nil {
		t.Errorf("the example's config is refused: %v", err)
	}
}
