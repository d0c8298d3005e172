package x509

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"
)

// status is what a revocation source says about one certificate.
type status uint8

const (
	statusUnknown status = iota
	statusGood
	statusRevoked
)

// maxFetch bounds a fetched CRL or OCSP response.
const maxFetch = 4 << 20

var oidOCSPNonce = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}

// revocationCache keeps fetched CRLs and OCSP responses until their
// nextUpdate.
type revocationCache struct {
	mu   sync.Mutex
	crls map[string]*x509.RevocationList // by distribution point URL
	ocsp map[string]*ocsp.Response       // by responder URL + serial
}

func (c *revocationCache) reset() {
	c.mu.Lock()
	c.crls, c.ocsp = nil, nil
	c.mu.Unlock()
}

func (c *revocationCache) crl(url string, now time.Time) *x509.RevocationList {
	c.mu.Lock()
	defer c.mu.Unlock()
	if crl := c.crls[url]; crl != nil && now.Before(crl.NextUpdate) {
		return crl
	}
	return nil
}

func (c *revocationCache) putCRL(url string, crl *x509.RevocationList) {
	if crl.NextUpdate.IsZero() {
		return
	}
	c.mu.Lock()
	if c.crls == nil {
		c.crls = map[string]*x509.RevocationList{}
	}
	c.crls[url] = crl
	c.mu.Unlock()
}

func (c *revocationCache) response(key string, now time.Time) *ocsp.Response {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.ocsp[key]; r != nil && now.Before(r.NextUpdate) {
		return r
	}
	return nil
}

func (c *revocationCache) putResponse(key string, r *ocsp.Response) {
	if r.NextUpdate.IsZero() {
		return // no promise of freshness: ask again next time
	}
	c.mu.Lock()
	if c.ocsp == nil {
		c.ocsp = map[string]*ocsp.Response{}
	}
	c.ocsp[key] = r
	c.mu.Unlock()
}

// checkRevocation applies the configured policy to every certificate of
// chain but the CA at its end.
func (p *Plugin) checkRevocation(ctx context.Context, cfg *settings, chain []*x509.Certificate) error {
	if cfg.revocation == RevocationOff {
		return nil
	}
	for i := 0; i+1 < len(chain); i++ {
		cert, issuer := chain[i], chain[i+1]
		st, reason := p.revocationStatus(ctx, cfg, cert, issuer)
		switch {
		case st == statusRevoked:
			return fmt.Errorf("certificate for %s is revoked: %s", certName(cert), reason)
		case st == statusUnknown && cfg.revocation == RevocationRequire:
			return fmt.Errorf("revocation status of the certificate for %s is unknown and revocation = \"require\": %s", certName(cert), reason)
		case st == statusUnknown:
			p.log.Warn("revocation status unknown; accepted (revocation = \"prefer\")", "certificate", certName(cert), "serial", cert.SerialNumber.Text(16), "reason", reason)
		}
	}
	return nil
}

// revocationStatus asks OCSP first, then CRLs (files, then distribution
// points). The first definite answer wins; reasons of failed sources are
// joined for the operator.
func (p *Plugin) revocationStatus(ctx context.Context, cfg *settings, cert, issuer *x509.Certificate) (status, string) {
	var reasons []string
	for _, url := range cert.OCSPServer {
		st, reason := p.checkOCSP(ctx, cfg, url, cert, issuer)
		if st != statusUnknown {
			return st, reason
		}
		reasons = append(reasons, reason)
	}
	now := p.now()
	for _, crl := range cfg.crls {
		if !bytes.Equal(crl.RawIssuer, cert.RawIssuer) || crl.CheckSignatureFrom(issuer) != nil {
			continue
		}
		if st, reason := crlStatus(crl, cert, now, "CRL file"); st != statusUnknown {
			return st, reason
		} else {
			reasons = append(reasons, reason)
		}
	}
	for _, url := range cert.CRLDistributionPoints {
		crl, err := p.fetchCRL(ctx, cfg, url, issuer)
		if err != nil {
			reasons = append(reasons, err.Error())
			continue
		}
		if st, reason := crlStatus(crl, cert, now, "CRL from "+url); st != statusUnknown {
			return st, reason
		} else {
			reasons = append(reasons, reason)
		}
	}
	if len(reasons) == 0 {
		return statusUnknown, "no OCSP responder, CRL distribution point or CRL file covers it"
	}
	return statusUnknown, fmt.Sprint(reasons)
}

