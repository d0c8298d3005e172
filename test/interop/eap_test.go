package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/test/freeradius"
	"github.com/veil-ipsec/veil/test/netns"
)

const eapPassword = "alice interop password 0123456789"

// EAP inside IKEv2 (RFC 7296 §2.16) with charon, EAP-MD5 and EAP-TLS, with
// veil as the gateway (EAP server with its local users; charon the client,
// initiating) and as the client (charon the gateway, veil initiating). The
// gateway authenticates with its certificate, the client with EAP only;
// charon logs the method's success, and traffic goes through the child.
func TestEAPWithCharon(t *testing.T) {
	for _, method := range []string{"eap-md5", "eap-tls"} {
		for _, veilGateway := range []bool{true, false} {
			name := method + "/veil-client"
			if veilGateway {
				name = method + "/veil-gateway"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				s := eapSetup(t, dir, method, veilGateway)
				l := newLab(t, s)
				if veilGateway {
					l.charonInitiate()
				}
				l.waitPaired("IKE SA with EAP established on both sides", nil)
				charonName := map[string]string{"eap-md5": "EAP_MD5", "eap-tls": "EAP_TLS"}[method]
				if !regexp.MustCompile(`EAP method ` + charonName + ` succeeded`).MatchString(l.charon.log()) {
					t.Errorf("charon's log does not say %s succeeded", charonName)
				}
				l.ping()
			})
		}
	}
}

