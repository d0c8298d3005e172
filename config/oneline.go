package config

import (
	"bytes"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Plain HCL allows only one attribute in a block written on one line
//
//	local { auth = "pubkey"  id = "db1.example.com" }
//
// and no nested block there. Veil accepts that compact form (its own
// documentation uses it): when a file fails to parse for that reason, the
// blank before each extra attribute, nested block and closing brace of a
// one-line block becomes a newline and the file is parsed again. Only
// blanks change, so byte offsets stay the same and ranges are mapped back
// to the original lines and columns (remap) before anyone sees them.
func splitOneLineBlocks(src []byte) ([]byte, bool) {
	toks, diags := hclsyntax.LexConfig(src, "", hcl.InitialPos)
	if diags.HasErrors() {
		return nil, false
	}
	out := bytes.Clone(src)
	changed := false
	breakAt := func(b int) {
		if b >= 0 && b < len(out) && (out[b] == ' ' || out[b] == '\t') {
			out[b] = '\n'
			changed = true
		}
	}
	lineStart := func(t hclsyntax.TokenType) bool {
		return t == hclsyntax.TokenNewline || t == hclsyntax.TokenComment || t == hclsyntax.TokenOBrace
	}
	// stack holds 'B' for block bodies and 'E' for brackets inside
	// expressions (object and tuple constructors, calls).
	var stack []byte
	inBody := func() bool { return len(stack) == 0 || stack[len(stack)-1] == 'B' }
	for i, t := range toks {
		var prev, next hclsyntax.TokenType = hclsyntax.TokenNewline, hclsyntax.TokenEOF
		if i > 0 {
			prev = toks[i-1].Type
		}
		if i+1 < len(toks) {
			next = toks[i+1].Type
		}
		switch t.Type {
		case hclsyntax.TokenOBrace:
			if inBody() && (prev == hclsyntax.TokenIdent || prev == hclsyntax.TokenCQuote) {
				stack = append(stack, 'B')
				if next != hclsyntax.TokenNewline && next != hclsyntax.TokenComment && next != hclsyntax.TokenCBrace {
					breakAt(t.Range.End.Byte)
				}
			} else {
				stack = append(stack, 'E')
			}
		case hclsyntax.TokenOBrack, hclsyntax.TokenOParen:
			stack = append(stack, 'E')
		case hclsyntax.TokenCBrack, hclsyntax.TokenCParen:
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case hclsyntax.TokenCBrace:
			if len(stack) == 0 {
				continue
			}
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if top == 'B' && !lineStart(prev) {
				breakAt(t.Range.Start.Byte - 1)
			}
		case hclsyntax.TokenIdent:
			startsItem := next == hclsyntax.TokenEqual || next == hclsyntax.TokenOBrace || next == hclsyntax.TokenOQuote
			if inBody() && startsItem && !lineStart(prev) {
				breakAt(t.Range.Start.Byte - 1)
			}
		}
	}
	return out, changed
}

// remap recomputes line and column of a range from its byte offsets in the
// original source of its file, when that file was rewritten.
func remap(rng *hcl.Range, orig map[string][]byte) {
	if rng == nil {
		return
	}
	src, ok := orig[rng.Filename]
	if !ok {
		return
	}
	rng.Start = posAt(src, rng.Start.Byte)
	rng.End = posAt(src, rng.End.Byte)
}

func posAt(src []byte, b int) hcl.Pos {
	b = min(max(b, 0), len(src))
	line := 1 + bytes.Count(src[:b], []byte{'\n'})
	start := bytes.LastIndexByte(src[:b], '\n') + 1
	return hcl.Pos{Line: line, Column: 1 + len(bytes.Runes(src[start:b])), Byte: b}
}
