// Package psk is the bundled auth plugin for pre-shared keys: the AUTH
// payload of RFC 7296 §2.15 with method 2 (Shared Key Message Integrity
// Code),
//
//	AUTH = prf( prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>)
//
// with the negotiated PRF. Keys are named by keystore references in the
// plugin's config, per peer identity; file: references are read by this
// plugin itself (the secret never crosses another channel), other schemes
// are resolved by veild through the keystore plugin of that scheme and
// handed over in Config.Resolved. See README.md.
package psk

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"net/netip"
	"os"
	"sync"

	"github.com/veil-ipsec/veil/plugins/keystore/file"
	"github.com/veil-ipsec/veil/sdk/auth"
	"github.com/veil-ipsec/veil/sdk/base"
)

// MethodSharedKey is AUTH method 2 (RFC 7296 §3.8).
const MethodSharedKey = 2

// Key length rules: shorter than MinKeyLen is refused, shorter than
// GoodKeyLen is accepted with a warning (RFC 7296 §2.15 asks for keys as
// strong as the negotiated PRF's key).
const (
	MinKeyLen  = 16
	GoodKeyLen = 32
)

const keyPad = "Key Pad for IKEv2"

// PRF transform IDs (RFC 7296 §3.3.2) this plugin computes.
var prfs = map[uint16]func() hash.Hash{
	5: sha256.New, // PRF_HMAC_SHA2_256
	6: sha512.New384,
	7: sha512.New,
}

// Config is the plugin's config block.
type Config struct {
	// Secrets maps a peer identity (as text: an address, FQDN, e-mail
	// address or hex key ID) to a key reference; "*" matches any peer.
	Secrets map[string]string `json:"secrets"`
	// Resolved maps a reference veild resolved through a keystore plugin
	// (vault:, pkcs11:, ...) to its secret (base64 in JSON). It is not
	// in the schema, so an operator cannot write a secret here: only veild
	// fills it in, from the keystore.
	Resolved map[string][]byte `json:"resolved,omitempty"`
}

// Plugin is the PSK authenticator.
type Plugin struct {
	log *slog.Logger

	mu   sync.RWMutex
	keys map[string][]byte // identity text -> secret
}

// New returns the PSK plugin (bundled as auth/psk). It logs warnings to
// stderr, which the host shows in its own log.
func New() *Plugin {
	return &Plugin{log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
}

var _ auth.Authenticator = (*Plugin)(nil)

func (p *Plugin) Info() base.Info {
	return base.Info{Name: "psk", Kind: base.KindAuth, Version: "1.0.0"}
}

func (p *Plugin) ConfigSchema() base.Schema {
	return base.Schema{Attributes: []base.Attribute{{
		Name: "secrets", Type: "map(string)", Required: true,
		Description: `peer identity -> key reference ("file:/etc/veil/peer.psk"); "*" matches any peer`,
	}}}
}

// Configure resolves every reference now, so a missing or weak key is a
// configuration error at start-up, not a failed handshake later.
func (p *Plugin) Configure(_ context.Context, configJSON []byte) error {
	var cfg Config
	if err := json.Unmarshal(configJSON, &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer func() {
		for _, b := range cfg.Resolved {
			clear(b)
		}
	}()
	keys := make(map[string][]byte, len(cfg.Secrets))
	fail := func(err error) error {
		for _, k := range keys {
			clear(k)
		}
		return err
	}
	for id, ref := range cfg.Secrets {
		secret, err := file.ResolveSecret(ref, cfg.Resolved)
		if err != nil {
			return fail(fmt.Errorf("secret for %q: %w", id, err))
		}
		if len(secret) < MinKeyLen {
			clear(secret)
			return fail(fmt.Errorf("secret for %q (%s) is %d bytes; at least %d are required, %d recommended", id, ref, len(secret), MinKeyLen, GoodKeyLen))
		}
		if len(secret) < GoodKeyLen {
			p.log.Warn("pre-shared key is short; 32 bytes or more recommended", "peer", id, "ref", ref, "bytes", len(secret))
		}
		keys[id] = secret
	}
	p.mu.Lock()
	for _, k := range p.keys {
		clear(k)
	}
	p.keys = keys
	p.mu.Unlock()
	return nil
}

func (p *Plugin) Health(context.Context) error { return nil }

// IdentityText is how an identity is written in the secrets map.
func IdentityText(id auth.Identity) string {
	switch id.Type {
	case 1, 5: // ID_IPV4_ADDR, ID_IPV6_ADDR
		if a, ok := netip.AddrFromSlice(id.Data); ok {
			return a.String()
		}
	case 2, 3: // ID_FQDN, ID_RFC822_ADDR
		return string(id.Data)
	}
	return hex.EncodeToString(id.Data)
}

// compute returns the AUTH data for req with the key shared with the peer.
func (p *Plugin) compute(req *auth.Request) ([]byte, error) {
	newHash, ok := prfs[req.PRF]
	if !ok {
		return nil, fmt.Errorf("PRF transform %d is not supported (5, 6, 7: HMAC-SHA2-256/384/512)", req.PRF)
	}
	if len(req.SignedOctets) == 0 {
		return nil, errors.New("nothing to sign")
	}
	peer := IdentityText(req.RemoteID)
	p.mu.RLock()
	defer p.mu.RUnlock()
	secret, ok := p.keys[peer]
	if !ok {
		if secret, ok = p.keys["*"]; !ok {
			return nil, fmt.Errorf("no pre-shared key for peer %q", peer)
		}
	}
	m := hmac.New(newHash, secret)
	m.Write([]byte(keyPad))
	padded := m.Sum(nil)
	defer clear(padded)
	m = hmac.New(newHash, padded)
	m.Write(req.SignedOctets)
	return m.Sum(nil), nil
}

// Make computes this side's AUTH. RemoteID is the peer whose key is used.
func (p *Plugin) Make(_ context.Context, req *auth.Request) (*auth.Result, error) {
	data, err := p.compute(req)
	if err != nil {
		return nil, err
	}
	return &auth.Result{Method: MethodSharedKey, Data: data}, nil
}

// Verify checks the peer's AUTH in constant time.
func (p *Plugin) Verify(_ context.Context, req *auth.Request) error {
	if req.Method != MethodSharedKey {
		return fmt.Errorf("peer used AUTH method %d, expected %d (shared key)", req.Method, MethodSharedKey)
	}
	want, err := p.compute(req)
	if err != nil {
		return err
	}
	if !hmac.Equal(want, req.Data) {
		return errors.New("AUTH payload does not match: the peer uses another pre-shared key or identity")
	}
	return nil
}
