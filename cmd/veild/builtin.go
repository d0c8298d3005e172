// EAP-TLS over TLS 1.2 derives its MSK with the RFC 5705 exporter, which
// crypto/tls refuses without Extended Master Secret unless told otherwise;
// strongSwan's TLS stack, a common EAP-TLS peer, does not negotiate EMS.

//go:debug tlsunsafeekm=1
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"

	"github.com/hashicorp/hcl/v2"

	"github.com/veil-ipsec/veil/core/pluginhost"
	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/core/version"
	"github.com/veil-ipsec/veil/plugins/auth/eap"
	"github.com/veil-ipsec/veil/plugins/auth/psk"
	"github.com/veil-ipsec/veil/plugins/auth/x509"
	"github.com/veil-ipsec/veil/plugins/dataplane/adapt"
	"github.com/veil-ipsec/veil/plugins/dataplane/userspace"
	"github.com/veil-ipsec/veil/plugins/dataplane/xfrm"
	"github.com/veil-ipsec/veil/plugins/keystore/file"
	"github.com/veil-ipsec/veil/plugins/keystore/pkcs11"
	"github.com/veil-ipsec/veil/plugins/keystore/vault"
	"github.com/veil-ipsec/veil/sdk/base"
)

// builtinPlugins are the plugins bundled in veild. Each runs in its own
// process ("veild plugin KIND NAME"), supervised by the daemon.
var builtinPlugins = pluginhost.Builtins{
	"auth/eap":            func() any { return eap.New() },
	"auth/psk":            func() any { return psk.New() },
	"auth/x509":           func() any { return x509.New() },
	"keystore/file":       func() any { return file.New() },
	"keystore/vault":      func() any { return vault.New() },
	"keystore/pkcs11":     func() any { return pkcs11.New() },
	"dataplane/userspace": func() any { return adapt.Dataplane(closeAtExit(userspacePlugin())) },
	"dataplane/xfrm":      func() any { return adapt.Dataplane(closeAtExit(xfrmPlugin())) },
}

// atExit are closed when a bundled plugin stops serving: a dataplane
// removes what it installed.
var atExit []io.Closer

func closeAtExit(l adapt.LazyImpl) adapt.Impl {
	atExit = append(atExit, l)
	return l
}

func servePlugin(kind, name string) error {
	err := pluginhost.ServeBuiltin(kind, name, builtinPlugins)
	for _, c := range atExit {
		c.Close()
	}
	return err
}

// pluginLogger writes to stderr, which the host relays into veild's log.
func pluginLogger() *slog.Logger { return slog.New(slog.NewTextHandler(os.Stderr, nil)) }

