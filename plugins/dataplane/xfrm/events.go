package xfrm

import (
	"context"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/veil-ipsec/veil/core/provider"
)

// sizeofUserAcquire is struct xfrm_user_acquire: id, saddr, sel, policy,
// aalgos, ealgos, calgos, seq.
const sizeofUserAcquire = nl.SizeofXfrmId + nl.SizeofXfrmAddress + nl.SizeofXfrmSelector +
	nl.SizeofXfrmUserpolicyInfo + 16

// Events subscribes to the kernel's ACQUIRE and EXPIRE notifications for
// veil's SAs and policies until ctx ends. netlink's own XfrmMonitor knows
// only EXPIRE, so this reads the multicast groups itself.
func (d *Dataplane) Events(ctx context.Context) (<-chan provider.Event, error) {
	s, err := nl.SubscribeAt(d.ns, netns.None(), unix.NETLINK_XFRM, nl.XFRMNLGRP_ACQUIRE, nl.XFRMNLGRP_EXPIRE)
	if err != nil {
		return nil, err
	}
	ch := make(chan provider.Event, 64)
	go func() {
		<-ctx.Done()
		s.Close()
	}()
	go func() {
		defer close(ch)
		for {
			msgs, _, err := s.Receive()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				d.log.Warn("xfrm: event socket", "err", err)
				return
			}
			for _, m := range msgs {
				ev, ok := d.parseEvent(m)
				if !ok {
					continue
				}
				select {
				case ch <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return ch, nil
}

func (d *Dataplane) parseEvent(m syscall.NetlinkMessage) (provider.Event, bool) {
	switch m.Header.Type {
	case nl.XFRM_MSG_EXPIRE:
		if len(m.Data) < nl.SizeofXfrmUserExpire {
			return provider.Event{}, false
		}
		e := nl.DeserializeXfrmUserExpire(m.Data)
		info := &e.XfrmUsersaInfo
		if !d.owned(int(info.Reqid)) || info.Id.Proto != unix.IPPROTO_ESP {
			return provider.Event{}, false
		}
		ev := provider.Event{
			Kind:  provider.SoftExpire,
			ReqID: info.Reqid - d.base,
			SA:    provider.SAKey{Dst: addrOf(info.Id.Daddr.ToIP()), SPI: nl.Swap32(info.Id.Spi)},
		}
		if e.Hard != 0 {
			ev.Kind = provider.HardExpire
			d.mu.Lock()
			delete(d.sas, ev.SA)
			d.mu.Unlock()
		}
		return ev, true
	case nl.XFRM_MSG_ACQUIRE:
		return d.parseAcquire(m.Data)
	}
	return provider.Event{}, false
}

// parseAcquire maps struct xfrm_user_acquire and its XFRMA_TMPL to an
// Acquire event carrying the triggering policy's selector.
func (d *Dataplane) parseAcquire(b []byte) (provider.Event, bool) {
	if len(b) < sizeofUserAcquire {
		return provider.Event{}, false
	}
	off := nl.SizeofXfrmId + nl.SizeofXfrmAddress + nl.SizeofXfrmSelector
	pol := nl.DeserializeXfrmUserpolicyInfo(b[off : off+nl.SizeofXfrmUserpolicyInfo])
	attrs, err := nl.ParseRouteAttr(b[nlmAlign(sizeofUserAcquire):])
	if err != nil {
		return provider.Event{}, false
	}
	var tmpl *nl.XfrmUserTmpl
	for _, a := range attrs {
		if a.Attr.Type == nl.XFRMA_TMPL && len(a.Value) >= nl.SizeofXfrmUserTmpl {
			tmpl = nl.DeserializeXfrmUserTmpl(a.Value[:nl.SizeofXfrmUserTmpl])
			break
		}
	}
	if tmpl == nil || !d.owned(int(tmpl.Reqid)) {
		return provider.Event{}, false
	}
	sel := &pol.Sel
	src := selectorTS(sel.Family, &sel.Saddr, sel.PrefixlenS, sel.Proto, nl.Swap16(sel.Sport))
	dst := selectorTS(sel.Family, &sel.Daddr, sel.PrefixlenD, sel.Proto, nl.Swap16(sel.Dport))
	p := &provider.Policy{
		ReqID:    tmpl.Reqid - d.base,
		Action:   provider.Trap,
		Priority: pol.Priority,
		TmplSrc:  addrOf(tmpl.Saddr.ToIP()),
		TmplDst:  addrOf(tmpl.XfrmId.Daddr.ToIP()),
		Mode:     provider.Transport,
	}
	if tmpl.Mode == 1 {
		p.Mode = provider.Tunnel
	}
	switch pol.Dir {
	case 1: // out
		p.Dir, p.Local, p.Remote = provider.Out, src, dst
	case 2:
		p.Dir, p.Local, p.Remote = provider.Fwd, dst, src
	default:
		p.Dir, p.Local, p.Remote = provider.In, dst, src
	}
	return provider.Event{Kind: provider.Acquire, ReqID: p.ReqID, Policy: p}, true
}

func nlmAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// selectorTS turns one side of a kernel selector into a TrafficSelector.
func selectorTS(family uint16, a *nl.XfrmAddress, plen uint8, proto uint8, port uint16) provider.TrafficSelector {
	ip := a.ToIP()
	var addr netip.Addr
	if family == unix.AF_INET {
		addr = netip.AddrFrom4([4]byte(ip.To4()))
	} else {
		addr = netip.AddrFrom16([16]byte(ip.To16()))
	}
	p := netip.PrefixFrom(addr, int(plen)).Masked()
	ts := provider.TrafficSelector{Start: p.Addr(), End: lastAddr(p), Protocol: proto, EndPort: 0xffff}
	if port != 0 {
		ts.StartPort, ts.EndPort = port, port
	}
	return ts
}
