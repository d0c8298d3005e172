package xfrm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/veil-ipsec/veil/core/provider"
)

// InstallPolicy installs p. Kernel selectors are prefixes, so an address
// range becomes one kernel policy per covering prefix pair; ports must be a
// single port or any (the kernel matches ports by value). Installing a
// policy again replaces veil's kernel policies in place (installPolicy).
func (d *Dataplane) InstallPolicy(ctx context.Context, p *provider.Policy) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	kps, err := d.kernelPolicies(p)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.h == nil {
		return errors.New("xfrm: dataplane closed")
	}
	var added []int
	for i := range kps {
		isNew, err := d.installPolicy(&kps[i])
		if err != nil {
			for _, j := range added {
				d.h.XfrmPolicyDel(&kps[j])
			}
			return fmt.Errorf("xfrm: install policy %s: %w", describe(&kps[i]), err)
		}
		if isNew {
			added = append(added, i)
		}
	}
	if p.Action == provider.Bypass {
		kept := d.bypass[:0]
		for _, b := range d.bypass {
			if !containsSelector(kps, &b) {
				kept = append(kept, b)
			}
		}
		d.bypass = append(kept, kps...)
	}
	return nil
}

// DeletePolicy removes the kernel policies InstallPolicy made for p.
func (d *Dataplane) DeletePolicy(ctx context.Context, p *provider.Policy) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	kps, err := d.kernelPolicies(p)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.h == nil {
		return errors.New("xfrm: dataplane closed")
	}
	var errs []error
	for i := range kps {
		if err := d.h.XfrmPolicyDel(&kps[i]); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("xfrm: delete policy %s: %w", describe(&kps[i]), err))
		}
	}
	if p.Action == provider.Bypass {
		kept := d.bypass[:0]
		for _, b := range d.bypass {
			if !containsSelector(kps, &b) {
				kept = append(kept, b)
			}
		}
		d.bypass = kept
	}
	return errors.Join(errs...)
}

// containsSelector reports whether kps has a policy the kernel would take
// for b: same selector, direction, mark and if_id (priority is not part of
// a policy's identity).
func containsSelector(kps []netlink.XfrmPolicy, b *netlink.XfrmPolicy) bool {
	for i := range kps {
		k, c := kps[i], *b
		k.Priority, c.Priority = 0, 0
		if describe(&k) == describe(&c) {
			return true
		}
	}
	return false
}

func describe(p *netlink.XfrmPolicy) string {
	return fmt.Sprintf("%s %v[%d/%d] -> %v[%d] prio %d mark %v if_id %d", p.Dir, p.Src, p.Proto, p.SrcPort, p.Dst, p.DstPort, p.Priority, p.Mark, p.Ifid)
}