func userspacePlugin() adapt.LazyImpl {
	schema := base.Schema{Attributes: []base.Attribute{
		{Name: "tun_name", Type: "string", Description: `TUN device name ("veil0")`},
		{Name: "path_mtu", Type: "number", Description: "MTU of the path ESP packets take (1500)"},
		{Name: "clamp_mss", Type: "bool", Description: "rewrite the MSS of TCP SYNs to fit the SA"},
		{Name: "udp_port", Type: "number", Description: "a UDP port of its own for encapsulated ESP (-1: none); by default it shares veild's NAT-T port 4500 through a raw socket"},
		{Name: "offload", Type: "bool", Description: "TUN TSO/GRO and UDP GSO/GRO (on by default; false turns them off)"},
	}}
	return adapt.Lazy(base.Info{Name: "userspace", Kind: base.KindDataplane, Version: version.Version}, schema,
		func(ctx context.Context, raw []byte) (provider.Dataplane, error) {
			var c struct {
				TUNName  *string `json:"tun_name"`
				PathMTU  *int    `json:"path_mtu"`
				ClampMSS *bool   `json:"clamp_mss"`
				UDPPort  *int    `json:"udp_port"`
				Offload  *bool   `json:"offload"`
				// Set by veild: where its NAT-T sockets are.
				NATTPort  *int     `json:"nat_t_port"`
				NATTAddrs []string `json:"nat_t_addrs"`
			}
			if len(raw) > 0 && string(raw) != "null" {
				if err := json.Unmarshal(raw, &c); err != nil {
					return nil, fmt.Errorf("config: %w", err)
				}
			}
			// Offload is on unless turned off: TSO/GRO on the TUN device
			// and, with ESP in UDP, UDP GSO/GRO (bench/ has the figures).
			opts := userspace.Options{UDPPort: -1, Logger: pluginLogger(), Offload: true}
			if c.TUNName != nil {
				opts.TUNName = *c.TUNName
			}
			if c.PathMTU != nil {
				opts.PathMTU = *c.PathMTU
			}
			if c.ClampMSS != nil {
				opts.ClampMSS = *c.ClampMSS
			}
			if c.Offload != nil {
				opts.Offload = *c.Offload
			}
			if c.UDPPort != nil {
				opts.UDPPort = *c.UDPPort
				return userspace.New(opts)
			}
			// By default ESP-in-UDP arrives on veild's NAT-T port: the
			// dataplane joins veild's SO_REUSEPORT group there, which steers
			// ESP to it (batched reads, UDP GRO/GSO), when veild listens on
			// at most one address per family; otherwise it falls back to a
			// raw socket that sees every UDP datagram (IPv4 only).
			natPort := 4500
			if c.NATTPort != nil {
				natPort = *c.NATTPort
			}
			if a4, a6, ok := sharedAddrs(c.NATTAddrs); ok {
				opts.UDPPort, opts.UDPShared, opts.UDPAddr4, opts.UDPAddr6 = natPort, true, a4, a6
				return userspace.New(opts)
			}
			encap, err := userspace.ListenRawUDP(uint16(natPort), userspace.DefaultFwMark)
			if err != nil {
				return nil, fmt.Errorf("ESP-in-UDP on port 4500: %w", err)
			}
			opts.UDPConns = []net.PacketConn{encap}
			dp, err := userspace.New(opts)
			if err != nil {
				encap.Close()
				return nil, err
			}
			return &closeBoth{Dataplane: dp, raw: encap}, nil
		})
}

// sharedAddrs picks the dataplane's bind addresses for veild's listen
// addresses: none means the wildcards; more than one of a family cannot be
// shared with the one socket per family the dataplane reads.
func sharedAddrs(listen []string) (a4, a6 netip.Addr, ok bool) {
	if len(listen) == 0 {
		return netip.IPv4Unspecified(), netip.IPv6Unspecified(), true
	}
	for _, s := range listen {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return a4, a6, false
		}
		a = a.Unmap()
		switch {
		case a.Is4() && !a4.IsValid():
			a4 = a
		case a.Is6() && !a6.IsValid():
			a6 = a
		default:
			return a4, a6, false
		}
	}
	return a4, a6, true
}

func xfrmPlugin() adapt.LazyImpl {
	schema := base.Schema{Attributes: []base.Attribute{
		{Name: "packet_offload", Type: "bool", Description: "ask capable NICs for full packet offload instead of crypto offload"},
	}}
	return adapt.Lazy(base.Info{Name: "xfrm", Kind: base.KindDataplane, Version: version.Version}, schema,
		func(ctx context.Context, raw []byte) (provider.Dataplane, error) {
			var c struct {
				PacketOffload *bool `json:"packet_offload"`
			}
			if len(raw) > 0 && string(raw) != "null" {
				if err := json.Unmarshal(raw, &c); err != nil {
					return nil, fmt.Errorf("config: %w", err)
				}
			}
			opts := xfrm.Options{Logger: pluginLogger()}
			if c.PacketOffload != nil {
				opts.PacketOffload = *c.PacketOffload
			}
			return xfrm.New(opts)
		})
}

func countErrors(diags hcl.Diagnostics) int {
	n := 0
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			n++
		}
	}
	return n
}

// closeBoth closes the dataplane, then the raw socket it was lent.
type closeBoth struct {
	*userspace.Dataplane
	raw *userspace.RawUDP
}

func (c *closeBoth) Close() error {
	err := c.Dataplane.Close()
	c.raw.Close()
	return err
}
