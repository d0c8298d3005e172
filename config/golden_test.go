package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veil-ipsec/veil/core/transform"
)

var update = flag.Bool("update", false, "rewrite testdata/bad/*.golden from the current output")

// TestBadConfigGolden loads each testdata/bad/*.hcl file and directory and
// compares the rendered diagnostics (location, snippet, detail) with the
// .golden file next to it. `go test ./config -update` regenerates them.
//
// core/transform words its own parse errors and may reword them; so that
// its changes do not break these files, its errors are replaced here by a
// fixed text (TestTransformErrorsReachDiagnostics checks the real ones).
func TestBadConfigGolden(t *testing.T) {
	defer stableProposalErrors()()
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
			// Every diagnostic names its place in a file, once.
			seen := map[string]bool{}
			for _, d := range diags {
				key := d.Summary + d.Detail + fmt.Sprint(d.Subject)
				if seen[key] {
					t.Errorf("reported twice: %s at %s", d.Summary, d.Subject)
				}
				seen[key] = true
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

func stableProposalErrors() (restore func()) {
	ikeParse, espParse := ParseIKEProposal, ParseESPProposal
	stable := func(parse func(string) (transform.Proposal, error)) func(string) (transform.Proposal, error) {
		return func(s string) (transform.Proposal, error) {
			p, err := parse(s)
			if err != nil {
				err = errors.New("proposal " + strconvQuote(s) + ": <core/transform's reason>")
			}
			return p, err
		}
	}
	ParseIKEProposal, ParseESPProposal = stable(ikeParse), stable(espParse)
	return func() { ParseIKEProposal, ParseESPProposal = ikeParse, espParse }
}

func strconvQuote(s string) string { return `"` + s + `"` }

// The real core/transform errors reach the diagnostic, at the element.
func TestTransformErrorsReachDiagnostics(t *testing.T) {
	c, diags := LoadFile("testdata/bad/bad-proposal.hcl")
	var b bytes.Buffer
	c.WriteDiagnostics(&b, diags)
	for _, s := range []string{"aes256gcm16-prfsha384-x448", "aes256gcm16-bogus-x25519", "chacha20poly1305-foo"} {
		_, err := transform.ParseProposal(transform.ProtoIKE, s)
		if strings.HasPrefix(s, "chacha") {
			_, err = transform.ParseProposal(transform.ProtoESP, s)
		}
		if err == nil {
			t.Fatalf("core/transform accepts %q", s)
		}
		if !strings.Contains(b.String(), err.Error()) {
			t.Errorf("transform's error %q is not in\n%s", err, b.String())
		}
	}
	if n := strings.Count(b.String(), "Error: Invalid proposal"); n != 4 {
		t.Errorf("%d invalid-proposal errors, want 4", n)
	}
}
