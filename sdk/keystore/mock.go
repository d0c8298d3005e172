package keystore

import (
	"context"
	"crypto"
	"crypto/rand"
	"fmt"
	"sync"

	"github.com/veil-ipsec/veil/sdk/base"
)

// Mock is an in-memory Store: Secrets and Keys by reference, closures to
// override behaviour. For tests.
type Mock struct {
	InfoValue   base.Info
	ConfigureFn func(ctx context.Context, configJSON []byte) error
	HealthFn    func(ctx context.Context) error

	mu      sync.Mutex
	Secrets map[string][]byte
	Keys    map[string]crypto.Signer
}

var _ Store = (*Mock)(nil)

func (m *Mock) Info() base.Info {
	if m.InfoValue == (base.Info{}) {
		return base.Info{Name: "mock", Kind: base.KindKeystore, Version: "0"}
	}
	return m.InfoValue
}

func (m *Mock) ConfigSchema() base.Schema { return base.Schema{} }

func (m *Mock) Configure(ctx context.Context, configJSON []byte) error {
	if m.ConfigureFn != nil {
		return m.ConfigureFn(ctx, configJSON)
	}
	return nil
}

func (m *Mock) Health(ctx context.Context) error {
	if m.HealthFn != nil {
		return m.HealthFn(ctx)
	}
	return nil
}

func (m *Mock) Secret(_ context.Context, ref string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.Secrets[ref]
	if !ok {
		return nil, fmt.Errorf("%s: %w", ref, ErrNotFound)
	}
	return append([]byte(nil), s...), nil
}

func (m *Mock) signer(ref string) (crypto.Signer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.Keys[ref]
	if !ok {
		return nil, fmt.Errorf("%s: %w", ref, ErrNotFound)
	}
	return k, nil
}

func (m *Mock) Public(_ context.Context, ref string) (crypto.PublicKey, error) {
	k, err := m.signer(ref)
	if err != nil {
		return nil, err
	}
	return k.Public(), nil
}

func (m *Mock) Sign(_ context.Context, ref string, digest []byte, opts SignOptions) ([]byte, error) {
	k, err := m.signer(ref)
	if err != nil {
		return nil, err
	}
	return k.Sign(rand.Reader, digest, GoSignerOpts(opts))
}
