package ikesa

import (
	"net/netip"

	"github.com/veil-ipsec/veil/core/ike"
	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/core/ts"
)

// Configuration payload for remote access (RFC 7296 §2.19, §3.15): the
// client asks for virtual IPs (Connection.VIPs) in its first IKE_AUTH
// request; the gateway leases them from the pools of its first child that
// has any and names them as the child's remote "dynamic" selector.

// vipState is an IKE SA's virtual IPs.
type vipState struct {
	local  []netip.Addr // the peer assigned these to us
	dns    []netip.Addr // and these DNS servers
	remote []lease      // we leased these to the peer
	// failure says why the peer's request could not be met (responder);
	// the child that needs the address is refused with it.
	failure string
}

type lease struct {
	prefix netip.Prefix
	addr   netip.Addr
}

// LocalVIPs are the virtual IPs the peer assigned to us.
func (sa *SA) LocalVIPs() []netip.Addr { return sa.vip.local }

// RemoteVIPs are the virtual IPs we assigned to the peer.
func (sa *SA) RemoteVIPs() []netip.Addr {
	var out []netip.Addr
	for _, l := range sa.vip.remote {
		out = append(out, l.addr)
	}
	return out
}

// DNS are the DNS servers the peer handed us with our virtual IPs.
func (sa *SA) DNS() []netip.Addr { return sa.vip.dns }

// cpRequest is the client's CFG_REQUEST: an address (a specific one, or
// any: 0.0.0.0 / ::) and a DNS server per requested family.
func (sa *SA) cpRequest() []ike.Payload {
	if len(sa.Conn.VIPs) == 0 {
		return nil
	}
	cp := &ike.Configuration{CfgType: ike.CfgRequest}
	for _, v := range sa.Conn.VIPs {
		var val []byte
		if v.Is4() {
			if !v.IsUnspecified() {
				val = v.AsSlice()
			}
			cp.Attributes = append(cp.Attributes, ike.CPAttribute{Type: ike.CfgInternalIP4Address, Value: val},
				ike.CPAttribute{Type: ike.CfgInternalIP4DNS})
			continue
		}
		if !v.IsUnspecified() {
			val = append(v.AsSlice(), 128)
		}
		cp.Attributes = append(cp.Attributes, ike.CPAttribute{Type: ike.CfgInternalIP6Address, Value: val},
			ike.CPAttribute{Type: ike.CfgInternalIP6DNS})
	}
	return []ike.Payload{cp}
}

// cpReply takes the addresses and DNS servers of the gateway's CFG_REPLY.
func (sa *SA) cpReply(ps []ike.Payload) {
	if len(sa.Conn.VIPs) == 0 {
		return
	}
	cp := ike.Get[*ike.Configuration](ps)
	if cp == nil || cp.CfgType != ike.CfgReply {
		sa.logger().Info("peer sent no configuration reply: no virtual IP")
		return
	}
	for _, a := range cp.Attributes {
		switch a.Type & 0x7fff {
		case ike.CfgInternalIP4Address, ike.CfgInternalIP6Address:
			if addr, ok := cpAddr(a.Value); ok && !addr.IsUnspecified() {
				sa.vip.local = append(sa.vip.local, addr)
			}
		case ike.CfgInternalIP4DNS, ike.CfgInternalIP6DNS:
			if addr, ok := cpAddr(a.Value); ok {
				sa.vip.dns = append(sa.vip.dns, addr)
			}
		}
	}
	sa.logger().Info("virtual IP assigned", "vips", sa.vip.local, "dns", sa.vip.dns)
	if sa.env.VirtualIPs != nil && len(sa.vip.local) > 0 {
		sa.env.VirtualIPs(true, sa.vip.local)
	}
}

// cpAddr reads an address attribute: 4 bytes, or 16 (+1 prefix length).
func cpAddr(b []byte) (netip.Addr, bool) {
	switch len(b) {
	case 4, 16:
		return netip.AddrFromSlice(b)
	case 17:
		return netip.AddrFromSlice(b[:16])
	}
	return netip.Addr{}, false
}

// poolChild is the child whose pools serve configuration requests.
func (sa *SA) poolChild() *Child {
	for i := range sa.Conn.Children {
		if len(sa.Conn.Children[i].Pools) > 0 {
			return &sa.Conn.Children[i]
		}
	}
	return nil
}

