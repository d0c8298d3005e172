// Package vault is the bundled keystore for "vault:" references: private
// keys that stay in HashiCorp Vault's transit engine (Vault signs, veild
// sends digests) and secrets in a KV version 2 engine. It logs in with a
// token from a file or with AppRole, renews its token while it can and logs
// in again when Vault refuses it. See README.md.
package vault

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/veil-ipsec/veil/plugins/keystore/file"
	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/keystore"
)

// Prefix of the references this store resolves.
const Prefix = "vault:"

// maxReply bounds how much of a Vault reply is read.
const maxReply = 1 << 20

// Store is the Vault keystore. Public keys are cached per reference until
// the next Configure, with the key version they belong to: Sign asks Vault
// for that version, so a key rotated in Vault does not make veild's
// signatures disagree with the public key it already holds.
type Store struct {
	mu   sync.Mutex
	conn *conn
	keys map[string]*transitKey
	log  *slog.Logger
}

// New returns the Vault keystore (bundled as keystore/vault).
func New() *Store {
	return &Store{log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
}

var _ keystore.Store = (*Store)(nil)

func (s *Store) Info() base.Info {
	return base.Info{Name: "vault", Kind: base.KindKeystore, Version: "1.0.0"}
}

func (s *Store) ConfigSchema() base.Schema {
	return base.Schema{
		Attributes: []base.Attribute{
			{Name: "address", Type: "string", Required: true,
				Description: `Vault's address: "https://vault.example:8200"; http:// only to a loopback address; unix:///path for a local agent`},
			{Name: "ca_cert", Type: "string", Description: "PEM file of the CA certificates that verify Vault's TLS certificate (default: the system's)"},
			{Name: "namespace", Type: "string", Description: "Vault Enterprise namespace"},
			{Name: "token_file", Type: "string", Description: "file (mode 0600) holding a Vault token; re-read when Vault refuses the token"},
		},
		Blocks: []base.Block{{
			Name:        "approle",
			Description: "log in with AppRole instead of a token file",
			Body: base.Schema{Attributes: []base.Attribute{
				{Name: "role_id", Type: "string", Required: true, Description: "the role's role_id"},
				{Name: "secret_id_file", Type: "string", Required: true, Description: "file (mode 0600) holding the secret_id"},
				{Name: "mount", Type: "string", Description: `where the AppRole auth method is mounted ("approle")`},
			}},
		}},
	}
}

// Config is the plugin's config block.
type Config struct {
	Address   string  `json:"address"`
	CACert    *string `json:"ca_cert"`
	Namespace *string `json:"namespace"`
	TokenFile *string `json:"token_file"`
	AppRole   *struct {
		RoleID       string  `json:"role_id"`
		SecretIDFile string  `json:"secret_id_file"`
		Mount        *string `json:"mount"`
	} `json:"approle"`
}

// Configure checks the config, logs in and replaces the previous
// connection; cached public keys are dropped.
func (s *Store) Configure(ctx context.Context, configJSON []byte) error {
	var cfg Config
	if err := json.Unmarshal(configJSON, &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	c, err := newConn(cfg, s.log)
	if err != nil {
		return err
	}
	if err := c.login(ctx); err != nil {
		c.close()
		return err
	}
	s.mu.Lock()
	old := s.conn
	s.conn, s.keys = c, nil
	s.mu.Unlock()
	if old != nil {
		old.close()
	}
	return nil
}

func (s *Store) current() (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil, errors.New("vault keystore is not configured: add a plugin \"keystore\" \"vault\" block with config { address = ... }")
	}
	return s.conn, nil
}

// Health looks up the plugin's own token: Vault answers and takes it.
func (s *Store) Health(ctx context.Context) error {
	c, err := s.current()
	if err != nil {
		return err
	}
	_, err = c.call(ctx, http.MethodGet, "auth/token/lookup-self", nil)
	if err != nil {
		return fmt.Errorf("vault at %s: %w", c.addr, err)
	}
	return nil
}

// Ref is a parsed "vault:MOUNT/NAME" reference; Field is what follows '#'.
type Ref struct {
	Mount, Name, Field string
}

// ParseRef splits a reference. For transit keys (no '#') the mount is all
// before the last '/', since key names have no '/'. For KV secrets
// ("vault:MOUNT/PATH#FIELD") the mount is the first path segment.
func ParseRef(ref string) (Ref, error) {
	rest, ok := strings.CutPrefix(ref, Prefix)
	if !ok {
		return Ref{}, fmt.Errorf("reference %q is not a vault: reference", ref)
	}
	var r Ref
	var hasField bool
	rest, r.Field, hasField = strings.Cut(rest, "#")
	if hasField && r.Field == "" {
		return Ref{}, fmt.Errorf("reference %q: nothing after '#' (vault:MOUNT/PATH#FIELD)", ref)
	}
	var i int
	if hasField {
		i = strings.IndexByte(rest, '/')
	} else {
		i = strings.LastIndexByte(rest, '/')
	}
	if i <= 0 || i == len(rest)-1 {
		return Ref{}, fmt.Errorf("reference %q is not vault:MOUNT/KEY (transit) or vault:MOUNT/PATH#FIELD (KV)", ref)
	}
	r.Mount, r.Name = rest[:i], rest[i+1:]
	for _, seg := range strings.Split(rest, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, "?\x00\r\n") {
			return Ref{}, fmt.Errorf("reference %q has an invalid path segment %q", ref, seg)
		}
	}
	return r, nil
}

