package transform

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/cpu"

	"github.com/veil-ipsec/veil/core/ike"
)

// Protocol is what a proposal is for.
type Protocol uint8

const (
	ProtoIKE Protocol = iota + 1
	ProtoESP
)

func (p Protocol) wire() ike.ProtocolID {
	if p == ProtoESP {
		return ike.ProtoESP
	}
	return ike.ProtoIKE
}

// Proposal is one proposal: several transforms of a type are alternatives,
// in preference order, as in strongSwan's proposal strings.
type Proposal struct {
	Protocol   Protocol
	Transforms []ike.Transform
}

// ParseProposal reads a proposal in strongSwan's syntax, such as
// "aes256gcm16-prfsha384-x25519-ke1_mlkem768" (IKE) or "aes256gcm16-esn" (ESP).
func ParseProposal(proto Protocol, s string) (Proposal, error) {
	p := Proposal{Protocol: proto}
	if s == "" {
		return p, errors.New("empty proposal")
	}
	var esnSeen bool
	for _, tok := range strings.Split(strings.ToLower(s), "-") {
		t, err := parseToken(tok)
		if err != nil {
			return p, fmt.Errorf("proposal %q: %w", s, err)
		}
		if t.Type == ike.TransformESN {
			if proto == ProtoIKE {
				return p, fmt.Errorf("proposal %q: %s applies to ESP only", s, tok)
			}
			esnSeen = true
		}
		if containsT(p.Transforms, t) {
			return p, fmt.Errorf("proposal %q: %s appears twice", s, tok)
		}
		p.Transforms = append(p.Transforms, t)
	}
	if proto == ProtoESP && !esnSeen {
		p.Transforms = append(p.Transforms, ike.Transform{Type: ike.TransformESN, ID: ESNNo})
	}
	if err := p.complete(); err != nil {
		return p, fmt.Errorf("proposal %q: %w", s, err)
	}
	return p, nil
}

func parseToken(tok string) (ike.Transform, error) {
	if why, ok := weak[tok]; ok {
		return ike.Transform{}, fmt.Errorf("%s is refused: %s", tok, why)
	}
	if why, ok := unsupported[tok]; ok {
		return ike.Transform{}, fmt.Errorf("%s: %s", tok, why)
	}
	if a, ok := encrAliases[tok]; ok {
		tok = a
	}
	for _, a := range encrAlgs {
		if a.name == tok {
			t := ike.Transform{Type: ike.TransformENCR, ID: a.id}
			if !a.fixedKey {
				t.KeyLength = uint16(a.keyBits)
			}
			return t, nil
		}
	}
	for _, a := range prfAlgs {
		if a.name == tok {
			return ike.Transform{Type: ike.TransformPRF, ID: a.id}, nil
		}
	}
	for _, a := range integAlgs {
		if a.name == tok || slices.Contains(a.aliases, tok) {
			return ike.Transform{Type: ike.TransformINTEG, ID: a.id}, nil
		}
	}
	switch tok {
	case "esn":
		return ike.Transform{Type: ike.TransformESN, ID: ESNYes}, nil
	case "noesn":
		return ike.Transform{Type: ike.TransformESN, ID: ESNNo}, nil
	}
	typ := ike.TransformKE
	if len(tok) > 4 && tok[0:2] == "ke" && tok[2] >= '1' && tok[2] <= '7' && tok[3] == '_' {
		typ = ike.TransformADDKE1 + ike.TransformType(tok[2]-'1')
		tok = tok[4:]
		if tok == "none" {
			return ike.Transform{Type: typ, ID: KENone}, nil
		}
	}
	if why, ok := weak[tok]; ok {
		return ike.Transform{}, fmt.Errorf("%s is refused: %s", tok, why)
	}
	if why, ok := unsupported[tok]; ok {
		return ike.Transform{}, fmt.Errorf("%s: %s", tok, why)
	}
	for _, a := range keAlgs {
		if a.name == tok || slices.Contains(a.aliases, tok) {
			if a.kem && typ == ike.TransformKE {
				return ike.Transform{}, fmt.Errorf("%s is an additional key exchange: write ke1_%s (RFC 9370)", tok, a.name)
			}
			return ike.Transform{Type: typ, ID: a.id}, nil
		}
	}
	return ike.Transform{}, fmt.Errorf("unknown algorithm %q", tok)
}

func (p *Proposal) has(t ike.TransformType) bool {
	for _, x := range p.Transforms {
		if x.Type == t {
			return true
		}
	}
	return false
}

