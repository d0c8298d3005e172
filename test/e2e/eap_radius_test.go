package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/test/freeradius"
	"github.com/veil-ipsec/veil/test/netns"
)

// radiusGateway is a remote-access pair whose gateway (b) relays EAP to a
// real FreeRADIUS running in its namespace; the client (a) logs in as
// alice with method: eap-mschapv2 with the given password, or eap-tls with
// a client certificate from FreeRADIUS's test CA.
func radiusGateway(t *testing.T, method, password string) (*pair, *freeradius.Server) {
	t.Helper()
	freeradius.Require(t)
	p := newDirectPair(t)
	var fr *freeradius.Server
	if err := p.b.Do(func() error {
		fr = freeradius.Start(t, freeradius.Config{})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	secret := filepath.Join(dir, "radius.secret")
	if err := os.WriteFile(secret, []byte(fr.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := eapSetup{method: method, clientSecret: password, serverPlugin: fmt.Sprintf(`radius_server  = %q
    radius_secret  = "file:%s"
    radius_timeout = "2s"`, fr.Addr, secret)}
	if method == "eap-tls" {
		// The client trusts the gateway's CA for IKE and FreeRADIUS's
		// for the EAP-TLS server certificate.
		s.clientCert, s.clientKey, s.clientCA = fr.ClientCert, fr.ClientKey, fr.CA
	}
	client, gateway := eapConfigs(t, p, s)
	p.db = startDaemonConfig(t, p.b, p.cb.Socket, gateway)
	p.da = startDaemonConfig(t, p.a, p.ca.Socket, client)
	return p, fr
}

// EAP-MSCHAPv2 from a veil client through a veil gateway to FreeRADIUS
// (RFC 3579 pass-through): the MSK from FreeRADIUS's MS-MPPE keys must
// equal the client's for the IKE AUTH payloads to verify, so an
// established SA carrying traffic proves the whole chain; EAP-TLS too,
// FreeRADIUS checking the client's certificate. A wrong
// password is refused by FreeRADIUS and the gateway says so.
func TestEAPRADIUS(t *testing.T) {
	alice := freeradius.DefaultUsers["alice"]
	t.Run("mschapv2", func(t *testing.T) {
		p, fr := radiusGateway(t, "eap-mschapv2", alice)
		p.da.waitEstablished()
		p.db.waitEstablished()
		ping(t, p.a, p.bAddr)
		if !strings.Contains(fr.Log(), "Sent Access-Accept") {
			t.Error("FreeRADIUS did not accept alice")
		}
	})
	t.Run("tls", func(t *testing.T) {
		p, fr := radiusGateway(t, "eap-tls", "")
		p.da.waitEstablished()
		p.db.waitEstablished()
		ping(t, p.a, p.bAddr)
		if !strings.Contains(fr.Log(), "TLS-Client-Cert-Common-Name := \"alice\"") {
			t.Error("FreeRADIUS did not see alice's certificate")
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		p, _ := radiusGateway(t, "eap-mschapv2", "not-"+alice)
		netns.WaitFor(t, "the gateway names FreeRADIUS's rejection", 30*time.Second, func() bool {
			return strings.Contains(p.db.ctl("status", "ra"), "RADIUS server rejected")
		})
		if len(p.db.sas().IKESAs) != 0 {
			t.Error("the gateway kept an IKE SA for a client FreeRADIUS rejected")
		}
	})
}
