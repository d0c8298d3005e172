package daemon

import (
	stdx509 "crypto/x509"
	"fmt"
	"net/netip"
	"strings"

	"github.com/veil-ipsec/veil/config"
	"github.com/veil-ipsec/veil/core/ikesa"
	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/core/transform"
	"github.com/veil-ipsec/veil/plugins/auth/x509"
)

// Identity types (RFC 7296 §3.5).
const (
	idIPv4   = 1
	idFQDN   = 2
	idRFC822 = 3
	idIPv6   = 5
	idKeyID  = 11
)

// parseIdentity reads an operator's ID the way strongSwan does: an address
// is an IP ID, "user@host" an RFC 822 address, "@#hex" a key ID, "@fqdn" or
// a plain name an FQDN.
func parseIdentity(s string) (provider.Identity, error) {
	if s == "" {
		return provider.Identity{}, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Is4() {
			return provider.Identity{Type: idIPv4, Data: a.AsSlice()}, nil
		}
		return provider.Identity{Type: idIPv6, Data: a.AsSlice()}, nil
	}
	if hexID, ok := strings.CutPrefix(s, "@#"); ok {
		var b []byte
		if _, err := fmt.Sscanf(hexID, "%x", &b); err != nil {
			return provider.Identity{}, fmt.Errorf("key ID %q: %w", s, err)
		}
		return provider.Identity{Type: idKeyID, Data: b}, nil
	}
	if name, ok := strings.CutPrefix(s, "@"); ok {
		return provider.Identity{Type: idFQDN, Data: []byte(name)}, nil
	}
	if strings.Contains(s, "@") {
		return provider.Identity{Type: idRFC822, Data: []byte(s)}, nil
	}
	return provider.Identity{Type: idFQDN, Data: []byte(s)}, nil
}

func orDefault(ps []transform.Proposal, defaults func() []transform.Proposal) []transform.Proposal {
	if len(ps) == 0 {
		return defaults()
	}
	return ps
}

// engineConnection turns a validated config connection into the engine's.
func engineConnection(c *config.Connection) (ikesa.Connection, error) {
	ec := ikesa.Connection{
		Name: c.Name, LocalAddrs: c.LocalAddrs, RemoteAddrs: c.RemoteAddrs,
		LocalPort: c.LocalPort, RemotePort: c.RemotePort,
		PreferOurs: c.ProposalsPrefer == "responder",
		RekeyTime:  c.RekeyTime, LifeTime: c.LifeTime, ReauthTime: c.ReauthTime,
		DPDDelay: c.DPDDelay, DPDTimeout: c.DPDTimeout, DPDAction: c.DPDAction,
		Mobike: c.MOBIKE, Fragmentation: c.Fragmentation, ForceEncap: c.Encap,
		VIPs: c.VIPs, PPKID: c.PPKID, PPK: c.PPK, PPKRequired: c.PPKRequired,
	}
	ec.IKEProposals = orDefault(c.IKEProposals, transform.DefaultIKEProposals)
	for _, side := range []struct {
		in  *config.Auth
		out *ikesa.AuthConfig
	}{{&c.Local, &ec.Local}, {&c.Remote, &ec.Remote}} {
		id, err := parseIdentity(side.in.ID)
		if err != nil {
			return ec, fmt.Errorf("connection %q: %w", c.Name, err)
		}
		*side.out = ikesa.AuthConfig{Method: side.in.Auth, ID: id, Secret: side.in.PSK,
			Key: side.in.Key, Certificate: side.in.Certificate}
	}
	if c.Remote.Auth == "pubkey" {
		// CERTREQ (RFC 7296 §3.7) names the CAs we trust for the peer.
		var cas []*stdx509.Certificate
		for _, path := range c.Remote.CACerts {
			certs, err := x509.ReadCertificates(path)
			if err != nil {
				return ec, fmt.Errorf("connection %q: CA certificate: %w", c.Name, err)
			}
			cas = append(cas, certs...)
		}
		ec.Remote.CertReq = x509.CertReqAuthorities(cas)
	}
	for i := range c.Children {
		ch := &c.Children[i]
		esp := orDefault(ch.ESPProposals, transform.DefaultESPProposals)
		ec.Children = append(ec.Children, ikesa.Child{
			Name: ch.Name, Mode: ch.Mode, ESPProposals: esp,
			LocalTS: ch.LocalTS, RemoteTS: ch.RemoteTS, StartAction: ch.StartAction,
			RekeyTime: ch.RekeyTime, LifeTime: ch.LifeTime,
			RekeyBytes: ch.RekeyBytes, RekeyPackets: ch.RekeyPackets, ReplayWindow: ch.ReplayWindow,
			LifeBytes: ch.LifeBytes, LifePackets: ch.LifePackets, Pools: ch.Pools, DNS: ch.DNS, DPDAction: ch.DPDAction,
		})
	}
	return ec, nil
}

// pskSecrets maps peer identities to key references for the PSK plugin,
// from every connection that authenticates with a pre-shared key.
func pskSecrets(cfg *config.Config) map[string]string {
	out := map[string]string{}
	for _, c := range cfg.Connections {
		ref := c.Remote.PSK
		if ref == "" {
			ref = c.Local.PSK
		}
		if ref == "" || (c.Remote.Auth != "psk" && c.Local.Auth != "psk") {
			continue
		}
		id := c.Remote.ID
		if id == "" || id == "%any" {
			id = "*"
		}
		if ip, err := netip.ParseAddr(strings.TrimPrefix(id, "@")); err == nil {
			id = ip.String()
		}
		out[strings.TrimPrefix(id, "@")] = ref
	}
	return out
}