func crlStatus(crl *x509.RevocationList, cert *x509.Certificate, now time.Time, source string) (status, string) {
	if !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate) {
		return statusUnknown, fmt.Sprintf("%s is out of date (next update was due %s)", source, crl.NextUpdate.UTC().Format(time.RFC3339))
	}
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			return statusRevoked, fmt.Sprintf("serial %s listed in %s since %s", cert.SerialNumber.Text(16), source, e.RevocationTime.UTC().Format(time.RFC3339))
		}
	}
	return statusGood, ""
}

func (p *Plugin) get(ctx context.Context, cfg *settings, req *http.Request) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.ocspTimeout)
	defer cancel()
	resp, err := p.client.Do(req.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxFetch+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxFetch {
		return nil, fmt.Errorf("response larger than %d bytes", maxFetch)
	}
	return body, nil
}

func (p *Plugin) fetchCRL(ctx context.Context, cfg *settings, url string, issuer *x509.Certificate) (*x509.RevocationList, error) {
	now := p.now()
	if crl := p.cache.crl(url, now); crl != nil {
		return crl, nil
	}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil || (req.URL.Scheme != "http" && req.URL.Scheme != "https") {
		return nil, fmt.Errorf("CRL distribution point %q is not an HTTP URL", url)
	}
	der, err := p.get(ctx, cfg, req)
	if err != nil {
		return nil, fmt.Errorf("fetching CRL from %s: %v", url, err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("CRL from %s is malformed: %v", url, err)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("CRL from %s is not signed by the certificate's issuer: %v", url, err)
	}
	p.cache.putCRL(url, crl)
	return crl, nil
}

// ocspRequest builds an OCSP request (RFC 6960 §4.1.1) for cert with a
// nonce extension (RFC 8954). x/crypto/ocsp has no request extensions, so
// its CertID is re-wrapped here.
func ocspRequest(cert, issuer *x509.Certificate, nonce []byte) ([]byte, error) {
	plain, err := ocsp.CreateRequest(cert, issuer, &ocsp.RequestOptions{Hash: crypto.SHA256})
	if err != nil {
		return nil, err
	}
	// OCSPRequest { TBSRequest { requestList SEQUENCE OF Request } }
	in := cryptobyte.String(plain)
	var req, tbs, list cryptobyte.String
	if !in.ReadASN1(&req, cbasn1.SEQUENCE) || !req.ReadASN1(&tbs, cbasn1.SEQUENCE) || !tbs.ReadASN1Element(&list, cbasn1.SEQUENCE) {
		return nil, errors.New("cannot re-read the OCSP request")
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(list)
			b.AddASN1(cbasn1.Tag(2).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(oidOCSPNonce)
						b.AddASN1(cbasn1.OCTET_STRING, func(b *cryptobyte.Builder) {
							b.AddASN1OctetString(nonce)
						})
					})
				})
			})
		})
	})
	return b.Bytes()
}

// responseNonce returns the nonce of an OCSP response, nil if it has none.
// RFC 6960 puts it in responseExtensions, which x/crypto/ocsp does not
// expose, so they are read from the signed response data; a nonce among
// the single response's extensions is taken too.
func responseNonce(r *ocsp.Response) []byte {
	for _, e := range append(responseExtensions(r.TBSResponseData), r.Extensions...) {
		if e.Id.Equal(oidOCSPNonce) {
			v := cryptobyte.String(e.Value)
			var n cryptobyte.String
			if v.ReadASN1(&n, cbasn1.OCTET_STRING) && v.Empty() {
				return n
			}
			return e.Value // some responders put the bare nonce here
		}
	}
	return nil
}

