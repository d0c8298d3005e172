package main

import (
	"testing"

	"github.com/veil-ipsec/veil/sdk/auth"
)

// veild bundles the EAP plugin under the name the daemon starts
// ("auth/eap"), and it runs EAP conversations.
func TestBundledEAP(t *testing.T) {
	f, ok := builtinPlugins["auth/eap"]
	if !ok {
		t.Fatal("auth/eap is not bundled")
	}
	p, ok := f().(auth.EAPAuthenticator)
	if !ok {
		t.Fatalf("auth/eap is a %T, not an auth.EAPAuthenticator", f())
	}
	if info := p.Info(); info.Name != "eap" || info.Kind != "auth" {
		t.Errorf("Info = %+v", info)
	}
}