// complete applies strongSwan's rules (check_proposal in libstrongswan's
// proposal.c): an IKE proposal without a PRF takes the PRFs matching its
// integrity algorithms, and one that still has none (AEAD) is refused; ESP
// drops PRFs; AEAD and classic ciphers never share a proposal; an all-AEAD
// proposal drops integrity algorithms. Unlike strongSwan, classic ESP
// without integrity is refused (RFC 8221 §5).
func (p *Proposal) complete() error {
	var aead, classic bool
	for _, t := range p.Transforms {
		if t.Type == ike.TransformENCR {
			if findEncr(t.ID, int(t.KeyLength)).aead {
				aead = true
			} else {
				classic = true
			}
		}
	}
	if p.Protocol == ProtoIKE && !p.has(ike.TransformPRF) {
		for _, t := range p.Transforms {
			if t.Type == ike.TransformINTEG {
				prf := ike.Transform{Type: ike.TransformPRF, ID: findInteg(t.ID).prf}
				if !containsT(p.Transforms, prf) {
					p.Transforms = append(p.Transforms, prf)
				}
			}
		}
	}
	if p.Protocol == ProtoESP {
		p.drop(ike.TransformPRF)
	}
	switch {
	case !aead && !classic:
		return errors.New("an encryption algorithm is mandatory")
	case aead && classic:
		return errors.New("classic and combined-mode (AEAD) encryption algorithms can't be contained in the same proposal; write two proposals")
	case aead:
		p.drop(ike.TransformINTEG) // AEAD provides integrity (RFC 5282 §8)
	case !p.has(ike.TransformINTEG):
		return errors.New("an integrity algorithm is mandatory with classic (non-AEAD) encryption")
	}
	if p.Protocol == ProtoIKE {
		if !p.has(ike.TransformPRF) {
			return errors.New("a PRF algorithm is mandatory in IKE proposals (AEAD has no integrity algorithm to take it from): add e.g. prfsha256")
		}
		if !p.has(ike.TransformKE) {
			return errors.New("a key exchange method is mandatory in IKE proposals, e.g. x25519")
		}
	}
	return nil
}

func (p *Proposal) drop(typ ike.TransformType) {
	p.Transforms = slices.DeleteFunc(p.Transforms, func(t ike.Transform) bool { return t.Type == typ })
}

// String prints the proposal back in strongSwan's syntax.
func (p Proposal) String() string {
	var parts []string
	var esnYes, esnNo bool
	for _, typ := range []ike.TransformType{ike.TransformENCR, ike.TransformINTEG, ike.TransformPRF, ike.TransformKE,
		6, 7, 8, 9, 10, 11, 12, ike.TransformESN} {
		for _, t := range p.Transforms {
			if t.Type != typ {
				continue
			}
			if typ == ike.TransformESN {
				esnYes = esnYes || t.ID == ESNYes
				esnNo = esnNo || t.ID == ESNNo
				continue
			}
			parts = append(parts, transformName(t))
		}
	}
	switch {
	case esnYes && esnNo:
		parts = append(parts, "esn", "noesn")
	case esnYes:
		parts = append(parts, "esn")
	}
	return strings.Join(parts, "-")
}

func transformName(t ike.Transform) string {
	switch t.Type {
	case ike.TransformENCR:
		if a := findEncr(t.ID, int(t.KeyLength)); a != nil {
			return a.name
		}
	case ike.TransformPRF:
		if a := findPRF(t.ID); a != nil {
			return a.name
		}
	case ike.TransformINTEG:
		if a := findInteg(t.ID); a != nil {
			return a.name
		}
	case ike.TransformESN:
		if t.ID == ESNYes {
			return "esn"
		}
		return "noesn"
	default:
		prefix := ""
		if t.Type >= ike.TransformADDKE1 && t.Type <= ike.TransformADDKE7 {
			prefix = fmt.Sprintf("ke%d_", t.Type-ike.TransformADDKE1+1)
			if t.ID == KENone {
				return prefix + "none"
			}
		}
		if a := findKE(t.ID); a != nil {
			return prefix + a.name
		}
	}
	if name, ok := weakNames[weakKey{t.Type, t.ID}]; ok {
		return name
	}
	return fmt.Sprintf("%v:%d", t.Type, t.ID)
}

// ToWire converts the proposal into an SA payload proposal.
func (p Proposal) ToWire(number uint8, spi []byte) ike.Proposal {
	return ike.Proposal{Number: number, Protocol: p.Protocol.wire(), SPI: spi, Transforms: slices.Clone(p.Transforms)}
}

// DefaultIKEProposals and DefaultESPProposals follow the hardware: AES-GCM
// first where the CPU has AES instructions, ChaCha20-Poly1305 first where it
// does not (it is then faster and constant-time).
func DefaultIKEProposals() []Proposal { return defaultIKE(hasAESHardware()) }

// DefaultESPProposals: see DefaultIKEProposals.
func DefaultESPProposals() []Proposal { return defaultESP(hasAESHardware()) }

func hasAESHardware() bool {
	return (cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ) || cpu.ARM64.HasAES || cpu.S390X.HasAES
}

func defaultIKE(aes bool) []Proposal {
	gcm := "aes256gcm16-aes128gcm16-prfsha384-prfsha256-x25519-ecp256-ecp384-modp3072"
	cc := "chacha20poly1305-prfsha384-prfsha256-x25519-ecp256-ecp384-modp3072"
	return mustParse(ProtoIKE, order(aes, gcm, cc)...)
}

func defaultESP(aes bool) []Proposal {
	return mustParse(ProtoESP, order(aes, "aes256gcm16-aes128gcm16", "chacha20poly1305")...)
}

func order(aesFirst bool, gcm, cc string) []string {
	if aesFirst {
		return []string{gcm, cc}
	}
	return []string{cc, gcm}
}

func mustParse(proto Protocol, ss ...string) []Proposal {
	var out []Proposal
	for _, s := range ss {
		p, err := ParseProposal(proto, s)
		if err != nil {
			panic(err)
		}
		out = append(out, p)
	}
	return out
}
