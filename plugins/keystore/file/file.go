// Package file is the bundled keystore for "file:/path" references: shared
// secrets in files and PEM private keys (PKCS#8, SEC 1 EC, PKCS#1 RSA).
// Files readable by group or others are refused, as ssh refuses private
// keys: a secret another user can read is not a secret. See README.md.
package file

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/keystore"
)

// Prefix of the references this store resolves.
const Prefix = "file:"

// MaxFileSize bounds what is read from a key file.
const MaxFileSize = 64 << 10

// Store is the file keystore. Parsed private keys are cached by path until
// the next Configure.
type Store struct {
	mu   sync.Mutex
	keys map[string]crypto.Signer
}

// New returns the file keystore (bundled as keystore/file).
func New() *Store { return &Store{} }

var _ keystore.Store = (*Store)(nil)

func (s *Store) Info() base.Info {
	return base.Info{Name: "file", Kind: base.KindKeystore, Version: "1.0.0"}
}

func (s *Store) ConfigSchema() base.Schema { return base.Schema{} }

// Configure drops cached keys, so a reload picks up replaced files.
func (s *Store) Configure(context.Context, []byte) error {
	s.mu.Lock()
	s.keys = nil
	s.mu.Unlock()
	return nil
}

func (s *Store) Health(context.Context) error { return nil }

// Path returns the file a "file:/path" reference names.
func Path(ref string) (string, error) {
	p, ok := strings.CutPrefix(ref, Prefix)
	if !ok {
		return "", fmt.Errorf("reference %q is not a file: reference", ref)
	}
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("reference %q: the path must be absolute", ref)
	}
	return p, nil
}

// ReadPrivate reads path after checking it is a regular file that only its
// owner can read. The caller zeroes the result.
func ReadPrivate(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", path, keystore.ErrNotFound)
		}
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable or writable by group or others (mode %04o); run chmod 600 %s", path, perm, path)
	}
	if st.Size() > MaxFileSize {
		return nil, fmt.Errorf("%s is %d bytes, more than a key file has (limit %d)", path, st.Size(), MaxFileSize)
	}
	b := make([]byte, st.Size())
	n, err := f.ReadAt(b, 0)
	if err != nil && n != len(b) {
		clear(b)
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return b[:n], nil
}

// ReadSecret resolves a file: reference to the secret it holds, without
// one trailing newline (files written by echo or an editor have one).
func ReadSecret(ref string) ([]byte, error) {
	path, err := Path(ref)
	if err != nil {
		return nil, err
	}
	b, err := ReadPrivate(path)
	if err != nil {
		return nil, err
	}
	n := len(b)
	if n > 0 && b[n-1] == '\n' {
		n--
		if n > 0 && b[n-1] == '\r' {
			n--
		}
	}
	if n == 0 {
		clear(b)
		return nil, fmt.Errorf("%s is empty", path)
	}
	return b[:n], nil
}

// ResolveSecret returns a copy of the secret ref names, for auth plugins
// that take secrets from veild: the one veild resolved through a keystore
// plugin (resolved, by reference), else the file a file: reference names.
// An error shows ref only when it looks like a reference, since a value
// without a scheme may be the secret itself.
func ResolveSecret(ref string, resolved map[string][]byte) ([]byte, error) {
	if b, ok := resolved[ref]; ok {
		if len(b) == 0 {
			return nil, fmt.Errorf("reference %q: the keystore returned an empty secret", ref)
		}
		return bytes.Clone(b), nil
	}
	if scheme, _, ok := strings.Cut(ref, ":"); !ok || scheme == "" || strings.ContainsAny(scheme, " /\t") {
		return nil, errors.New("not a key reference (like \"file:/etc/veil/NAME\"); the value is not shown, it may be a secret")
	}
	if !strings.HasPrefix(ref, Prefix) {
		return nil, fmt.Errorf("reference %q: not a file: reference and not resolved by veild through a keystore plugin", ref)
	}
	return ReadSecret(ref)
}

func (s *Store) Secret(_ context.Context, ref string) ([]byte, error) {
	return ReadSecret(ref)
}

func (s *Store) signer(ref string) (crypto.Signer, error) {
	path, err := Path(ref)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	k, ok := s.keys[path]
	s.mu.Unlock()
	if ok {
		return k, nil
	}
	b, err := ReadPrivate(path)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	k, err = ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s.mu.Lock()
	if s.keys == nil {
		s.keys = make(map[string]crypto.Signer)
	}
	s.keys[path] = k
	s.mu.Unlock()
	return k, nil
}

// ParsePrivateKey reads the first PEM private key: PKCS#8 ("PRIVATE KEY"),
// SEC 1 ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY").
func ParsePrivateKey(pemBytes []byte) (crypto.Signer, error) {
	rest := pemBytes
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, errors.New("no PEM private key found")
		}
		var key any
		var err error
		switch blk.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(blk.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("encrypted private keys are not supported; store the key unencrypted with mode 0600 or use another keystore")
		default:
			continue
		}
		clear(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", blk.Type, err)
		}
		switch k := key.(type) {
		case *ecdsa.PrivateKey:
			return k, nil
		case *rsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		}
		return nil, fmt.Errorf("unsupported private key type %T", key)
	}
}

func (s *Store) Public(_ context.Context, ref string) (crypto.PublicKey, error) {
	k, err := s.signer(ref)
	if err != nil {
		return nil, err
	}
	return k.Public(), nil
}

func (s *Store) Sign(_ context.Context, ref string, digest []byte, opts keystore.SignOptions) ([]byte, error) {
	k, err := s.signer(ref)
	if err != nil {
		return nil, err
	}
	if _, ok := k.(ed25519.PrivateKey); ok && opts.Hash != 0 {
		return nil, errors.New("Ed25519 signs whole messages: hash must be 0")
	}
	if h := opts.Hash; h != 0 && (!h.Available() || len(digest) != h.Size()) {
		return nil, fmt.Errorf("digest of %d bytes does not match hash %v", len(digest), h)
	}
	return k.Sign(rand.Reader, digest, keystore.GoSignerOpts(opts))
}