// kernelPolicies converts p into kernel policies (see InstallPolicy).
func (d *Dataplane) kernelPolicies(p *provider.Policy) ([]netlink.XfrmPolicy, error) {
	var dir netlink.Dir
	src, dst := p.Local, p.Remote
	switch p.Dir {
	case provider.Out:
		dir = netlink.XFRM_DIR_OUT
	case provider.In:
		dir, src, dst = netlink.XFRM_DIR_IN, p.Remote, p.Local
	case provider.Fwd:
		dir, src, dst = netlink.XFRM_DIR_FWD, p.Remote, p.Local
	default:
		return nil, fmt.Errorf("xfrm: policy direction %d", p.Dir)
	}
	if src.Start.Is4() != dst.Start.Is4() {
		return nil, fmt.Errorf("xfrm: policy mixes address families: %v and %v", src.Start, dst.Start)
	}
	proto := src.Protocol
	if proto == 0 {
		proto = dst.Protocol
	} else if dst.Protocol != 0 && dst.Protocol != proto {
		return nil, fmt.Errorf("xfrm: policy selectors disagree on protocol (%d vs %d)", src.Protocol, dst.Protocol)
	}
	sport, err := selectorPort(src)
	if err != nil {
		return nil, err
	}
	dport, err := selectorPort(dst)
	if err != nil {
		return nil, err
	}
	if (sport != 0 || dport != 0) && proto == 0 {
		return nil, errors.New("xfrm: ports in a selector need a protocol")
	}
	srcNets, err := rangePrefixes(src.Start, src.End)
	if err != nil {
		return nil, err
	}
	dstNets, err := rangePrefixes(dst.Start, dst.End)
	if err != nil {
		return nil, err
	}
	base := netlink.XfrmPolicy{
		Proto:    netlink.Proto(proto),
		SrcPort:  sport,
		DstPort:  dport,
		Dir:      dir,
		Priority: int(p.Priority),
		Ifid:     int(p.IfID),
	}
	if p.Mark != 0 {
		base.Mark = &netlink.XfrmMark{Value: p.Mark, Mask: 0xffffffff}
	}
	switch p.Action {
	case provider.Protect, provider.Trap, provider.Block:
		reqid, err := d.kernelReqID(p.ReqID)
		if err != nil {
			return nil, err
		}
		mode, err := kernelMode(p.Mode)
		if err != nil && p.Action != provider.Block {
			return nil, err
		}
		// Trap is a Protect policy whose SA does not exist yet: the kernel
		// raises ACQUIRE for it. Block ignores templates; its template only
		// marks the policy as veil's.
		tmpl := netlink.XfrmPolicyTmpl{
			Src:   tmplAddr(p.TmplSrc, src.Start),
			Dst:   tmplAddr(p.TmplDst, src.Start),
			Proto: netlink.XFRM_PROTO_ESP,
			Mode:  netlink.Mode(mode),
			Reqid: int(reqid),
		}
		base.Tmpls = []netlink.XfrmPolicyTmpl{tmpl}
		if p.Action == provider.Block {
			base.Action = netlink.XFRM_POLICY_BLOCK
		}
	case provider.Bypass:
		base.Action = netlink.XFRM_POLICY_ALLOW
	default:
		return nil, fmt.Errorf("xfrm: policy action %d", p.Action)
	}
	var out []netlink.XfrmPolicy
	for _, s := range srcNets {
		for _, t := range dstNets {
			kp := base
			kp.Src, kp.Dst = s, t
			out = append(out, kp)
		}
	}
	return out, nil
}

// tmplAddr is a, or the unspecified address of like's family (transport
// mode ignores template addresses, but the family must be right).
func tmplAddr(a, like netip.Addr) net.IP {
	if a.IsValid() {
		return ipOf(a)
	}
	if like.Is4() {
		return ipOf(netip.IPv4Unspecified())
	}
	return ipOf(netip.IPv6Unspecified())
}

func selectorPort(ts provider.TrafficSelector) (int, error) {
	switch {
	case ts.StartPort == 0 && (ts.EndPort == 0xffff || ts.EndPort == 0):
		return 0, nil
	case ts.StartPort == ts.EndPort:
		return int(ts.StartPort), nil
	}
	return 0, fmt.Errorf("xfrm: port range %d-%d: kernel selectors take one port or any", ts.StartPort, ts.EndPort)
}

// rangePrefixes splits [start, end] into the fewest covering prefixes.
func rangePrefixes(start, end netip.Addr) ([]*net.IPNet, error) {
	if !start.IsValid() || !end.IsValid() || start.Is4() != end.Is4() || end.Less(start) {
		return nil, fmt.Errorf("xfrm: bad address range %v-%v", start, end)
	}
	var out []*net.IPNet
	bits := start.BitLen()
	for {
		// Largest prefix starting at start that stays within end.
		l := bits
		for l > 0 {
			p := netip.PrefixFrom(start, l-1).Masked()
			if p.Addr() != start || lastAddr(p).Compare(end) > 0 {
				break
			}
			l--
		}
		p := netip.PrefixFrom(start, l)
		out = append(out, &net.IPNet{IP: ipOf(start), Mask: net.CIDRMask(l, bits)})
		last := lastAddr(p)
		if last.Compare(end) >= 0 || len(out) > 256 {
			if len(out) > 256 {
				return nil, fmt.Errorf("xfrm: range %v-%v needs too many prefixes", start, end)
			}
			return out, nil
		}
		start = last.Next()
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	b := a.AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	r, _ := netip.AddrFromSlice(b)
	return r
}
