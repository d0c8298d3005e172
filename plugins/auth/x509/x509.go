// Package x509 is the bundled auth plugin for certificates: it checks a
// peer's signature AUTH (RFC 7427 Digital Signature, method 14; the RFC
// 4754 ECDSA methods 9, 10, 11) against the end-entity certificate of the
// peer's CERT payloads, after building its chain to a configured CA,
// checking validity, key usage, key sizes, the peer's IKE ID and
// revocation (CRL files, CRL distribution points, OCSP).
//
// Our own AUTH is signed by the keystore: private keys never pass through
// this plugin. The engine builds it with SignedAuthData and a keystore
// signer. See README.md.
package x509

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/veil-ipsec/veil/sdk/auth"
	"github.com/veil-ipsec/veil/sdk/base"
)

// Minimum key sizes (RFC 8247 §3.2; NIST SP 800-57).
const (
	MinRSABits = 2048
	MinECBits  = 256
)

// Revocation policies.
const (
	RevocationOff     = "off"
	RevocationPrefer  = "prefer"
	RevocationRequire = "require"
)

// Config is the plugin's config block.
type Config struct {
	CACerts     []string `json:"cacerts"`
	Revocation  *string  `json:"revocation"`
	CRLs        []string `json:"crls"`
	OCSPTimeout *string  `json:"ocsp_timeout"`
}

// settings is one configuration, replaced whole on Configure.
type settings struct {
	roots       *x509.CertPool
	cas         []*x509.Certificate
	revocation  string
	crls        []*x509.RevocationList
	ocspTimeout time.Duration
}

// SignerSource gives Make the signer and the certificates to send (end
// entity first) for a request. It exists for hosts that run this plugin in
// their own process and hold a keystore signer; the key stays in the
// keystore.
type SignerSource func(ctx context.Context, req *auth.Request) (crypto.Signer, [][]byte, error)

// Plugin is the X.509 authenticator.
type Plugin struct {
	log    *slog.Logger
	now    func() time.Time
	client *http.Client
	signer SignerSource
	cache  revocationCache

	mu  sync.RWMutex
	cfg *settings
}

// New returns the X.509 plugin (bundled as auth/x509). Its Make refuses:
// signing is the keystore's job (see SignedAuthData).
func New() *Plugin {
	return &Plugin{
		log:    slog.New(slog.NewTextHandler(os.Stderr, nil)),
		now:    time.Now,
		client: &http.Client{},
		cfg:    &settings{roots: x509.NewCertPool(), revocation: RevocationPrefer, ocspTimeout: 3 * time.Second},
	}
}

// NewWithSigner returns the plugin with Make signing through src.
func NewWithSigner(src SignerSource) *Plugin {
	p := New()
	p.signer = src
	return p
}

var _ auth.Authenticator = (*Plugin)(nil)

func (p *Plugin) Info() base.Info {
	return base.Info{Name: "x509", Kind: base.KindAuth, Version: "1.0.0"}
}

func (p *Plugin) ConfigSchema() base.Schema {
	return base.Schema{Attributes: []base.Attribute{
		{Name: "cacerts", Type: "list(string)", Required: true,
			Description: "PEM files of the CA certificates peers' chains must lead to"},
		{Name: "revocation", Type: "string",
			Description: `"off", "prefer" (default: revoked is refused, unknown accepted with a log line) or "require" (revoked or unknown is refused)`},
		{Name: "crls", Type: "list(string)",
			Description: "CRL files (PEM or DER), checked besides the certificates' distribution points"},
		{Name: "ocsp_timeout", Type: "string",
			Description: `time allowed for one OCSP or CRL fetch (default "3s")`},
	}}
}

