package daemon

import (
	"github.com/veil-ipsec/veil/config"
	"github.com/veil-ipsec/veil/core/engine"
	"github.com/veil-ipsec/veil/core/ikesa"
	"github.com/veil-ipsec/veil/core/transport"
	"github.com/veil-ipsec/veil/plugins/dataplane/userspace"
)

// openIKESockets binds UDP 500 and 4500 on the listen addresses. With the
// userspace dataplane the NAT-T sockets are shared with it: ESP-in-UDP goes
// to the dataplane's socket on the same port (core/transport share.go).
func openIKESockets(cfg *config.Config) (*transport.UDP, error) {
	return transport.ListenUDP(transport.UDPConfig{Addrs: cfg.Daemon.Listen, Port: cfg.Daemon.IKEPort,
		NATPort: cfg.Daemon.NATTPort, Mark: ikeSocketMark(cfg), KernelIPsec: cfg.Dataplane() == "xfrm",
		ShareNATPort: cfg.Dataplane() == "userspace"})
}

// newEngine builds the engine over the plugins and the IKE sockets.
func (d *Daemon) newEngine(cfg *config.Config, ps *pluginSet, udp *transport.UDP) (*engine.Engine, error) {
	vips := newVIPHost(d.log.With("subsystem", "ike"))
	d.closers = append(d.closers, vips.close)
	eng, err := engine.New(engine.Config{
		VirtualIPs: vips.set,
		Transport:  udp, Port: cfg.Daemon.IKEPort, NATPort: cfg.Daemon.NATTPort,
		Logger:    d.log.With("subsystem", "ike"),
		Dataplane: ps.dataplane, KeyStore: ps.keystore, Authenticators: ps.auth,
		CookieThreshold: cfg.Daemon.CookieThreshold,
		FragmentSize:    cfg.Daemon.FragmentSize,
		Retransmit: ikesa.Retransmit{Timeout: cfg.Daemon.RetransmitTimeout, Base: ikesa.DefaultRetransmit.Base,
			Tries: cfg.Daemon.RetransmitTries},
	})
	if err != nil {
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
