package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// pskToken makes a SoftHSM2 token "veil" in dir holding psk as a private
// data object labelled "labpsk", put there with OpenSC's pkcs11-tool as an
// operator would, and removes the file. It returns the environment veild
// needs to find the token and the PIN file.
func pskToken(t *testing.T, dir, psk string) (env, pinFile string) {
	t.Helper()
	for _, tool := range []string{"softhsm2-util", "pkcs11-tool"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is missing; .ci/run installs softhsm2 and opensc", tool)
			}
			t.Skipf("%s is not installed (apt-get install softhsm2 opensc)", tool)
		}
	}
	tokens := filepath.Join(dir, "tokens")
	os.MkdirAll(tokens, 0o700)
	conf := filepath.Join(dir, "softhsm2.conf")
	os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600)
	env = "SOFTHSM2_CONF=" + conf
	pskFile := filepath.Join(dir, "lab.psk")
	os.WriteFile(pskFile, []byte(psk), 0o600)
	for _, args := range [][]string{
		{"softhsm2-util", "--init-token", "--free", "--label", "veil", "--pin", hsmPIN, "--so-pin", "91827364"},
		{"pkcs11-tool", "--module", softhsmModule, "--token-label", "veil", "--login", "--pin", hsmPIN,
			"--write-object", pskFile, "--type", "data", "--label", "labpsk", "--private"},
	} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), env)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", args[0], args[1], err, out)
		}
	}
	os.Remove(pskFile)
	pinFile = filepath.Join(dir, "hsm.pin")
	os.WriteFile(pinFile, []byte(hsmPIN+"\n"), 0o600)
	return env, pinFile
}

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
	aEnv, aPIN := pskToken(t, filepath.Join(dir, "hsm-a"), psk)
	bEnv, bPIN := pskToken(t, filepath.Join(dir, "hsm-b"), psk)
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