// Configure loads every CA and CRL now, so a bad file is a configuration
// error at start-up, not a failed handshake later.
func (p *Plugin) Configure(_ context.Context, configJSON []byte) error {
	var cfg Config
	if err := json.Unmarshal(configJSON, &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	s := &settings{roots: x509.NewCertPool(), revocation: RevocationPrefer, ocspTimeout: 3 * time.Second}
	// No CAs is allowed: a gateway whose peers all use EAP still signs its
	// own AUTH with a certificate. Verify then refuses every peer
	// certificate (checkChain).
	for _, path := range cfg.CACerts {
		certs, err := readCerts(path)
		if err != nil {
			return fmt.Errorf("cacerts: %w", err)
		}
		for _, c := range certs {
			if !c.IsCA {
				return fmt.Errorf("cacerts: %s: %q is not a CA certificate (basic constraints CA is not set)", path, c.Subject)
			}
			if err := checkKeySize(c.PublicKey); err != nil {
				return fmt.Errorf("cacerts: %s: %q: %w", path, c.Subject, err)
			}
			s.roots.AddCert(c)
			s.cas = append(s.cas, c)
		}
	}
	if cfg.Revocation != nil {
		switch *cfg.Revocation {
		case RevocationOff, RevocationPrefer, RevocationRequire:
			s.revocation = *cfg.Revocation
		default:
			return fmt.Errorf(`revocation: %q is not "off", "prefer" or "require"`, *cfg.Revocation)
		}
	}
	for _, path := range cfg.CRLs {
		crl, err := readCRL(path)
		if err != nil {
			return fmt.Errorf("crls: %w", err)
		}
		s.crls = append(s.crls, crl)
	}
	if cfg.OCSPTimeout != nil {
		d, err := time.ParseDuration(*cfg.OCSPTimeout)
		if err != nil || d <= 0 {
			return fmt.Errorf("ocsp_timeout: %q is not a positive duration such as \"3s\"", *cfg.OCSPTimeout)
		}
		s.ocspTimeout = d
	}
	p.mu.Lock()
	p.cfg = s
	p.mu.Unlock()
	p.cache.reset()
	return nil
}

func (p *Plugin) Health(context.Context) error { return nil }

func readCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		if c, err := x509.ParseCertificate(data); err == nil {
			return []*x509.Certificate{c}, nil
		}
		return nil, fmt.Errorf("%s holds no PEM or DER certificate", path)
	}
	return certs, nil
}