// responseExtensions reads responseExtensions of ResponseData (RFC 6960
// §4.2.1).
func responseExtensions(tbs []byte) []pkix.Extension {
	in := cryptobyte.String(tbs)
	var data cryptobyte.String
	if !in.ReadASN1(&data, cbasn1.SEQUENCE) ||
		!data.SkipOptionalASN1(cbasn1.Tag(0).ContextSpecific().Constructed()) ||
		!data.SkipASN1(cbasn1.Tag(1).ContextSpecific().Constructed()) && !data.SkipASN1(cbasn1.Tag(2).ContextSpecific().Constructed()) ||
		!data.SkipASN1(cbasn1.GeneralizedTime) || !data.SkipASN1(cbasn1.SEQUENCE) {
		return nil
	}
	var raw cryptobyte.String
	var present bool
	if !data.ReadOptionalASN1(&raw, &present, cbasn1.Tag(1).ContextSpecific().Constructed()) || !present {
		return nil
	}
	var exts []pkix.Extension
	if rest, err := asn1.Unmarshal(raw, &exts); err != nil || len(rest) != 0 {
		return nil
	}
	return exts
}

func (p *Plugin) checkOCSP(ctx context.Context, cfg *settings, url string, cert, issuer *x509.Certificate) (status, string) {
	now := p.now()
	key := url + "|" + string(cert.RawIssuer) + "|" + cert.SerialNumber.String()
	resp := p.cache.response(key, now)
	if resp == nil {
		var err error
		if resp, err = p.queryOCSP(ctx, cfg, url, cert, issuer); err != nil {
			return statusUnknown, fmt.Sprintf("OCSP %s: %v", url, err)
		}
		p.cache.putResponse(key, resp)
	}
	if !resp.NextUpdate.IsZero() && now.After(resp.NextUpdate) {
		return statusUnknown, fmt.Sprintf("OCSP %s: response is out of date", url)
	}
	switch resp.Status {
	case ocsp.Good:
		return statusGood, ""
	case ocsp.Revoked:
		return statusRevoked, fmt.Sprintf("OCSP responder %s says revoked since %s", url, resp.RevokedAt.UTC().Format(time.RFC3339))
	}
	return statusUnknown, fmt.Sprintf("OCSP responder %s does not know the certificate", url)
}

func (p *Plugin) queryOCSP(ctx context.Context, cfg *settings, url string, cert, issuer *x509.Certificate) (*ocsp.Response, error) {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	body, err := ocspRequest(cert, issuer, nonce)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil || (req.URL.Scheme != "http" && req.URL.Scheme != "https") {
		return nil, errors.New("not an HTTP URL")
	}
	req.Header.Set("Content-Type", "application/ocsp-request")
	der, err := p.get(ctx, cfg, req)
	if err != nil {
		return nil, err
	}
	// Checks the responder's signature: the issuer itself or a responder
	// certificate the issuer delegated OCSP signing to.
	resp, err := ocsp.ParseResponseForCert(der, cert, issuer)
	if err != nil {
		return nil, fmt.Errorf("bad response: %v", err)
	}
	// x/crypto/ocsp checks that a delegated responder's certificate is
	// signed by the issuer, not that the issuer delegated OCSP signing to
	// it: without this any certificate of the CA could vouch for others.
	if c := resp.Certificate; c != nil && !bytes.Equal(c.Raw, issuer.Raw) {
		if !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
			return nil, fmt.Errorf("responder certificate %q is not authorised for OCSP signing (no id-kp-OCSPSigning, RFC 6960 §4.2.2.2)", c.Subject)
		}
		if now := p.now(); now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return nil, fmt.Errorf("responder certificate %q is outside its validity period", c.Subject)
		}
	}
	if n := responseNonce(resp); n != nil && !bytes.Equal(n, nonce) {
		return nil, errors.New("response nonce does not match the request's (replayed response?)")
	}
	if p.now().Before(resp.ThisUpdate.Add(-5 * time.Minute)) {
		return nil, errors.New("response is dated in the future")
	}
	return resp, nil
}
