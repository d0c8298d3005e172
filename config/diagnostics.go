package config

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// WriteDiagnostics prints diagnostics for people, like a compiler:
//
//	Error: Invalid traffic selector
//
//	  on veil.hcl:14:22, in connection "db":
//	    14:     local_ts = ["10.0.0.1/33"]
//	                        ^^^^^^^^^^^^^
//	  traffic selector "10.0.0.1/33": bad CIDR "10.0.0.1/33". Examples: ...
//
// files are the parsed sources (Config.Files) for the snippets. A
// diagnostic about a secret (a literal psk) shows its location only.
func WriteDiagnostics(w io.Writer, diags hcl.Diagnostics, files map[string]*hcl.File) error {
	var b bytes.Buffer
	for _, d := range diags {
		writeDiagnostic(&b, d, files)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// WriteDiagnostics is WriteDiagnostics with c's sources.
func (c *Config) WriteDiagnostics(w io.Writer, diags hcl.Diagnostics) error {
	return WriteDiagnostics(w, diags, c.Files)
}

func writeDiagnostic(b *bytes.Buffer, d *hcl.Diagnostic, files map[string]*hcl.File) {
	sev := "Error"
	if d.Severity == hcl.DiagWarning {
		sev = "Warning"
	}
	fmt.Fprintf(b, "%s: %s\n", sev, d.Summary)
	if d.Subject != nil {
		s := d.Subject
		file := files[s.Filename]
		where := ""
		if file != nil {
			if nav, ok := file.Nav.(interface{ ContextString(int) string }); ok {
				if c := nav.ContextString(s.Start.Byte); c != "" {
					where = ", in " + c
				}
			}
		}
		fmt.Fprintf(b, "\n  on %s:%d:%d%s:\n", s.Filename, s.Start.Line, s.Start.Column, where)
		_, secret := d.Extra.(sensitive)
		switch {
		case secret:
			b.WriteString("    (line not shown: it may hold a secret)\n")
		case file != nil && file.Bytes != nil:
			writeSnippet(b, file.Bytes, *s)
		}
	}
	if d.Detail != "" {
		b.WriteString("\n")
		for _, line := range strings.Split(d.Detail, "\n") {
			b.WriteString(strings.TrimRight("  "+line, " ") + "\n")
		}
	}
	b.WriteString("\n")
}

// writeSnippet prints the lines of rng with carets under the range on its
// first line.
func writeSnippet(b *bytes.Buffer, src []byte, rng hcl.Range) {
	sc := hcl.NewRangeScanner(src, rng.Filename, bufio.ScanLines)
	for sc.Scan() {
		line := sc.Range()
		if line.Start.Line < rng.Start.Line || line.Start.Line > rng.End.Line {
			continue
		}
		text := strings.ReplaceAll(string(sc.Bytes()), "\t", " ")
		prefix := fmt.Sprintf("  %4d: ", line.Start.Line)
		b.WriteString(strings.TrimRight(prefix+text, " ") + "\n")
		if line.Start.Line != rng.Start.Line {
			continue
		}
		// Columns count characters; the source is mostly ASCII, and for
		// anything else a slightly misplaced caret is harmless.
		start := rng.Start.Column - 1
		end := len([]rune(text))
		if rng.End.Line == rng.Start.Line {
			end = rng.End.Column - 1
		}
		n := max(end-start, 1)
		b.WriteString(strings.Repeat(" ", len(prefix)+start) + strings.Repeat("^", n) + "\n")
	}
}
