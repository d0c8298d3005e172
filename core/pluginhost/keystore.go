package pluginhost

import (
	"context"
	"crypto"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/keystore"
)

// keyStore adapts a keystore plugin to provider.KeyStore.
type keyStore struct {
	inst *instance

	// pubs caches public keys by reference for the plugin process (from)
	// and configuration (gen) that gave them, so a handshake's Signer
	// costs no round trip; a restarted or reconfigured plugin is asked
	// again.
	mu   sync.Mutex
	from *keystore.Client
	gen  uint64
	pubs map[string]crypto.PublicKey
}

func (k *keyStore) client() (*keystore.Client, error) {
	kc, err := k.inst.current()
	if err != nil {
		return nil, err
	}
	return kc.(*keystore.Client), nil
}

func (k *keyStore) Secret(ctx context.Context, ref string) ([]byte, error) {
	start := time.Now()
	c, err := k.client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := k.inst.h.callContext(ctx)
	defer cancel()
	s, err := c.Secret(ctx, ref)
	k.inst.h.observe(base.KindKeystore, k.inst.name, "secret", start, err)
	if err != nil {
		return nil, callError(base.KindKeystore, k.inst.name, "secret "+ref, start, err)
	}
	return s, nil
}

// maxCachedPublicKeys bounds the cache (references come from the
// configuration, so a few; the bound only guards against a runaway caller).
const maxCachedPublicKeys = 4096

// Signer fetches the public key (once per plugin process); each Sign goes
// to the plugin over its multiplexed stream, so the private key stays in
// the plugin.
func (k *keyStore) Signer(ctx context.Context, ref string) (crypto.Signer, error) {
	if local := k.inst.h.localKeystore(k.inst); local != nil {
		pub, err := local.Public(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("keystore %q: public key %s: %w", k.inst.name, ref, err)
		}
		return &localSigner{s: local, ref: ref, pub: pub}, nil
	}
	start := time.Now()
	c, err := k.client()
	if err != nil {
		return nil, err
	}
	gen := k.inst.configured.Load()
	k.mu.Lock()
	if k.from != c || k.gen != gen {
		k.from, k.gen, k.pubs = c, gen, map[string]crypto.PublicKey{}
	}
	pub, ok := k.pubs[ref]
	k.mu.Unlock()
	if ok {
		return &remoteSigner{ks: k, ref: ref, pub: pub}, nil
	}
	ctx, cancel := k.inst.h.callContext(ctx)
	defer cancel()
	pub, err = c.Public(ctx, ref)
	k.inst.h.observe(base.KindKeystore, k.inst.name, "public", start, err)
	if err != nil {
		return nil, callError(base.KindKeystore, k.inst.name, "public key "+ref, start, err)
	}
	k.mu.Lock()
	if k.from == c && k.gen == gen && len(k.pubs) < maxCachedPublicKeys {
		k.pubs[ref] = pub
	}
	k.mu.Unlock()
	return &remoteSigner{ks: k, ref: ref, pub: pub}, nil
}

// remoteSigner is a crypto.Signer whose private key lives in a plugin.
// crypto.Signer has no context: each Sign gets the host's call timeout.
type remoteSigner struct {
	ks  *keyStore
	ref string
	pub crypto.PublicKey
}

func (s *remoteSigner) Public() crypto.PublicKey { return s.pub }

func (s *remoteSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	start := time.Now()
	c, err := s.ks.client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.ks.inst.h.callContext(context.Background())
	defer cancel()
	sig, err := c.Sign(ctx, s.ref, digest, keystore.OptionsFrom(opts))
	s.ks.inst.h.observe(base.KindKeystore, s.ks.inst.name, "sign", start, err)
	if err != nil {
		return nil, callError(base.KindKeystore, s.ks.inst.name, "sign with "+s.ref, start, err)
	}
	return sig, nil
}

// localSigner signs with a keystore running in the host (LocalKeystores).
type localSigner struct {
	s   keystore.Store
	ref string
	pub crypto.PublicKey
}

func (s *localSigner) Public() crypto.PublicKey { return s.pub }

func (s *localSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.s.Sign(context.Background(), s.ref, digest, keystore.OptionsFrom(opts))
}