// Secret reads one field of a KV version 2 secret:
// "vault:secret/veil/ppk#value" is field "value" of secret/data/veil/ppk.
func (s *Store) Secret(ctx context.Context, ref string) ([]byte, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	if r.Field == "" {
		return nil, fmt.Errorf("reference %q names no field: secrets are vault:MOUNT/PATH#FIELD in a KV version 2 engine", ref)
	}
	c, err := s.current()
	if err != nil {
		return nil, err
	}
	sec, err := c.call(ctx, http.MethodGet, r.Mount+"/data/"+r.Name, nil)
	if err != nil {
		return nil, refError(ref, err)
	}
	data, _ := sec.Data["data"].(map[string]any)
	if data == nil {
		// A KV version 1 engine answers with the fields directly.
		if _, v1 := sec.Data[r.Field]; v1 {
			return nil, fmt.Errorf("%s: %s is a KV version 1 engine; the vault keystore reads KV version 2 (vault secrets enable -version=2 kv)", ref, r.Mount)
		}
		return nil, fmt.Errorf("%s: %w (deleted, or not a KV version 2 secret)", ref, keystore.ErrNotFound)
	}
	v, ok := data[r.Field]
	if !ok {
		return nil, fmt.Errorf("%s: the secret has no field %q: %w", ref, r.Field, keystore.ErrNotFound)
	}
	str, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("%s: field %q is not a string", ref, r.Field)
	}
	if len(str) == 0 || len(str) > keystore.MaxSecretLen {
		return nil, fmt.Errorf("%s: field %q is %d bytes (1-%d allowed)", ref, r.Field, len(str), keystore.MaxSecretLen)
	}
	return []byte(str), nil
}

// transitKey is a transit key's latest version when first read.
type transitKey struct {
	typ     string
	version int
	pub     crypto.PublicKey
}

func (s *Store) key(ctx context.Context, ref string) (*conn, Ref, *transitKey, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return nil, r, nil, err
	}
	if r.Field != "" {
		return nil, r, nil, fmt.Errorf("reference %q: signing keys are vault:MOUNT/KEY in a transit engine, without '#'", ref)
	}
	c, err := s.current()
	if err != nil {
		return nil, r, nil, err
	}
	s.mu.Lock()
	k, ok := s.keys[ref]
	s.mu.Unlock()
	if ok {
		return c, r, k, nil
	}
	sec, err := c.call(ctx, http.MethodGet, r.Mount+"/keys/"+r.Name, nil)
	if err != nil {
		return nil, r, nil, refError(ref, err)
	}
	k, err = parseTransitKey(sec.Data)
	if err != nil {
		return nil, r, nil, fmt.Errorf("%s: %w", ref, err)
	}
	s.mu.Lock()
	if s.conn == c {
		if s.keys == nil {
			s.keys = make(map[string]*transitKey)
		}
		s.keys[ref] = k
	}
	s.mu.Unlock()
	return c, r, k, nil
}

