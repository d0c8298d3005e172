package config

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/bad/*.golden from the current output")

// TestBadConfigGolden loads each testdata/bad/*.hcl file and directory and
// compares the rendered diagnostics (location, snippet, detail) with the
// .golden file next to it. `go test ./config -update` regenerates them.
func TestBadConfigGolden(t *testing.T) {
	entries, err := os.ReadDir("testdata/bad")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() && !strings.HasSuffix(name, ".hcl") {
			continue
		}
		n++
		path := filepath.Join("testdata/bad", name)
		golden := strings.TrimSuffix(path, ".hcl") + ".golden"
		t.Run(strings.TrimSuffix(name, ".hcl"), func(t *testing.T) {
			c, diags := LoadFile(path)
			if !diags.HasErrors() {
				t.Fatalf("%s loaded without errors", path)
			}
			var out bytes.Buffer
			if err := c.WriteDiagnostics(&out, diags); err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./config -update)", err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("diagnostics for %s differ from %s:\n--- got\n%s\n--- want\n%s", path, golden, out.Bytes(), want)
			}
			// Every diagnostic names its place in a file.
			for _, d := range diags {
				if d.Subject == nil || d.Subject.Filename == "" || d.Subject.Start.Line == 0 {
					t.Errorf("diagnostic without a source range: %s: %s", d.Summary, d.Detail)
				}
			}
		})
	}
	if n < 12 {
		t.Fatalf("only %d bad configs in testdata/bad", n)
	}
}

// A literal secret must not reach the rendered output (logs, journals).
func TestLiteralPSKNotPrinted(t *testing.T) {
	c, diags := LoadFile("testdata/bad/literal-psk.hcl")
	var out bytes.Buffer
	c.WriteDiagnostics(&out, diags)
	if !strings.Contains(out.String(), "Literal secret") {
		t.Fatalf("no literal-secret diagnostic:\n%s", out.String())
	}
	if strings.Contains(out.String(), "battery") {
		t.Errorf("the secret is in the diagnostics:\n%s", out.String())
	}
	for _, d := range diags {
		if strings.Contains(d.Detail, "battery") || strings.Contains(d.Summary, "battery") {
			t.Errorf("the secret is in a diagnostic: %s", d.Detail)
		}
	}
}
