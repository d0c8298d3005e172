package freeradius_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/veil-ipsec/veil/plugins/auth/eap"
	"github.com/veil-ipsec/veil/sdk/auth"
	"github.com/veil-ipsec/veil/test/freeradius"
	"github.com/veil-ipsec/veil/test/netns"
)

func plugin(t *testing.T, cfg eap.Config) *eap.Plugin {
	t.Helper()
	js, _ := json.Marshal(cfg)
	p := eap.New()
	if err := p.Configure(context.Background(), js); err != nil {
		t.Fatal(err)
	}
	return p
}

func secretRef(t *testing.T, secret string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	return "file:" + p
}

// TestInNamespace starts FreeRADIUS inside a network namespace, as the
// end-to-end tests do with a gateway there, and logs in a user of
// Config.Users through the EAP plugin's RADIUS pass-through.
func TestInNamespace(t *testing.T) {
	netns.Require(t)
	freeradius.Require(t)
	ns := netns.New(t, "radius")
	var fr *freeradius.Server
	var srv auth.EAPSession
	if err := ns.Do(func() (err error) {
		fr = freeradius.Start(t, freeradius.Config{Users: map[string]string{"carol": "carol-pw"}})
		gw := plugin(t, eap.Config{RADIUSServer: fr.Addr, RADIUSSecret: secretRef(t, fr.Secret)})
		// The session's socket is made here, inside the namespace.
		srv, err = gw.StartEAP(context.Background(), &auth.EAPRequest{Connection: "gw", Method: "eap-mschapv2", Server: true})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli := plugin(t, eap.Config{Connections: map[string]eap.ConnConfig{"c": {Method: "eap-mschapv2", EAPID: "carol", Secret: secretRef(t, "carol-pw")}}})
	cs, err := cli.StartEAP(context.Background(), &auth.EAPRequest{Connection: "c", Method: "eap-mschapv2"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	ctx := context.Background()
	st, err := srv.Step(ctx, nil)
	for i := 0; err == nil && !st.Done && i < 50; i++ {
		var c *auth.EAPStep
		if c, err = cs.Step(ctx, st.Message); err == nil {
			st, err = srv.Step(ctx, c.Message)
		}
	}
	if err != nil || !st.Done || !st.Success || string(st.Identity) != "carol" || len(st.MSK) != 64 {
		t.Fatalf("login of carol through FreeRADIUS in %s: error %v step %+v", ns.Name, err, st)
	}
}