// parseTransitKey reads transit/keys/NAME's reply: type, latest_version and
// keys[version].public_key (PEM, or base64 for Ed25519).
func parseTransitKey(d map[string]any) (*transitKey, error) {
	typ, _ := d["type"].(string)
	switch typ {
	case "ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "ed25519", "rsa-2048", "rsa-3072", "rsa-4096":
	case "":
		return nil, errors.New("the reply from Vault has no key type")
	default:
		return nil, fmt.Errorf("a transit key of type %s cannot sign (ecdsa-p256/p384/p521, ed25519 or rsa-2048/3072/4096 can)", typ)
	}
	if d["derived"] == true {
		return nil, errors.New("derived transit keys are not supported (they need a context per signature)")
	}
	version, err := number(d["latest_version"])
	if err != nil || version < 1 {
		return nil, fmt.Errorf("the reply from Vault has no valid latest_version (%v)", d["latest_version"])
	}
	versions, _ := d["keys"].(map[string]any)
	kv, _ := versions[strconv.Itoa(version)].(map[string]any)
	encoded, _ := kv["public_key"].(string)
	if encoded == "" {
		return nil, fmt.Errorf("the reply from Vault has no public key for version %d", version)
	}
	k := &transitKey{typ: typ, version: version}
	if typ == "ed25519" {
		b, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, errors.New("the Ed25519 public key from Vault is not 32 bytes of base64")
		}
		k.pub = ed25519.PublicKey(b)
		return k, nil
	}
	blk, _ := pem.Decode([]byte(encoded))
	if blk == nil {
		return nil, errors.New("the public key from Vault is not PEM")
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("the public key from Vault: %w", err)
	}
	switch pub.(type) {
	case *ecdsa.PublicKey:
		if !strings.HasPrefix(typ, "ecdsa") {
			return nil, fmt.Errorf("the public key from Vault is ECDSA but the key type is %s", typ)
		}
	case *rsa.PublicKey:
		if !strings.HasPrefix(typ, "rsa") {
			return nil, fmt.Errorf("the public key from Vault is RSA but the key type is %s", typ)
		}
	default:
		return nil, fmt.Errorf("the public key from Vault is a %T", pub)
	}
	k.pub = pub
	return k, nil
}

func number(v any) (int, error) {
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		return int(i), err
	case float64:
		return int(n), nil
	}
	return 0, fmt.Errorf("not a number: %T", v)
}

// Public returns the public key of the transit key's latest version (as of
// the first call after Configure).
func (s *Store) Public(ctx context.Context, ref string) (crypto.PublicKey, error) {
	_, _, k, err := s.key(ctx, ref)
	if err != nil {
		return nil, err
	}
	return k.pub, nil
}

// vaultHashes are transit's names for the hashes a digest may be made with.
var vaultHashes = map[crypto.Hash]string{
	crypto.SHA1:   "sha1",
	crypto.SHA224: "sha2-224",
	crypto.SHA256: "sha2-256",
	crypto.SHA384: "sha2-384",
	crypto.SHA512: "sha2-512",
}

// Sign has Vault sign: a digest (prehashed) for ECDSA and RSA, the message
// itself for Ed25519 (opts.Hash 0).
func (s *Store) Sign(ctx context.Context, ref string, digest []byte, opts keystore.SignOptions) ([]byte, error) {
	c, r, k, err := s.key(ctx, ref)
	if err != nil {
		return nil, err
	}
	req := map[string]any{
		"input":       base64.StdEncoding.EncodeToString(digest),
		"key_version": k.version,
	}
	switch k.pub.(type) {
	case ed25519.PublicKey:
		if opts.Hash != 0 || opts.PSS {
			return nil, fmt.Errorf("%s: Ed25519 signs whole messages: hash must be 0", ref)
		}
	case *ecdsa.PublicKey, *rsa.PublicKey:
		name, ok := vaultHashes[opts.Hash]
		if !ok {
			return nil, fmt.Errorf("%s: hash %v is not one transit signs with", ref, opts.Hash)
		}
		if len(digest) != opts.Hash.Size() {
			return nil, fmt.Errorf("%s: digest of %d bytes does not match hash %v", ref, len(digest), opts.Hash)
		}
		req["prehashed"] = true
		req["hash_algorithm"] = name
		if _, isRSA := k.pub.(*rsa.PublicKey); isRSA {
			req["signature_algorithm"] = "pkcs1v15"
			if opts.PSS {
				salt, err := saltLength(opts.SaltLength)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", ref, err)
				}
				req["signature_algorithm"], req["salt_length"] = "pss", salt
			}
		} else {
			if opts.PSS {
				return nil, fmt.Errorf("%s: PSS asked of an ECDSA key", ref)
			}
			req["marshaling_algorithm"] = "asn1"
		}
	}
	sec, err := c.call(ctx, http.MethodPut, r.Mount+"/sign/"+r.Name, req)
	if err != nil {
		return nil, refError(ref, err)
	}
	out, _ := sec.Data["signature"].(string)
	sig, err := decodeSignature(out)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	return sig, nil
}

