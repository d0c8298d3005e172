// Package keystore is what a keystore plugin implements: resolving key
// references from the configuration ("file:/path", "vault:transit/name",
// "env:NAME") to shared secrets, public keys and signatures. Private keys
// never leave the plugin: the host sends digests and receives signatures,
// over one multiplexed stream.
package keystore

import (
	"context"
	"crypto"
	"errors"

	"github.com/veil-ipsec/veil/sdk/base"
)

// SignOptions say how to sign. Hash is the hash the digest was made with
// (0 for Ed25519, where the "digest" is the whole message). PSS asks for
// RSA-PSS with SaltLength (rsa.PSSSaltLengthEqualsHash is -1).
type SignOptions struct {
	Hash       crypto.Hash
	PSS        bool
	SaltLength int
}

// HashFunc makes SignOptions a crypto.SignerOpts.
func (o SignOptions) HashFunc() crypto.Hash { return o.Hash }

// ErrNotFound is returned (wrapped) for a reference the store does not have.
var ErrNotFound = errors.New("key not found")

// Store is a keystore plugin.
type Store interface {
	base.Plugin
	// Secret returns a shared secret (PSK, EAP password). The host zeroes
	// its copy when done.
	Secret(ctx context.Context, ref string) ([]byte, error)
	// Public returns the public key of a signing key.
	Public(ctx context.Context, ref string) (crypto.PublicKey, error)
	// Sign signs digest with the private key ref names.
	Sign(ctx context.Context, ref string, digest []byte, opts SignOptions) ([]byte, error)
}
