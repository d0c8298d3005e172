package daemon

import (
	"context"

	"github.com/veil-ipsec/veil/config"
	"github.com/veil-ipsec/veil/core/engine"
	"github.com/veil-ipsec/veil/core/ikesa"
	"github.com/veil-ipsec/veil/core/transport"
	"github.com/veil-ipsec/veil/plugins/dataplane/userspace"
)

// newEngine opens the IKE sockets and builds the engine over the plugins.
func (d *Daemon) newEngine(ctx context.Context, cfg *config.Config, ps *pluginSet) (*engine.Engine, error) {
	udp, err := transport.ListenUDP(transport.UDPConfig{Addrs: cfg.Daemon.Listen, Port: cfg.Daemon.IKEPort,
		NATPort: cfg.Daemon.NATTPort, Mark: ikeSocketMark(cfg), KernelIPsec: cfg.Dataplane() == "xfrm"})
	if err != nil {
		return nil, err
	}
	d.closers = append(d.closers, udp.Close)
	eng, err := engine.New(engine.Config{
		Transport: udp, Port: cfg.Daemon.IKEPort, NATPort: cfg.Daemon.NATTPort,
		Logger:    d.log.With("subsystem", "ike"),
		Dataplane: ps.dataplane, KeyStore: ps.keystore, Authenticators: ps.auth,
		CookieThreshold: cfg.Daemon.CookieThreshold,
		FragmentSize:    cfg.Daemon.FragmentSize,
		Retransmit: ikesa.Retransmit{Timeout: cfg.Daemon.RetransmitTimeout, Base: ikesa.DefaultRetransmit.Base,
			Tries: cfg.Daemon.RetransmitTries},
	})
	if err != nil {
		udp.Close()
		return nil, err
	}
	return eng, nil
}

// ikeSocketMark is the SO_MARK the IKE sockets carry so the userspace
// dataplane's steering leaves IKE alone (it routes marked packets around its
// TUN device; see plugins/dataplane/userspace).
func ikeSocketMark(cfg *config.Config) uint32 {
	if cfg.Dataplane() == "userspace" {
		return userspace.DefaultFwMark
	}
	return 0
}