// saltLength is transit's salt_length for Go's rsa.PSSOptions.SaltLength.
func saltLength(n int) (string, error) {
	switch {
	case n == rsa.PSSSaltLengthEqualsHash:
		return "hash", nil
	case n == rsa.PSSSaltLengthAuto:
		return "auto", nil
	case n > 0:
		return strconv.Itoa(n), nil
	}
	return "", fmt.Errorf("PSS salt length %d is not valid", n)
}

// decodeSignature turns transit's "vault:vN:BASE64" into the raw signature.
func decodeSignature(s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(s, "vault:v")
	ver, b64, ok2 := strings.Cut(rest, ":")
	if _, err := strconv.Atoi(ver); !ok || !ok2 || err != nil {
		return nil, errors.New("the reply from Vault has no signature in the form vault:vN:BASE64")
	}
	sig, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(sig) == 0 {
		return nil, errors.New("the signature from Vault is not base64")
	}
	return sig, nil
}

// refError names the reference with what Vault said.
func refError(ref string, err error) error {
	var ve *vaultError
	if errors.As(err, &ve) && ve.status == http.StatusNotFound {
		if strings.Contains(strings.Join(ve.msgs, " "), "no handler for route") {
			return fmt.Errorf("%s: no secrets engine is mounted there: %w (%v)", ref, keystore.ErrNotFound, err)
		}
		return fmt.Errorf("%s: %w (%v)", ref, keystore.ErrNotFound, err)
	}
	return fmt.Errorf("%s: %w", ref, err)
}

// vaultError is an error reply from Vault.
type vaultError struct {
	status int
	msgs   []string
}

func (e *vaultError) Error() string {
	var parts []string
	for _, m := range e.msgs {
		// Vault wraps several errors as "2 errors occurred:\n\t* a\n\t* b".
		if _, list, ok := strings.Cut(m, "occurred:"); ok {
			for _, item := range strings.Split(list, "*") {
				if item = strings.Join(strings.Fields(item), " "); item != "" {
					parts = append(parts, item)
				}
			}
			continue
		}
		parts = append(parts, strings.Join(strings.Fields(m), " "))
	}
	msg := strings.Join(parts, "; ")
	switch {
	case msg == "" && e.status == http.StatusNotFound:
		msg = "no such key or secret"
	case msg == "":
		msg = http.StatusText(e.status)
	}
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	return fmt.Sprintf("vault: %s (HTTP %d)", msg, e.status)
}

// conn is a Vault client for one configuration, with its login method.
type conn struct {
	addr   string
	client *api.Client
	cfg    Config
	log    *slog.Logger

	loginMu sync.Mutex
	epoch   int // counts logins, so concurrent 403s log in once
	stop    func()
}

