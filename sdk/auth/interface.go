// Package auth is what an auth plugin implements: making and checking the
// AUTH payload of IKE_AUTH (RFC 7296 §2.15) for one auth method. A plugin's
// main is a call to Serve; the host reaches Make and Verify over one
// multiplexed stream, so a call costs a few microseconds of CPU.
package auth

import (
	"context"

	"github.com/veil-ipsec/veil/sdk/base"
)

// Role is the side of an exchange.
type Role uint8

const (
	Initiator Role = 1
	Responder Role = 2
)

// Identity is an IKE identification (RFC 7296 §3.5): Type is the ID type
// (1 IPv4, 2 FQDN, 3 RFC822, 5 IPv6, 9 DER_ASN1_DN, 11 KEY_ID), Data its
// payload bytes.
type Identity struct {
	Type uint8
	Data []byte
}

// Request is one side's AUTH to make or check. SignedOctets are exactly
// what RFC 7296 §2.15 says AUTH covers (the sender's first message, the
// peer's nonce, prf(SK_px, ID')); the host computed them.
type Request struct {
	Connection   string
	Role         Role // the role of the side whose AUTH is made or checked
	LocalID      Identity
	RemoteID     Identity
	PRF          uint16 // negotiated PRF transform ID (5, 6, 7: HMAC-SHA2-256/384/512)
	SignedOctets []byte
	// The peer's AUTH, for Verify.
	Method uint8
	Data   []byte
	Certs  [][]byte // DER, end entity first
	// SignatureHashes the peer announced (RFC 7427).
	SignatureHashes []uint16
}

// Result is a locally made AUTH payload and the certificates to send.
type Result struct {
	Method uint8 // AUTH method (RFC 7296 §3.8; 2 = shared key MIC)
	Data   []byte
	Certs  [][]byte
}

// Authenticator is an auth plugin. Errors from Verify are reasons shown to
// operators: plain language, never key material.
type Authenticator interface {
	base.Plugin
	Make(ctx context.Context, req *Request) (*Result, error)
	Verify(ctx context.Context, req *Request) error
}
