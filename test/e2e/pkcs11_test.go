package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const (
	softhsmModule = "/usr/lib/softhsm/libsofthsm2.so"
	hsmPIN        = "veil-e2e-pin-527193"
)

// softHSMToken makes a SoftHSM2 token "veil" in dir holding the private
// key in keyPath (PKCS#8 PEM; none if "") as "ike" and each of data as a
// private data object under its label, put there as an operator would
// (softhsm2-util, OpenSC's pkcs11-tool), then removes the files: from then
// on they exist only on the token. It returns the environment veild needs
// to find the token (plugins inherit it) and the PIN file.
func softHSMToken(t *testing.T, dir, keyPath string, data map[string]string) (env, pinFile string) {
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
	steps := [][]string{{"softhsm2-util", "--init-token", "--free", "--label", "veil", "--pin", hsmPIN, "--so-pin", "91827364"}}
	var files []string
	if keyPath != "" {
		steps = append(steps, []string{"softhsm2-util", "--import", keyPath, "--token", "veil", "--label", "ike", "--id", "01", "--pin", hsmPIN})
		files = append(files, keyPath)
	}
	for label, content := range data {
		f := filepath.Join(dir, label+".bin")
		os.WriteFile(f, []byte(content), 0o600)
		files = append(files, f)
		steps = append(steps, []string{"pkcs11-tool", "--module", softhsmModule, "--token-label", "veil", "--login", "--pin", hsmPIN,
			"--write-object", f, "--type", "data", "--label", label, "--private"})
	}
	for _, args := range steps {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), env)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", args[0], args[1], err, out)
		}
	}
	for _, f := range files {
		os.Remove(f)
	}
	pinFile = filepath.Join(dir, "hsm.pin")
	os.WriteFile(pinFile, []byte(hsmPIN+"\n"), 0o600)
	return env, pinFile
}

// pkcs11CertConfig is a certificate connection whose private key is on a
// token, reached through the bundled pkcs11 keystore.
func pkcs11CertConfig(sock, local, remote, lid, rid, cert, pinFile, ca, start string) string {
	return daemonBlock(sock, local) + fmt.Sprintf(`
plugin "keystore" "pkcs11" {
  config {
    module   = %q
    pin_file = %q
    token    = "veil"
  }
}
`, softhsmModule, pinFile) + strings.Replace(certConnection("lab", local, remote, lid, rid, cert,
		"pkcs11:token=veil;object=ike;type=private", ca, start), "  local {", `  ppk_id       = "pq-lab"
  ppk          = "pkcs11:token=veil;object=ppk;type=data"
  ppk_required = true
  local {`, 1)
}

// Both daemons sign IKE_AUTH with keys on SoftHSM2 tokens through the
// bundled pkcs11 keystore (ECDSA P-256 and RSA-PSS; Ed25519 and ECDSA
// P-384) and mix in a PPK kept on the token (RFC 8784), and the SA carries
// traffic; the PIN and key material stay out of the logs.
func TestPKCS11Keystore(t *testing.T) {
	for _, kinds := range [][2]string{{"ecdsa-p256", "rsa"}, {"ed25519", "ecdsa-p384"}} {
		t.Run(kinds[0]+"+"+kinds[1], func(t *testing.T) {
			p := newDirectPair(t)
			dir := t.TempDir()
			ca := newTestCA(t, dir)
			ac, ak := ca.issue(t, dir, "a", "a.test", kinds[0])
			bc, bk := ca.issue(t, dir, "b", "b.test", kinds[1])
			const ppk = "a post-quantum preshared key on the token, 32+ bytes"
			aEnv, aPIN := softHSMToken(t, filepath.Join(dir, "hsm-a"), ak, map[string]string{"ppk": ppk})
			bEnv, bPIN := softHSMToken(t, filepath.Join(dir, "hsm-b"), bk, map[string]string{"ppk": ppk})
			p.db = startDaemonEnv(t, p.b, p.cb.Socket,
				pkcs11CertConfig(p.cb.Socket, p.bAddr, p.aAddr, "b.test", "a.test", bc, bPIN, ca.path, "none"), bEnv)
			p.da = startDaemonEnv(t, p.a, p.ca.Socket,
				pkcs11CertConfig(p.ca.Socket, p.aAddr, p.bAddr, "a.test", "b.test", ac, aPIN, ca.path, "start"), aEnv)
			p.da.waitEstablished()
			p.db.waitEstablished()
			pingThrough(t, p)
			if !ppkInUse(t, p.da) || !ppkInUse(t, p.db) {
				t.Error("veilctl sas does not report the PPK from the token in use")
			}
			for _, d := range []*daemon{p.da, p.db} {
				if row := pluginRow(t, d, "keystore", "pkcs11"); len(row) < 3 || row[2] != "running" {
					t.Errorf("veilctl plugins: keystore pkcs11 is %q, want running", row)
				}
				if strings.Contains(d.log.String(), hsmPIN) {
					t.Errorf("veild in %s logged the PIN", d.ns.Name)
				}
			}
			noKeyInLogs(t, p.da, p.db)
		})
	}
}
