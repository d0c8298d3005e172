// Command keystore-env is an example third-party Veil plugin: a keystore
// that resolves "env:NAME" references to environment variables of the
// plugin process. It imports only Veil's sdk/ packages; build it with
// `go build` and name the binary in the configuration:
//
//	plugin "keystore" "env" {
//	  path = "/usr/local/libexec/veil/keystore-env"
//	  config {
//	    prefix = "VEIL_"   # only variables starting with this may be read
//	  }
//	}
//
// A variable holding a PEM private key (PKCS#8) is a signing key too.
package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/keystore"
)

type envStore struct {
	mu     sync.RWMutex
	prefix string
}

func (s *envStore) Info() base.Info {
	return base.Info{Name: "env", Kind: base.KindKeystore, Version: "0.1.0"}
}

func (s *envStore) ConfigSchema() base.Schema {
	return base.Schema{Attributes: []base.Attribute{{
		Name: "prefix", Type: "string",
		Description: `only environment variables starting with this may be read (default "VEIL_")`,
	}}}
}

func (s *envStore) Configure(_ context.Context, configJSON []byte) error {
	var cfg struct {
		Prefix *string `json:"prefix"`
	}
	if err := json.Unmarshal(configJSON, &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	prefix := "VEIL_"
	if cfg.Prefix != nil {
		prefix = *cfg.Prefix
	}
	s.mu.Lock()
	s.prefix = prefix
	s.mu.Unlock()
	return nil
}

func (s *envStore) Health(context.Context) error { return nil }

// lookup returns the variable an "env:NAME" reference names.
func (s *envStore) lookup(ref string) (string, error) {
	name, ok := strings.CutPrefix(ref, "env:")
	if !ok || name == "" {
		return "", fmt.Errorf("reference %q is not env:NAME", ref)
	}
	s.mu.RLock()
	prefix := s.prefix
	s.mu.RUnlock()
	if !strings.HasPrefix(name, prefix) {
		return "", fmt.Errorf("%s does not start with the allowed prefix %q", name, prefix)
	}
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return "", fmt.Errorf("%s: %w", name, keystore.ErrNotFound)
	}
	return v, nil
}

func (s *envStore) Secret(_ context.Context, ref string) ([]byte, error) {
	v, err := s.lookup(ref)
	if err != nil {
		return nil, err
	}
	return []byte(v), nil
}

func (s *envStore) signer(ref string) (crypto.Signer, error) {
	v, err := s.lookup(ref)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode([]byte(v))
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("the variable holds no PEM PKCS#8 private key")
	}
	key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", key)
	}
	return signer, nil
}

func (s *envStore) Public(_ context.Context, ref string) (crypto.PublicKey, error) {
	k, err := s.signer(ref)
	if err != nil {
		return nil, err
	}
	return k.Public(), nil
}

func (s *envStore) Sign(_ context.Context, ref string, digest []byte, opts keystore.SignOptions) ([]byte, error) {
	k, err := s.signer(ref)
	if err != nil {
		return nil, err
	}
	if opts.Hash != 0 && len(digest) != opts.Hash.Size() {
		return nil, fmt.Errorf("digest of %d bytes does not match hash %v", len(digest), opts.Hash)
	}
	return k.Sign(rand.Reader, digest, keystore.GoSignerOpts(opts))
}

func main() {
	keystore.Serve(&envStore{prefix: "VEIL_"})
}
