// Package eap is the bundled auth plugin for EAP inside IKEv2 (RFC 7296
// §2.16): EAP-MSCHAPv2, EAP-TLS and EAP-MD5 (lab only), as EAP server (veil
// is the responder and checks the peer) and as EAP client (veil is the
// initiator and proves itself to the gateway). The server checks passwords
// from local secrets (keystore references per EAP identity) or relays the
// conversation to a RADIUS server. The host derives the IKE AUTH payloads
// from the MSK, so Make and Verify are not used. See README.md.
package eap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/veil-ipsec/veil/plugins/keystore/file"
	"github.com/veil-ipsec/veil/sdk/auth"
	"github.com/veil-ipsec/veil/sdk/base"
)

// Config is the plugin's configuration: the operator's plugin block plus
// Connections, which the daemon fills in from the connections that use EAP.
type Config struct {
	RADIUSServer  string            `json:"radius_server"`
	RADIUSSecret  string            `json:"radius_secret"`
	RADIUSTimeout string            `json:"radius_timeout"`
	Users         map[string]string `json:"users"` // EAP identity -> password reference
	AllowMD5      bool              `json:"allow_md5"`

	Connections map[string]ConnConfig `json:"connections"`
	// Resolved maps the references veild resolved through keystore
	// plugins (vault:, pkcs11:, ...) to their secrets (base64 in JSON).
	// It is not in the schema: only veild fills it in.
	Resolved map[string][]byte `json:"resolved,omitempty"`
}

// ConnConfig is one connection's side of the conversation. As a client:
// our EAP identity (empty: the IKE identity), the password reference, or
// certificate and key for EAP-TLS, and the CAs for the server's
// certificate. As a server: the expected identity ("%any" or empty: any),
// our EAP-TLS certificate and key, and the CAs for client certificates.
type ConnConfig struct {
	Method      string   `json:"method"`
	EAPID       string   `json:"eap_id"`
	Secret      string   `json:"secret"`
	Certificate string   `json:"certificate"`
	Key         string   `json:"key"`
	CACerts     []string `json:"cacerts"`
}

// conn is a connection's resolved credentials.
type conn struct {
	method   string
	eapID    string
	password []byte
	cert     *tls.Certificate
	roots    *x509.CertPool
	tlsErr   error // why EAP-TLS is unavailable to an "eap" connection
}

// Plugin is the EAP authenticator.
type Plugin struct {
	mu       sync.RWMutex
	users    map[string][]byte
	allowMD5 bool
	radius   *radiusConfig
	conns    map[string]*conn
}

// New returns the EAP plugin (bundled as auth/eap).
func New() *Plugin { return &Plugin{} }

var _ auth.EAPAuthenticator = (*Plugin)(nil)

func (p *Plugin) Info() base.Info {
	return base.Info{Name: "eap", Kind: base.KindAuth, Version: "1.0.0"}
}

func (p *Plugin) ConfigSchema() base.Schema {
	return base.Schema{Attributes: []base.Attribute{
		{Name: "radius_server", Type: "string", Description: `RADIUS server "host:port" the EAP server relays to (instead of local users)`},
		{Name: "radius_secret", Type: "string", Description: `RADIUS shared secret reference ("file:/etc/veil/radius.secret")`},
		{Name: "radius_timeout", Type: "string", Description: `time to wait for a RADIUS answer ("3s")`},
		{Name: "users", Type: "map(string)", Description: `EAP identity -> password reference ("file:/etc/veil/users/alice")`},
		{Name: "allow_md5", Type: "bool", Description: "allow EAP-MD5 (no key, no server authentication: labs only)"},
	}}
}

var methods = map[string]bool{"eap": true, "eap-mschapv2": true, "eap-tls": true, "eap-md5": true}

// Configure resolves every reference now, so a missing password or a bad
// certificate is a configuration error at start-up, not a failed login.
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
	users := map[string][]byte{}
	conns := map[string]*conn{}
	var rc *radiusConfig
	fail := func(err error) error {
		for _, pw := range users {
			clear(pw)
		}
		for _, c := range conns {
			clear(c.password)
		}
		if rc != nil {
			clear(rc.Secret)
		}
		return err
	}
	for id, ref := range cfg.Users {
		pw, err := file.ResolveSecret(ref, cfg.Resolved)
		if err != nil {
			return fail(fmt.Errorf("password of EAP user %q: %w", id, err))
		}
		users[id] = pw
	}
	if cfg.RADIUSServer != "" {
		rc = &radiusConfig{Server: cfg.RADIUSServer, Timeout: 3 * time.Second}
		if cfg.RADIUSSecret == "" {
			return fail(errors.New("radius_server is set but radius_secret is not"))
		}
		secret, err := file.ResolveSecret(cfg.RADIUSSecret, cfg.Resolved)
		if err != nil {
			return fail(fmt.Errorf("radius_secret: %w", err))
		}
		rc.Secret = secret
		if cfg.RADIUSTimeout != "" {
			d, err := time.ParseDuration(cfg.RADIUSTimeout)
			if err != nil || d <= 0 {
				return fail(fmt.Errorf("radius_timeout %q is not a positive duration such as \"3s\"", cfg.RADIUSTimeout))
			}
			rc.Timeout = d
		}
	} else if cfg.RADIUSSecret != "" || cfg.RADIUSTimeout != "" {
		return fail(errors.New("radius_secret and radius_timeout need radius_server"))
	}
	for name, cc := range cfg.Connections {
		c, err := loadConn(cc, cfg.Resolved)
		if err != nil {
			return fail(fmt.Errorf("connection %q: %w", name, err))
		}
		conns[name] = c
		if c.method == "eap-md5" && !cfg.AllowMD5 {
			return fail(fmt.Errorf("connection %q: EAP-MD5 has no key and does not authenticate the server; set allow_md5 = true in the eap plugin block to use it in a lab", name))
		}
	}
	p.mu.Lock()
	for _, pw := range p.users {
		clear(pw)
	}
	for _, c := range p.conns {
		clear(c.password)
	}
	if p.radius != nil {
		clear(p.radius.Secret)
	}
	p.users, p.conns, p.radius, p.allowMD5 = users, conns, rc, cfg.AllowMD5
	p.mu.Unlock()
	return nil
}

