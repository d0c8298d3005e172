package config

import (
	"strings"

	"github.com/veil-ipsec/veil/core/transform"
)

// Proposals are parsed by core/transform, the one parser the engine uses,
// through these variables (a test can point them elsewhere). Weak
// algorithms are refused here first, with a message naming the algorithm,
// why it is weak and what to use instead.
var (
	ParseIKEProposal = func(s string) (transform.Proposal, error) { return transform.ParseProposal(transform.ProtoIKE, s) }
	ParseESPProposal = func(s string) (transform.Proposal, error) { return transform.ParseProposal(transform.ProtoESP, s) }
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
