package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// Both daemons' pre-shared key is a data object on a SoftHSM2 token, read
// by veild through the bundled pkcs11 keystore: the SA comes up and
// carries traffic; neither the key nor the PIN is logged.
func TestPKCS11PSK(t *testing.T) {
	const psk = "a pre-shared key on the token, 32+ bytes"
	p := newDirectPair(t)
	dir := t.TempDir()
	cfg := func(sock, local, remote, lid, rid, pinFile, start string) string {
		return keystorePSKConfig(sock, local, remote, lid, rid, fmt.Sprintf(`plugin "keystore" "pkcs11" {
  config {
    module   = %q
    pin_file = %q
  }
}`, softhsmModule, pinFile), "pkcs11:token=veil;object=labpsk;type=data", start)
	}
	aEnv, aPIN := softHSMToken(t, filepath.Join(dir, "hsm-a"), "", map[string]string{"labpsk": psk})
	bEnv, bPIN := softHSMToken(t, filepath.Join(dir, "hsm-b"), "", map[string]string{"labpsk": psk})
	p.db = startDaemonEnv(t, p.b, p.cb.Socket, cfg(p.cb.Socket, p.bAddr, p.aAddr, "b.test", "a.test", bPIN, "none"), bEnv)
	p.da = startDaemonEnv(t, p.a, p.ca.Socket, cfg(p.ca.Socket, p.aAddr, p.bAddr, "a.test", "b.test", aPIN, "start"), aEnv)
	p.da.waitEstablished()
	p.db.waitEstablished()
	pingThrough(t, p)
	for _, d := range []*daemon{p.da, p.db} {
		for name, s := range map[string]string{"pre-shared key": psk, "PIN": hsmPIN} {
			if strings.Contains(d.log.String(), s) {
				t.Errorf("veild in %s logged the %s", d.ns.Name, name)
			}
		}
	}
}