func readCRL(path string) (*x509.RevocationList, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if block, _ := pem.Decode(data); block != nil {
		data = block.Bytes
	}
	crl, err := x509.ParseRevocationList(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return crl, nil
}

// Make refuses unless the plugin was built with a SignerSource: the
// private key must stay in the keystore.
func (p *Plugin) Make(ctx context.Context, req *auth.Request) (*auth.Result, error) {
	if p.signer == nil {
		return nil, errors.New("the x509 plugin does not sign: our AUTH is signed by the keystore (the engine calls x509.SignedAuthData with provider.KeyStore.Signer)")
	}
	if len(req.SignedOctets) == 0 {
		return nil, errors.New("nothing to sign")
	}
	signer, certs, err := p.signer(ctx, req)
	if err != nil {
		return nil, err
	}
	hashID, err := ChooseHash(signer.Public(), req.SignatureHashes)
	if err != nil {
		return nil, err
	}
	data, method, err := SignedAuthData(signer, req.SignedOctets, hashID)
	if err != nil {
		return nil, err
	}
	return &auth.Result{Method: method, Data: data, Certs: certs}, nil
}

// Verify checks the peer's AUTH: its certificate chain, identity, the
// signature over SignedOctets and revocation.
func (p *Plugin) Verify(ctx context.Context, req *auth.Request) error {
	if len(req.SignedOctets) == 0 {
		return errors.New("nothing was signed: no octets to check the AUTH against")
	}
	if len(req.Data) == 0 {
		return errors.New("peer's AUTH payload is empty")
	}
	alg, sig, rawECDSA, err := parseAuth(req.Method, req.Data)
	if err != nil {
		return err
	}
	if len(req.Certs) == 0 {
		return errors.New("peer sent no certificate (CERT payload), so its signature cannot be checked")
	}
	certs := make([]*x509.Certificate, len(req.Certs))
	for i, der := range req.Certs {
		if certs[i], err = x509.ParseCertificate(der); err != nil {
			return fmt.Errorf("peer's certificate %d is malformed: %v", i+1, err)
		}
	}
	p.mu.RLock()
	cfg := p.cfg
	p.mu.RUnlock()

	ee := certs[0]
	chain, err := p.checkChain(cfg, certs)
	if err != nil {
		return err
	}
	if err := checkIdentity(ee, req.RemoteID); err != nil {
		return err
	}
	if rawECDSA {
		curve, _ := curveForMethod(req.Method)
		if k, ok := ee.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != curve {
			return fmt.Errorf("peer's AUTH method %d needs an ECDSA %s key but its certificate holds a %s key", req.Method, curve.Params().Name, keyName(ee.PublicKey))
		}
	}
	if err := verifySignature(ee.PublicKey, alg, req.SignedOctets, sig, rawECDSA); err != nil {
		return err
	}
	return p.checkRevocation(ctx, cfg, chain)
}

// parseAuth splits AUTH data by method into algorithm and signature.
func parseAuth(method uint8, data []byte) (parsedAlg, []byte, bool, error) {
	switch method {
	case MethodDigSigned:
		n := int(data[0])
		if n == 0 || len(data) < 1+n+1 {
			return parsedAlg{}, nil, false, errors.New("AUTH data is too short for its AlgorithmIdentifier and a signature (RFC 7427 §3)")
		}
		alg, err := parseAlgorithm(data[1 : 1+n])
		if err != nil {
			return parsedAlg{}, nil, false, err
		}
		if !slices.Contains(Announced, alg.hashID) {
			return parsedAlg{}, nil, false, fmt.Errorf("peer signed with %s, whose hash we did not announce in SIGNATURE_HASH_ALGORITHMS %v", alg.name, Announced)
		}
		return alg, data[1+n:], false, nil
	case MethodRSA:
		return parsedAlg{}, nil, false, errors.New("peer used AUTH method 1 (RSA PKCS#1 v1.5 with SHA-1); SHA-1 is deprecated and refused (RFC 8247): configure the peer for RFC 7427 signatures (method 14)")
	case MethodECDSA256, MethodECDSA384, MethodECDSA521:
		_, alg := curveForMethod(method)
		return parsedAlg{sigAlg: alg}, data, true, nil
	case 3:
		return parsedAlg{}, nil, false, errors.New("peer used AUTH method 3 (DSS with SHA-1), which is refused")
	}
	return parsedAlg{}, nil, false, fmt.Errorf("peer used AUTH method %d, which is not a certificate signature method (1, 9, 10, 11, 14)", method)
}

// checkKeySize enforces the minimum key sizes.
func checkKeySize(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < MinRSABits {
			return fmt.Errorf("RSA key of %d bits is too weak (at least %d required)", n, MinRSABits)
		}
	case *ecdsa.PublicKey:
		if n := k.Curve.Params().BitSize; n < MinECBits {
			return fmt.Errorf("EC key on %s (%d bits) is too weak (P-256 or larger required)", k.Curve.Params().Name, n)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("%T keys are not supported", pub)
	}
	return nil
}

func certName(c *x509.Certificate) string {
	if len(c.DNSNames) > 0 {
		return c.DNSNames[0]
	}
	if len(c.EmailAddresses) > 0 {
		return c.EmailAddresses[0]
	}
	if len(c.IPAddresses) > 0 {
		return c.IPAddresses[0].String()
	}
	return c.Subject.String()
}

// checkChain checks times, key sizes and key usage of the peer's
// certificates and builds a chain to a configured CA. It returns the chain,
// end entity first, CA last.
func (p *Plugin) checkChain(cfg *settings, certs []*x509.Certificate) ([]*x509.Certificate, error) {
	if len(cfg.cas) == 0 {
		return nil, errors.New("no CA is configured to check the peer's certificate against (cacerts is empty)")
	}
	now := p.now()
	ee := certs[0]
	for _, c := range certs {
		if now.After(c.NotAfter) {
			return nil, fmt.Errorf("certificate for %s expired on %s", certName(c), c.NotAfter.UTC().Format(time.RFC3339))
		}
		if now.Before(c.NotBefore) {
			return nil, fmt.Errorf("certificate for %s is not valid before %s", certName(c), c.NotBefore.UTC().Format(time.RFC3339))
		}
		if err := checkKeySize(c.PublicKey); err != nil {
			return nil, fmt.Errorf("certificate for %s: %w", certName(c), err)
		}
	}
	if ee.KeyUsage != 0 && ee.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
		return nil, fmt.Errorf("certificate for %s does not allow digital signatures (key usage)", certName(ee))
	}
	if ee.IsCA {
		return nil, fmt.Errorf("certificate for %s is a CA certificate, not an end entity", certName(ee))
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	chains, err := ee.Verify(x509.VerifyOptions{
		Roots: cfg.roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		var ua x509.UnknownAuthorityError
		if errors.As(err, &ua) {
			return nil, fmt.Errorf("chain does not lead to a configured CA: certificate for %s is issued by %q", certName(ee), ee.Issuer)
		}
		return nil, fmt.Errorf("chain does not lead to a configured CA: %v", err)
	}
	for _, c := range chains[0] {
		if err := checkKeySize(c.PublicKey); err != nil {
			return nil, fmt.Errorf("certificate for %s: %w", certName(c), err)
		}
	}
	return chains[0], nil
}

// checkIdentity matches the peer's IKE ID against the end entity's names.
func checkIdentity(ee *x509.Certificate, id auth.Identity) error {
	var names []string
	names = append(names, ee.DNSNames...)
	names = append(names, ee.EmailAddresses...)
	for _, ip := range ee.IPAddresses {
		names = append(names, ip.String())
	}
	switch id.Type {
	case 1, 5: // ID_IPV4_ADDR, ID_IPV6_ADDR
		want, ok := netip.AddrFromSlice(id.Data)
		if !ok || (id.Type == 1) != want.Is4() {
			return fmt.Errorf("peer's IP address ID is malformed (%d bytes)", len(id.Data))
		}
		for _, ip := range ee.IPAddresses {
			if a, ok := netip.AddrFromSlice(ip); ok && a.Unmap() == want {
				return nil
			}
		}
		return fmt.Errorf("ID %s is not in the certificate's names %v", want, names)
	case 2: // ID_FQDN
		want := strings.TrimSuffix(strings.ToLower(string(id.Data)), ".")
		for _, n := range ee.DNSNames {
			if strings.EqualFold(n, want) {
				return nil
			}
		}
		return fmt.Errorf("ID %s is not in the certificate's names %v", printable(id.Data), names)
	case 3: // ID_RFC822_ADDR
		for _, n := range ee.EmailAddresses {
			if strings.EqualFold(n, string(id.Data)) {
				return nil
			}
		}
		return fmt.Errorf("ID %s is not in the certificate's names %v", printable(id.Data), names)
	case 9: // ID_DER_ASN1_DN
		var rdn pkix.RDNSequence
		if rest, err := asn1.Unmarshal(id.Data, &rdn); err != nil || len(rest) != 0 {
			return errors.New("peer's distinguished name ID is not valid DER")
		}
		if bytes.Equal(id.Data, ee.RawSubject) {
			return nil
		}
		var want pkix.Name
		want.FillFromRDNSequence(&rdn)
		if want.String() == ee.Subject.String() {
			return nil
		}
		return fmt.Errorf("ID %q is not the certificate's subject %q", want.String(), ee.Subject.String())
	}
	return fmt.Errorf("peer's ID type %d cannot be matched against a certificate (use IP, FQDN, e-mail or DN)", id.Type)
}

// printable shows an ID without control characters.
func printable(b []byte) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, string(b))
}