func newConn(cfg Config, log *slog.Logger) (*conn, error) {
	if cfg.Address == "" {
		return nil, errors.New(`address is required: plugin "keystore" "vault" { config { address = "https://..." } }`)
	}
	u, err := url.Parse(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("address %q is not a URL like https://vault.example:8200", cfg.Address)
	}
	switch u.Scheme {
	case "https":
	case "http":
		// The token would cross the network in the clear.
		if ip := net.ParseIP(u.Hostname()); (ip == nil || !ip.IsLoopback()) && u.Hostname() != "localhost" {
			return nil, fmt.Errorf("address %q: http:// only to a loopback address; use https://", cfg.Address)
		}
	case "unix":
	default:
		return nil, fmt.Errorf("address %q: the scheme must be https, http (loopback) or unix", cfg.Address)
	}
	switch {
	case cfg.TokenFile != nil && cfg.AppRole != nil:
		return nil, errors.New("set token_file or an approle block, not both")
	case cfg.TokenFile == nil && cfg.AppRole == nil:
		return nil, errors.New("no login method: set token_file or an approle block")
	case cfg.AppRole != nil && cfg.AppRole.RoleID == "":
		return nil, errors.New("approle: role_id is empty")
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CACert != nil {
		pemBytes, err := os.ReadFile(*cfg.CACert)
		if err != nil {
			return nil, fmt.Errorf("ca_cert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("ca_cert: no PEM certificate in %s", *cfg.CACert)
		}
		tlsConf.RootCAs = pool
	}
	// The transport is built here rather than from api.DefaultConfig, which
	// reads VAULT_* variables from veild's environment (VAULT_SKIP_VERIFY
	// among them): the config block alone says where and how to connect.
	hc := &http.Client{
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSClientConfig:     tlsConf,
			TLSHandshakeTimeout: 10 * time.Second,
			IdleConnTimeout:     90 * time.Second,
			MaxIdleConnsPerHost: 16,
		},
		// Vault's client follows Vault's redirects itself.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	client, err := api.NewClient(&api.Config{Address: cfg.Address, HttpClient: hc, MaxRetries: 1, Timeout: time.Minute})
	if err != nil {
		return nil, fmt.Errorf("address %q: %v", cfg.Address, err)
	}
	client.ClearToken() // NewClient takes VAULT_TOKEN from the environment
	client.ClearNamespace()
	if cfg.Namespace != nil {
		client.SetNamespace(*cfg.Namespace)
	}
	return &conn{addr: cfg.Address, client: client, cfg: cfg, log: log, stop: func() {}}, nil
}

func (c *conn) close() {
	c.loginMu.Lock()
	c.stop()
	c.stop = func() {}
	c.loginMu.Unlock()
}

// call sends one request. When Vault answers 403 and the token is no
// longer valid (expired or revoked, not merely outside its policy), it
// logs in again, once, and retries.
func (c *conn) call(ctx context.Context, method, path string, body map[string]any) (*api.Secret, error) {
	c.loginMu.Lock()
	epoch := c.epoch
	c.loginMu.Unlock()
	sec, err := c.do(ctx, c.client, method, path, body)
	var ve *vaultError
	if errors.As(err, &ve) && ve.status == http.StatusForbidden {
		if path != "auth/token/lookup-self" {
			if _, lerr := c.do(ctx, c.client, http.MethodGet, "auth/token/lookup-self", nil); lerr == nil {
				return nil, err // the policy does not allow it
			}
		}
		if lerr := c.relogin(ctx, epoch); lerr != nil {
			return nil, fmt.Errorf("%w; logging in again: %v", err, lerr)
		}
		sec, err = c.do(ctx, c.client, method, path, body)
	}
	return sec, err
}

func (c *conn) do(ctx context.Context, client *api.Client, method, path string, body map[string]any) (*api.Secret, error) {
	var resp *api.Response
	var err error
	if method == http.MethodGet {
		resp, err = client.Logical().ReadRawWithContext(ctx, path)
	} else {
		var b []byte
		if b, err = json.Marshal(body); err != nil {
			return nil, err
		}
		resp, err = client.Logical().WriteRawWithContext(ctx, path, b)
	}
	if resp != nil && resp.Body != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		var re *api.ResponseError
		if errors.As(err, &re) {
			return nil, &vaultError{status: re.StatusCode, msgs: re.Errors}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("vault did not answer in time: %w", ctx.Err())
		}
		return nil, fmt.Errorf("vault: %w", err)
	}
	if resp == nil {
		return nil, errors.New("vault: no reply")
	}
	sec, err := api.ParseSecret(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return nil, fmt.Errorf("vault: the reply is not JSON: %v", err)
	}
	if sec == nil {
		return nil, &vaultError{status: http.StatusNotFound}
	}
	if sec.Data == nil {
		sec.Data = map[string]any{}
	}
	return sec, nil
}

// relogin logs in again unless another call already did since epoch.
func (c *conn) relogin(ctx context.Context, epoch int) error {
	c.loginMu.Lock()
	defer c.loginMu.Unlock()
	if c.epoch != epoch {
		return nil
	}
	return c.loginLocked(ctx)
}

func (c *conn) login(ctx context.Context) error {
	c.loginMu.Lock()
	defer c.loginMu.Unlock()
	return c.loginLocked(ctx)
}

// loginLocked gets a token (from the file, or an AppRole login), checks it
// with lookup-self and starts renewing it if it is renewable.
func (c *conn) loginLocked(ctx context.Context) error {
	c.stop()
	c.stop = func() {}
	c.epoch++
	var auth *api.SecretAuth
	if c.cfg.TokenFile != nil {
		tok, err := readSecretFile("token_file", *c.cfg.TokenFile)
		if err != nil {
			return err
		}
		c.client.SetToken(string(tok))
		clear(tok)
		sec, err := c.do(ctx, c.client, http.MethodGet, "auth/token/lookup-self", nil)
		var ve *vaultError
		if errors.As(err, &ve) {
			return fmt.Errorf("vault at %s refuses the token in %s: %w", c.addr, *c.cfg.TokenFile, err)
		}
		if err != nil {
			return fmt.Errorf("cannot reach vault at %s: %w", c.addr, err)
		}
		ttl, _ := number(sec.Data["ttl"])
		renewable, _ := sec.Data["renewable"].(bool)
		auth = &api.SecretAuth{ClientToken: c.client.Token(), Renewable: renewable, LeaseDuration: ttl}
	} else {
		ar := c.cfg.AppRole
		sid, err := readSecretFile("approle secret_id_file", ar.SecretIDFile)
		if err != nil {
			return err
		}
		mount := "approle"
		if ar.Mount != nil && *ar.Mount != "" {
			mount = strings.Trim(*ar.Mount, "/")
		}
		// The login request carries no token: an expired one would be refused.
		anon, err := c.client.Clone()
		if err != nil {
			clear(sid)
			return err
		}
		// A clone copies neither headers (the namespace is one) and takes
		// VAULT_TOKEN and VAULT_NAMESPACE from the environment, as NewClient.
		anon.ClearToken()
		anon.ClearNamespace()
		if c.cfg.Namespace != nil {
			anon.SetNamespace(*c.cfg.Namespace)
		}
		sec, err := c.do(ctx, anon, http.MethodPut, "auth/"+mount+"/login", map[string]any{
			"role_id": ar.RoleID, "secret_id": string(sid),
		})
		clear(sid)
		if err != nil {
			return fmt.Errorf("vault at %s: AppRole login (auth/%s, role_id %s) failed: %w", c.addr, mount, ar.RoleID, err)
		}
		if sec.Auth == nil || sec.Auth.ClientToken == "" {
			return fmt.Errorf("vault at %s: AppRole login gave no token", c.addr)
		}
		auth = sec.Auth
		c.client.SetToken(auth.ClientToken)
	}
	if auth.Renewable && auth.LeaseDuration > 0 {
		c.watch(auth)
	}
	return nil
}

// watch renews the token before it expires; when it can no longer be
// renewed (max TTL), the next call that Vault refuses logs in again.
func (c *conn) watch(auth *api.SecretAuth) {
	w, err := c.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: &api.Secret{Auth: auth}})
	if err != nil {
		c.log.Warn("vault: not renewing the token", "err", err)
		return
	}
	go w.Start()
	done := make(chan struct{})
	c.stop = func() { close(done); w.Stop() }
	go func() {
		for {
			select {
			case <-done:
				return
			case <-w.RenewCh():
			case err := <-w.DoneCh():
				if err != nil {
					c.log.Warn("vault: token renewal stopped; logging in again when Vault refuses the token", "err", err)
				}
				return
			}
		}
	}()
}

// readSecretFile reads a token or secret_id file as the file keystore
// reads secrets: an absolute path to a file only its owner can read.
func readSecretFile(what, path string) ([]byte, error) {
	b, err := file.ReadSecret(file.Prefix + path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if bytes.ContainsAny(b, "\r\n\x00 ") {
		clear(b)
		return nil, fmt.Errorf("%s: %s holds more than one line or spaces; it must hold only the value", what, path)
	}
	return b, nil
}