// cpRespond answers the CFG_REQUEST of IKE_AUTH request req: per family
// asked for, an address leased to the peer's identity and the child's DNS
// servers of that family.
func (sa *SA) cpRespond(req []ike.Payload) []ike.Payload {
	cp := ike.Get[*ike.Configuration](req)
	if cp == nil || cp.CfgType != ike.CfgRequest {
		return nil
	}
	cfg := sa.poolChild()
	if cfg == nil {
		sa.logger().Info("peer asked for a virtual IP; no child of this connection has pools")
		return nil
	}
	if sa.env.Pools == nil {
		sa.env.Pools = NewAddressPools()
	}
	var peer provider.Identity
	if id := ike.GetID(req, true); id != nil {
		peer = provider.Identity{Type: uint8(id.IDType), Data: id.Data}
	}
	reply := &ike.Configuration{CfgType: ike.CfgReply}
	for _, fam := range []struct {
		v4         bool
		addr, dns  uint16
		familyName string
	}{{true, ike.CfgInternalIP4Address, ike.CfgInternalIP4DNS, "IPv4"}, {false, ike.CfgInternalIP6Address, ike.CfgInternalIP6DNS, "IPv6"}} {
		asked := false
		for _, a := range cp.Attributes {
			asked = asked || a.Type&0x7fff == fam.addr
		}
		if !asked {
			continue
		}
		var got netip.Addr
		sa.vip.failure = "child " + cfg.Name + " has no " + fam.familyName + " pool for the peer's request"
		for _, p := range cfg.Pools {
			if p.Addr().Is4() != fam.v4 {
				continue
			}
			a, err := sa.env.Pools.Acquire(p, peer)
			if err != nil {
				sa.vip.failure = err.Error()
				continue
			}
			got = a
			sa.vip.remote = append(sa.vip.remote, lease{p, a})
			break
		}
		if !got.IsValid() {
			sa.logger().Info("no virtual IP for the peer", "reason", sa.vip.failure)
			continue
		}
		sa.vip.failure = ""
		val := got.AsSlice()
		if !fam.v4 {
			val = append(val, 128)
		}
		reply.Attributes = append(reply.Attributes, ike.CPAttribute{Type: fam.addr, Value: val})
		for _, d := range cfg.DNS {
			if d.Is4() == fam.v4 {
				reply.Attributes = append(reply.Attributes, ike.CPAttribute{Type: fam.dns, Value: d.AsSlice()})
			}
		}
		sa.logger().Info("virtual IP leased to the peer", "vip", got)
	}
	if len(reply.Attributes) == 0 {
		return nil
	}
	return []ike.Payload{reply}
}

// releaseVIPs ends the SA's leases (the addresses stay the peer's for
// when it comes back) and takes the peer's assignments off the host.
func (sa *SA) releaseVIPs() {
	for _, l := range sa.vip.remote {
		sa.env.Pools.Release(l.prefix, l.addr)
	}
	sa.vip.remote = nil
	if sa.env.VirtualIPs != nil && len(sa.vip.local) > 0 {
		sa.env.VirtualIPs(false, sa.vip.local)
	}
	sa.vip.local = nil
}

// localSelectors are the local selectors we propose for cfg: a dynamic one
// stands for our virtual IPs once assigned, and for any address of each
// requested family until then (the gateway narrows it to the address).
func (sa *SA) localSelectors(cfg *Child) []provider.TrafficSelector {
	if len(sa.Conn.VIPs) == 0 || cfg.Mode != provider.Tunnel {
		return resolveAll(cfg.LocalTS, sa.Local.Addr())
	}
	var out []provider.TrafficSelector
	for _, t := range cfg.LocalTS {
		switch {
		case !ts.IsDynamic(t):
			out = append(out, t)
		case len(sa.vip.local) > 0:
			for _, v := range sa.vip.local {
				out = append(out, ts.Resolve(t, v))
			}
		default:
			for _, v := range sa.Conn.VIPs {
				any := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
				if v.Is6() {
					any = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
				}
				w := ts.FromPrefix(any)
				w.Protocol, w.StartPort, w.EndPort = t.Protocol, t.StartPort, t.EndPort
				out = append(out, w)
			}
		}
	}
	return out
}

// remoteSelectors are a responder's remote selectors of c: a dynamic one
// stands for the virtual IPs leased to the peer from c's pools, else for
// the peer's address.
func (sa *SA) remoteSelectors(c *Child, peerAddr netip.Addr) []provider.TrafficSelector {
	var vips []netip.Addr
	for _, l := range sa.vip.remote {
		for _, p := range c.Pools {
			if p == l.prefix {
				vips = append(vips, l.addr)
			}
		}
	}
	if len(vips) == 0 {
		return resolveAll(c.RemoteTS, peerAddr)
	}
	var out []provider.TrafficSelector
	for _, t := range c.RemoteTS {
		if !ts.IsDynamic(t) {
			out = append(out, t)
			continue
		}
		for _, v := range vips {
			out = append(out, ts.Resolve(t, v))
		}
	}
	return out
}

// vipRefusal says why child c cannot be set up: the peer asked for a
// virtual IP that c's pools could not give.
func (sa *SA) vipRefusal(c *Child) string {
	if len(c.Pools) == 0 {
		return ""
	}
	return sa.vip.failure
}
