package pkcs11

import (
	"testing"

	"github.com/veil-ipsec/veil/test/exampleconf"
)

// The shipped example's plugin block decodes with the plugin's own schema,
// as veild decodes it, into the config the plugin expects.
func TestExampleConfig(t *testing.T) {
	js := exampleconf.PluginJSON(t, "../../../examples/pkcs11.hcl", New().ConfigSchema())
	if want := `{"max_sessions":null,"module":"/usr/lib/softhsm/libsofthsm2.so","pin_file":"/etc/veil/token.pin","token":"veil"}`; string(js) != want {
		t.Errorf("example decodes to %s, want %s", js, want)
	}
}