func loadConn(cc ConnConfig, resolved map[string][]byte) (*conn, error) {
	if !methods[cc.Method] {
		return nil, fmt.Errorf("method %q is not an EAP method (eap, eap-mschapv2, eap-tls, eap-md5)", cc.Method)
	}
	c := &conn{method: cc.Method, eapID: cc.EAPID}
	if cc.Secret != "" {
		pw, err := file.ResolveSecret(cc.Secret, resolved)
		if err != nil {
			return nil, fmt.Errorf("EAP password: %w", err)
		}
		c.password = pw
	}
	// The certificate, key and CAs are the connection's IKE ones too: only
	// EAP-TLS needs them here. With "eap" they are optional, so a key this
	// plugin cannot read (pkcs11:, vault:) just leaves EAP-TLS out.
	if cc.Method != "eap-tls" && cc.Method != "eap" {
		return c, nil
	}
	cert, roots, err := loadTLS(cc)
	if err != nil {
		if cc.Method == "eap-tls" {
			clear(c.password)
			return nil, err
		}
		c.tlsErr = err
		return c, nil
	}
	c.cert, c.roots = cert, roots
	return c, nil
}

func loadTLS(cc ConnConfig) (*tls.Certificate, *x509.CertPool, error) {
	var cert *tls.Certificate
	if cc.Certificate != "" || cc.Key != "" {
		if cc.Certificate == "" || cc.Key == "" {
			return nil, nil, errors.New("EAP-TLS needs both certificate and key")
		}
		var err error
		if cert, err = loadKeyPair(cc.Certificate, cc.Key); err != nil {
			return nil, nil, err
		}
	}
	if len(cc.CACerts) == 0 {
		return cert, nil, nil
	}
	pool := x509.NewCertPool()
	for _, path := range cc.CACerts {
		path = strings.TrimPrefix(path, file.Prefix)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, fmt.Errorf("CA certificates: %w", err)
		}
		if pool.AppendCertsFromPEM(b) {
			continue
		}
		certs, err := x509.ParseCertificates(b) // DER
		if err != nil || len(certs) == 0 {
			return nil, nil, fmt.Errorf("CA certificates: %s holds no PEM or DER certificate", path)
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
	}
	return cert, pool, nil
}

func loadKeyPair(certPath, keyRef string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(strings.TrimPrefix(certPath, file.Prefix))
	if err != nil {
		return nil, fmt.Errorf("EAP-TLS certificate: %w", err)
	}
	keyPEM, err := file.ResolveSecret(keyRef, nil) // a TLS key comes from a file
	if err != nil {
		return nil, fmt.Errorf("EAP-TLS key: %w", err)
	}
	defer clear(keyPEM)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("EAP-TLS certificate %s and key %s: %w", certPath, keyRef, err)
	}
	return &cert, nil
}

func (p *Plugin) Health(context.Context) error { return nil }

var errConversation = errors.New("EAP connections are authenticated by the conversation, not by Make/Verify")

func (p *Plugin) Make(context.Context, *auth.Request) (*auth.Result, error) {
	return nil, errConversation
}

func (p *Plugin) Verify(context.Context, *auth.Request) error { return errConversation }

// StartEAP begins a conversation for one IKE_AUTH exchange.
func (p *Plugin) StartEAP(_ context.Context, req *auth.EAPRequest) (auth.EAPSession, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	c := p.conns[req.Connection]
	method := req.Method
	if method == "" && c != nil {
		method = c.method
	}
	if !methods[method] {
		return nil, fmt.Errorf("auth %q is not an EAP method (eap, eap-mschapv2, eap-tls, eap-md5)", method)
	}
	if method == "eap-md5" && !p.allowMD5 {
		return nil, errors.New("EAP-MD5 is refused: it has no key and does not authenticate the server (allow_md5 = true allows it in labs)")
	}
	if req.Server {
		if p.radius != nil {
			rc := *p.radius
			rc.Secret = append([]byte(nil), p.radius.Secret...)
			if c != nil {
				rc.EAPID = c.eapID
			}
			return newRADIUSSession(&rc, req)
		}
		return p.newServer(req, method, c)
	}
	if c == nil {
		return nil, fmt.Errorf("connection %q has no EAP client credentials", req.Connection)
	}
	return p.newClient(req, method, c)
}

// identityText is how an IKE identity reads as an EAP identity.
func identityText(id auth.Identity) string {
	switch id.Type {
	case 1, 5: // ID_IPV4_ADDR, ID_IPV6_ADDR
		if a, ok := netip.AddrFromSlice(id.Data); ok {
			return a.String()
		}
	}
	return string(id.Data)
}
