package config

import (
	"fmt"
	"strings"
)

// Proposal checking goes through ParseIKEProposal / ParseESPProposal so
// the daemon can point them at core/transform's ParseProposal (the one
// parser the engine uses); until then a table of the algorithms Veil
// implements (contracts.md, core/transform) stands in. Weak algorithms are
// refused here first, with a message naming the algorithm and what to use.
var (
	ParseIKEProposal = func(s string) error { return checkProposalTokens(true, s) }
	ParseESPProposal = func(s string) error { return checkProposalTokens(false, s) }
)

// Default proposals (AEAD first, post-quantum hybrid key exchange offered
// first for IKE); core/transform's DefaultIKEProposals/DefaultESPProposals
// order them for the CPU at run time.
var (
	DefaultIKEProposals = []string{
		"aes256gcm16-chacha20poly1305-prfsha384-prfsha256-x25519-ke1_mlkem768",
		"aes256gcm16-chacha20poly1305-prfsha384-prfsha256-x25519-ecp256",
	}
	DefaultESPProposals = []string{"aes256gcm16-chacha20poly1305"}
)

// weakAlgorithms are strongSwan keywords Veil refuses, with the reason.
var weakAlgorithms = map[string]string{
	"des":          "DES has a 56-bit key",
	"3des":         "3DES has a 64-bit block (Sweet32)",
	"blowfish":     "Blowfish has a 64-bit block",
	"cast128":      "CAST-128 has a 64-bit block",
	"null":         "null encryption does not encrypt",
	"md5":          "MD5 is broken",
	"md5_128":      "MD5 is broken",
	"prfmd5":       "MD5 is broken",
	"sha1":         "SHA-1 is deprecated for IKEv2 (RFC 8247)",
	"sha":          "SHA-1 is deprecated for IKEv2 (RFC 8247)",
	"sha1_160":     "SHA-1 is deprecated for IKEv2 (RFC 8247)",
	"prfsha1":      "SHA-1 is deprecated for IKEv2 (RFC 8247)",
	"aesxcbc":      "AES-XCBC is not recommended (RFC 8247)",
	"prfaesxcbc":   "AES-XCBC is not recommended (RFC 8247)",
	"modp768":      "768-bit MODP is broken",
	"modp1024":     "1024-bit MODP is too weak (RFC 8247)",
	"modp1536":     "1536-bit MODP is too weak (RFC 8247)",
	"modp1024s160": "MODP with small subgroups is not recommended (RFC 8247)",
	"modp2048s224": "MODP with small subgroups is not recommended (RFC 8247)",
	"modp2048s256": "MODP with small subgroups is not recommended (RFC 8247)",
	"ecp192":       "192-bit ECP is too weak",
	"ecp224":       "224-bit ECP is too weak",
}

// WeakAlgorithm returns the weak algorithm in a proposal and why it is
// weak, or "" when there is none.
func WeakAlgorithm(proposal string) (alg, why string) {
	for _, tok := range strings.Split(strings.ToLower(proposal), "-") {
		base := tok
		if i := strings.IndexByte(tok, '_'); i > 0 && strings.HasPrefix(tok, "ke") {
			base = tok[i+1:] // ke1_modp1024
		}
		if why, ok := weakAlgorithms[base]; ok {
			return tok, why
		}
	}
	return "", ""
}

var (
	encrTokens = map[string]bool{
		"aes128": true, "aes192": true, "aes256": true, "aes": true,
		"aes128gcm16": true, "aes192gcm16": true, "aes256gcm16": true, "aes128gcm128": true, "aes256gcm128": true,
		"aes128gcm": true, "aes256gcm": true, "aes256gcm192": true,
		"chacha20poly1305": true,
	}
	aeadTokens = func() map[string]bool {
		m := map[string]bool{"chacha20poly1305": true}
		for t := range encrTokens {
			if strings.Contains(t, "gcm") {
				m[t] = true
			}
		}
		return m
	}()
	prfTokens   = map[string]bool{"prfsha256": true, "prfsha384": true, "prfsha512": true}
	integTokens = map[string]bool{"sha256": true, "sha384": true, "sha512": true, "sha2_256": true, "sha2_384": true, "sha2_512": true}
	keTokens    = map[string]bool{
		"modp2048": true, "modp3072": true, "modp4096": true, "ecp256": true, "ecp384": true, "ecp521": true,
		"x25519": true, "curve25519": true, "mlkem512": true, "mlkem768": true, "mlkem1024": true,
	}
)

// checkProposalTokens checks strongSwan proposal syntax against the
// algorithms Veil implements: IKE needs an encryption algorithm, integrity
// or a PRF, and a key exchange; ESP an encryption algorithm (and integrity
// unless AEAD), optional key exchange (PFS) and esn/noesn.
func checkProposalTokens(ike bool, s string) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("empty proposal")
	}
	var encr, aead, classic, integ, prf, ke bool
	seen := map[string]bool{}
	for _, tok := range strings.Split(strings.ToLower(s), "-") {
		if seen[tok] {
			return fmt.Errorf("%s appears twice", tok)
		}
		seen[tok] = true
		base := tok
		if strings.HasPrefix(tok, "ke") && len(tok) > 3 && tok[3] == '_' && tok[2] >= '1' && tok[2] <= '7' {
			base = tok[4:]
			if !keTokens[base] {
				return fmt.Errorf("unknown additional key exchange %q", tok)
			}
			if !ike {
				return fmt.Errorf("%q: additional key exchanges are for IKE proposals", tok)
			}
			continue
		}
		switch {
		case encrTokens[base]:
			encr = true
			aead = aead || aeadTokens[base]
			classic = classic || !aeadTokens[base]
		case integTokens[base]:
			integ = true
		case prfTokens[base]:
			if !ike {
				return fmt.Errorf("%q: ESP has no PRF", tok)
			}
			prf = true
		case keTokens[base]:
			ke = true
		case (base == "esn" || base == "noesn") && !ike:
		default:
			return fmt.Errorf("unknown algorithm %q", tok)
		}
	}
	switch {
	case !encr:
		return fmt.Errorf("no encryption algorithm (e.g. aes256gcm16)")
	case aead && classic:
		return fmt.Errorf("AEAD and non-AEAD encryption cannot share a proposal (RFC 7296 §3.3); write two proposals")
	case aead && integ:
		return fmt.Errorf("an AEAD algorithm takes no integrity algorithm")
	case !aead && !integ:
		return fmt.Errorf("aes-cbc needs an integrity algorithm (e.g. sha256) or use aes256gcm16")
	case ike && !ke:
		return fmt.Errorf("no key exchange method (e.g. x25519)")
	case ike && aead && !prf:
		return fmt.Errorf("an AEAD IKE proposal needs a PRF (e.g. prfsha384)")
	}
	return nil
}
