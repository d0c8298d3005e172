package daemon

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/zclconf/go-cty/cty"

	"github.com/veil-ipsec/veil/config"
	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/plugins/auth/x509"
)

// pubkeyAuth is the engine's "pubkey" authenticator. It signs our AUTH
// with the connection's key through the keystore (the private key never
// leaves it, nor passes through an auth plugin) and has the x509 plugin
// check the peer's certificate chain, identity, revocation and signature.
type pubkeyAuth struct {
	keys   provider.KeyStore
	verify provider.Authenticator // the x509 plugin

	mu    sync.RWMutex
	local map[string]localCredential // by connection name
}

type localCredential struct {
	keyRef string
	chain  [][]byte // DER, end entity first
}

// setConnections records each pubkey connection's key reference and reads
// its certificate chain.
func (p *pubkeyAuth) setConnections(cfg *config.Config) error {
	local, err := readLocalCredentials(cfg)
	if err != nil {
		return err
	}
	p.use(local)
	return nil
}

func (p *pubkeyAuth) use(local map[string]localCredential) {
	p.mu.Lock()
	p.local = local
	p.mu.Unlock()
}

// readLocalCredentials reads the certificate chain of every connection
// that authenticates itself with a certificate.
func readLocalCredentials(cfg *config.Config) (map[string]localCredential, error) {
	local := map[string]localCredential{}
	for _, c := range cfg.Connections {
		if c.Local.Auth != "pubkey" {
			continue
		}
		certs, err := x509.ReadCertificates(c.Local.Certificate)
		if err != nil {
			return nil, fmt.Errorf("connection %q: certificate %s: %w", c.Name, c.Local.Certificate, err)
		}
		lc := localCredential{keyRef: c.Local.Key}
		for _, crt := range certs {
			lc.chain = append(lc.chain, crt.Raw)
		}
		local[c.Name] = lc
	}
	return local, nil
}

func (p *pubkeyAuth) Make(ctx context.Context, req *provider.AuthRequest) (*provider.AuthResult, error) {
	p.mu.RLock()
	lc, ok := p.local[req.Connection]
	p.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("connection %q has no local certificate and key", req.Connection)
	}
	signer, err := p.keys.Signer(ctx, lc.keyRef)
	if err != nil {
		return nil, err
	}
	hash, err := x509.ChooseHash(signer.Public(), req.SignatureHashes)
	if err != nil {
		return nil, err
	}
	data, method, err := x509.SignedAuthData(signer, req.SignedOctets, hash)
	if err != nil {
		return nil, fmt.Errorf("signing AUTH with %s: %w", lc.keyRef, err)
	}
	return &provider.AuthResult{Method: method, Data: data, Certs: lc.chain}, nil
}

func (p *pubkeyAuth) Verify(ctx context.Context, req *provider.AuthRequest) error {
	return p.verify.Verify(ctx, req)
}

// usesPubkey reports whether any connection authenticates with certificates.
func usesPubkey(cfg *config.Config) bool {
	for _, c := range cfg.Connections {
		if c.Local.Auth == "pubkey" || c.Remote.Auth == "pubkey" {
			return true
		}
	}
	return false
}

// x509Value is the x509 plugin's configuration: the CAs every connection
// trusts for its peers and the strictest revocation policy they ask for,
// unless a plugin "auth" "x509" block says otherwise.
func x509Value(cfg *config.Config) cty.Value {
	for _, p := range cfg.Plugins {
		if p.Kind == "auth" && p.Name == "x509" && p.Value != cty.NilVal && !p.Value.IsNull() {
			return p.Value
		}
	}
	cas := map[string]bool{}
	policy := ""
	rank := map[string]int{"": 0, "off": 1, "prefer": 2, "require": 3}
	for _, c := range cfg.Connections {
		if c.Remote.Auth != "pubkey" {
			continue
		}
		for _, ca := range c.Remote.CACerts {
			cas[ca] = true
		}
		if rank[c.Remote.Revocation] > rank[policy] {
			policy = c.Remote.Revocation
		}
	}
	if policy == "" {
		policy = "prefer"
	}
	list := make([]string, 0, len(cas))
	for ca := range cas {
		list = append(list, ca)
	}
	sort.Strings(list)
	vals := make([]cty.Value, len(list))
	for i, ca := range list {
		vals[i] = cty.StringVal(ca)
	}
	caList := cty.ListValEmpty(cty.String)
	if len(vals) > 0 {
		caList = cty.ListVal(vals)
	}
	return cty.ObjectVal(map[string]cty.Value{"cacerts": caList, "revocation": cty.StringVal(policy)})
}
