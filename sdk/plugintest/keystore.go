package plugintest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"sync"
	"testing"

	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/keystore"
)

// KeystoreCase tells RunKeystoreConformance what the configured store holds.
type KeystoreCase struct {
	Config []byte // JSON for Configure (nil: "{}")
	// SecretRef resolves to Secret.
	SecretRef string
	Secret    []byte
	// SignerRefs name private keys (ECDSA, RSA or Ed25519), may be empty.
	SignerRefs []string
	// MissingRef is a well-formed reference the store does not have.
	MissingRef string
}

// RunKeystoreConformance checks a keystore plugin over real gRPC: secrets,
// public keys, signatures that verify with the public key (PKCS#1 v1.5 and
// PSS for RSA), errors for missing references and bad digests, concurrent
// signing.
func RunKeystoreConformance(t *testing.T, impl keystore.Store, c KeystoreCase) {
	client := KeystoreClient(t, impl)
	checkBase(t, client, base.KindKeystore, c.Config)
	ctx := context.Background()

	if c.SecretRef != "" {
		t.Run("secret", func(t *testing.T) {
			s, err := client.Secret(ctx, c.SecretRef)
			if err != nil {
				t.Fatalf("Secret(%q): %v", c.SecretRef, err)
			}
			if !bytes.Equal(s, c.Secret) {
				t.Fatalf("Secret(%q) = %d bytes, not the expected %d", c.SecretRef, len(s), len(c.Secret))
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		_, err := client.Secret(ctx, c.MissingRef)
		noPanic(t, "Secret(missing)", err)
		if err == nil {
			t.Errorf("Secret(%q) of a missing reference succeeded", c.MissingRef)
		}
		_, err = client.Sign(ctx, c.MissingRef, make([]byte, 32), keystore.SignOptions{Hash: crypto.SHA256})
		noPanic(t, "Sign(missing)", err)
		if err == nil {
			t.Errorf("Sign(%q) of a missing reference succeeded", c.MissingRef)
		}
		for _, ref := range []string{"", "\x00", "no-scheme"} {
			_, err := client.Secret(ctx, ref)
			noPanic(t, "Secret(malformed)", err)
			if err == nil {
				t.Errorf("Secret(%q) succeeded", ref)
			}
		}
	})
	msg := []byte("IKE_SA_INIT message | nonce | prf(SK_p, ID)")
	digest := sha256.Sum256(msg)
	for _, ref := range c.SignerRefs {
		t.Run("sign "+ref, func(t *testing.T) {
			pub, err := client.Public(ctx, ref)
			if err != nil {
				t.Fatalf("Public: %v", err)
			}
			check := func(opts keystore.SignOptions) {
				t.Helper()
				d := digest[:]
				if _, ok := pub.(ed25519.PublicKey); ok {
					d = msg
				}
				sig, err := client.Sign(ctx, ref, d, opts)
				if err != nil {
					t.Fatalf("Sign(%+v): %v", opts, err)
				}
				if !verifies(pub, d, sig, opts) {
					t.Fatalf("signature (%+v) does not verify with the public key", opts)
				}
			}
			switch pub.(type) {
			case ed25519.PublicKey:
				check(keystore.SignOptions{})
			case *rsa.PublicKey:
				check(keystore.SignOptions{Hash: crypto.SHA256})
				check(keystore.SignOptions{Hash: crypto.SHA256, PSS: true, SaltLength: rsa.PSSSaltLengthEqualsHash})
			default:
				check(keystore.SignOptions{Hash: crypto.SHA256})
				_, err := client.Sign(ctx, ref, digest[:5], keystore.SignOptions{Hash: crypto.SHA256})
				noPanic(t, "Sign(short digest)", err)
				if err == nil {
					t.Errorf("Sign accepted a 5-byte SHA-256 digest")
				}
			}
			var wg sync.WaitGroup
			for range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, ok := pub.(ed25519.PublicKey); ok {
						return
					}
					sig, err := client.Sign(ctx, ref, digest[:], keystore.SignOptions{Hash: crypto.SHA256})
					if err != nil || !verifies(pub, digest[:], sig, keystore.SignOptions{Hash: crypto.SHA256}) {
						t.Errorf("concurrent Sign: %v", err)
					}
				}()
			}
			wg.Wait()
		})
	}
}

func verifies(pub crypto.PublicKey, digest, sig []byte, opts keystore.SignOptions) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(k, digest, sig)
	case ed25519.PublicKey:
		return ed25519.Verify(k, digest, sig)
	case *rsa.PublicKey:
		if opts.PSS {
			return rsa.VerifyPSS(k, opts.Hash, digest, sig, &rsa.PSSOptions{SaltLength: opts.SaltLength, Hash: opts.Hash}) == nil
		}
		return rsa.VerifyPKCS1v15(k, opts.Hash, digest, sig) == nil
	}
	return false
}
