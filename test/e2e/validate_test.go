package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Every annotated example is a valid configuration.
func TestExamplesValidate(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*.hcl")
	if len(files) < 6 {
		t.Fatalf("only %d examples", len(files))
	}
	for _, f := range files {
		out, err := exec.Command(veild, "validate", f).CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v\n%s", f, err, out)
		}
	}
}

// A bad configuration is refused with file:line:col and a non-zero exit.
func TestValidateReportsPositions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.hcl")
	os.WriteFile(path, []byte(`connection "x" {
  remote_addrs  = ["10.0.0.2"]
  ike_proposals = ["3des-sha1-modp1024"]
  local  { auth = "psk"  psk = "file:/nonexistent" }
  remote { auth = "psk"  psk = "file:/nonexistent" }
  child "c" { local_ts = ["10.0.0.1/33"] }
}
`), 0o600)
	out, err := exec.Command(veild, "validate", path).CombinedOutput()
	if err == nil {
		t.Fatalf("bad config accepted:\n%s", out)
	}
	for _, want := range []string{path + ":3:", "3des", path + ":6:", "10.0.0.1/33"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("diagnostics lack %q:\n%s", want, out)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, bin := range []string{veild, veilctl} {
		out, err := exec.Command(bin, "--version").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), filepath.Base(bin)+" ") {
			t.Errorf("%s --version: %v %q", bin, err, out)
		}
	}
}