// eapSetup builds a lab's setup: certificates from one CA for both IKE
// identities, and for the EAP client the user alice, with a password (MD5)
// or a certificate naming alice (TLS).
func eapSetup(t *testing.T, dir, method string, veilGateway bool) setup {
	t.Helper()
	c, ca := sameCAWith(t, "ecdsa-p256")
	pw := filepath.Join(dir, "alice.pw")
	if err := os.WriteFile(pw, []byte(eapPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := setup{Mode: "tunnel", IKEProposal: "aes256gcm16-prfsha256-x25519", ESPProposal: "aes256gcm16",
		VeilStarts: !veilGateway, Certs: c,
		CharonSecrets: fmt.Sprintf("eap-alice {\n    id = alice\n    secret = %q\n  }", eapPassword)}
	var aliceCert, aliceKey string
	if method == "eap-tls" {
		aliceCert, aliceKey = ca.issue(t, dir, "alice", "alice", "ecdsa-p256")
	}
	if veilGateway {
		users := fmt.Sprintf("users = { alice = \"file:%s\" }", pw)
		if method == "eap-md5" {
			users = "allow_md5 = true\n    " + users
		}
		s.VeilTop = "plugin \"auth\" \"eap\" {\n  config {\n    " + users + "\n  }\n}"
		s.VeilRemote = fmt.Sprintf("auth = %q\n    eap_id = \"%%any\"\n    cacerts = [%q]", method, c.VeilCA)
		s.CharonLocal = "auth = " + method + "\n      eap_id = alice"
		if method == "eap-tls" {
			s.CharonLocal += "\n      certs = alice.pem"
			s.CharonFiles = map[string]string{"x509/alice.pem": aliceCert, "private/alice.key": aliceKey}
		}
		return s
	}
	s.VeilLocal = fmt.Sprintf("auth = %q\n    eap_id = \"alice\"", method)
	if method == "eap-tls" {
		s.VeilLocal += fmt.Sprintf("\n    certificate = %q\n    key = \"file:%s\"", aliceCert, aliceKey)
	} else {
		s.VeilLocal += fmt.Sprintf("\n    psk = \"file:%s\"", pw)
		s.VeilTop = "plugin \"auth\" \"eap\" {\n  config {\n    allow_md5 = true\n  }\n}"
	}
	s.CharonRemote = "auth = " + method + "\n      eap_id = %any"
	if method == "eap-tls" {
		s.CharonRemote += "\n      cacerts = ca.pem"
	}
	return s
}

// charon as the EAP client of a veil gateway that relays every EAP
// conversation to a real FreeRADIUS (RFC 3579) in its namespace, with
// EAP-MD5 and EAP-TLS (FreeRADIUS's own test PKI: its server certificate
// checked by charon, alice's by FreeRADIUS; the MSK comes from RADIUS): the
// IKE SA comes up for a user FreeRADIUS knows (its log shows the
// Access-Accept), and a wrong password is refused by FreeRADIUS, with
// veilctl status quoting the server's reject message.
func TestEAPRADIUSWithCharon(t *testing.T) {
	freeradius.Require(t)
	for _, name := range []string{"md5", "md5-wrong-password", "tls"} {
		t.Run(name, func(t *testing.T) {
			method := "eap-md5"
			if name == "tls" {
				method = "eap-tls"
			}
			wrong := name == "md5-wrong-password"
			var fr *freeradius.Server
			s := eapSetup(t, t.TempDir(), method, true)
			if wrong {
				s.CharonSecrets = fmt.Sprintf("eap-alice {\n    id = alice\n    secret = %q\n  }", "not alice's password 0123456789")
			}
			s.Prepare = func(veilNS, _ *netns.NS, s *setup) {
				if err := veilNS.Do(func() error {
					fr = freeradius.Start(t, freeradius.Config{Users: map[string]string{"alice": eapPassword}})
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				secret := filepath.Join(t.TempDir(), "radius.secret")
				if err := os.WriteFile(secret, []byte(fr.Secret), 0o600); err != nil {
					t.Fatal(err)
				}
				s.VeilTop = fmt.Sprintf("plugin \"auth\" \"eap\" {\n  config {\n    allow_md5 = true\n    radius_server = %q\n    radius_secret = \"file:%s\"\n  }\n}", fr.Addr, secret)
				if method == "eap-tls" {
					// alice's certificate and the CA of FreeRADIUS's
					// server certificate, whose name charon checks.
					s.VeilRemote = "auth = \"eap-tls\"\n    eap_id = \"%any\""
					s.CharonLocal = "auth = eap-tls\n      eap_id = alice\n      aaa_id = radius.example.com\n      certs = alice.pem"
					s.CharonFiles = map[string]string{"x509/alice.pem": fr.ClientCert, "private/alice.key": fr.ClientKey, "x509ca/radius-ca.pem": fr.CA}
				}
			}
			l := newLab(t, s)
			if !wrong {
				l.charonInitiate()
				l.waitPaired("IKE SA with EAP through RADIUS established on both sides", nil)
				if !strings.Contains(fr.Log(), "Access-Accept") {
					t.Errorf("FreeRADIUS did not accept alice:\n%s", fr.Log())
				}
				want := map[string]string{"eap-md5": "EAP method EAP_MD5 succeeded", "eap-tls": "EAP method EAP_TLS succeeded, MSK established"}[method]
				if !strings.Contains(l.charon.log(), want) {
					t.Errorf("charon's log lacks %q", want)
				}
				l.ping()
				return
			}
			if out, err := l.charon.swanctlErr("--initiate", "--child", "net", "--timeout", "10"); err == nil {
				t.Fatalf("charon's initiate succeeded with a wrong password:\n%s", out)
			}
			var out string
			for deadline := time.Now().Add(20 * time.Second); !strings.Contains(out, `RADIUS server rejected "alice": `+freeradius.RejectMessage); time.Sleep(100 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("veilctl status never named FreeRADIUS's reject:\n%s", out)
				}
				out = l.veil.ctl("status", "interop")
			}
			if !strings.Contains(fr.Log(), "Access-Reject") {
				t.Errorf("FreeRADIUS did not reject alice:\n%s", fr.Log())
			}
			if n := len(l.veil.sas()) + len(l.charon.sas()); n != 0 {
				t.Errorf("%d IKE SAs left after a refused password", n)
			}
		})
	}
}

// veil as EAP-MD5 client with a password charon's gateway does not have:
// charon answers EAP-Failure, veil names it in veilctl status and neither
// side keeps an IKE SA.
func TestEAPWrongPasswordWithCharon(t *testing.T) {
	s := eapSetup(t, t.TempDir(), "eap-md5", false)
	s.CharonSecrets = fmt.Sprintf("eap-alice {\n    id = alice\n    secret = %q\n  }", "not alice's password 0123456789")
	l := newLab(t, s)
	var out string
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(out, "the EAP server refused authentication during EAP-MD5"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("veilctl status never named the EAP failure:\n%s", out)
		}
		out = l.veil.ctl("status", "interop")
	}
	if !strings.Contains(l.charon.log(), "EAP method EAP_MD5 failed") {
		t.Errorf("charon's log does not say EAP-MD5 failed")
	}
	if n := len(l.veil.sas()) + len(l.charon.sas()); n != 0 {
		t.Errorf("%d IKE SAs left after a wrong password", n)
	}
}
