package config

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: any input gives a Config or diagnostics, never a panic, and
// every diagnostic renders (with the one-line rewriting and range remapping
// in the path).
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/good", "testdata/bad"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.hcl"))
		for _, name := range files {
			if b, err := os.ReadFile(name); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(`plugin "keystore" "vault" { config { address = "x" } }`))
	f.Fuzz(func(t *testing.T, src []byte) {
		c, diags := Parse(src, "fuzz.hcl")
		if c == nil {
			t.Fatal("nil Config")
		}
		var b bytes.Buffer
		if err := c.WriteDiagnostics(&b, diags); err != nil {
			t.Fatal(err)
		}
		for _, d := range diags {
			if d.Subject != nil && (d.Subject.Start.Byte > len(src) || d.Subject.End.Byte > len(src)) {
				t.Fatalf("range %v beyond the %d-byte source", d.Subject, len(src))
			}
		}
	})
}
