package userspace

import (
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/plugins/dataplane/userspace/policy"
)

// routing owns one routing table and a range of rule priorities:
//
//	priority P      fwmark M lookup main   (outer ESP/IKE packets bypass)
//	priority P+50   to <remote> ipproto X dport Y sport Z lookup main (Bypass policies)
//	priority P+100  to <remote> ipproto X dport Y sport Z lookup T  (Protect, Trap, Block)
//	table T         <remote> dev veil0 [src <local>], default dev veil0
//
// Anything found in table T or the priority range P..P+999 is ours and is
// deleted on start (crash leftovers) and on Close.
type routing struct {
	h        *netlink.Handle
	table    int
	prio     int
	mark     uint32
	tunName  string
	linkIdx  int
	refs     map[string]int // rule or route key -> users
	installs map[string][]func() error
	actions  map[string]provider.PolicyAction
}

const (
	bypassRuleOffset = 50
	policyRuleOffset = 100
)

func newRouting(table, prio int, mark uint32, tunName string) (*routing, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return &routing{h: h, table: table, prio: prio, mark: mark, tunName: tunName,
		refs: map[string]int{}, installs: map[string][]func() error{}, actions: map[string]provider.PolicyAction{}}, nil
}

func (r *routing) close() { r.h.Close() }

func (r *routing) ours(rule *netlink.Rule) bool {
	return rule.Table == r.table || rule.Priority >= r.prio && rule.Priority < r.prio+1000
}

// cleanup removes every rule and route this dataplane could have made.
func (r *routing) cleanup() {
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rules, _ := r.h.RuleList(fam)
		for i := range rules {
			if r.ours(&rules[i]) {
				rules[i].Family = fam
				r.h.RuleDel(&rules[i])
			}
		}
		routes, _ := r.h.RouteListFiltered(fam, &netlink.Route{Table: r.table}, netlink.RT_FILTER_TABLE)
		for i := range routes {
			r.h.RouteDel(&routes[i])
		}
	}
	r.refs = map[string]int{}
	r.installs = map[string][]func() error{}
	r.actions = map[string]provider.PolicyAction{}
}

func (r *routing) setMTU(mtu int) error {
	link, err := r.h.LinkByIndex(r.linkIdx)
	if err != nil {
		return err
	}
	if link.Attrs().MTU == mtu {
		return nil
	}
	return r.h.LinkSetMTU(link, mtu)
}

// setupDevice brings the TUN device up and adds the bypass rules and the
// table's default routes.
func (r *routing) setupDevice(mtu int) error {
	link, err := r.h.LinkByName(r.tunName)
	if err != nil {
		return fmt.Errorf("TUN device %s: %w", r.tunName, err)
	}
	r.linkIdx = link.Attrs().Index
	if err := r.h.LinkSetMTU(link, mtu); err != nil {
		return fmt.Errorf("set MTU %d on %s: %w", mtu, r.tunName, err)
	}
	if err := r.h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", r.tunName, err)
	}
	// Decrypted packets arrive on the TUN device from addresses whose main
	// route points elsewhere: strict reverse-path filtering would drop them.
	os.WriteFile("/proc/sys/net/ipv4/conf/"+r.tunName+"/rp_filter", []byte("2"), 0)
	os.WriteFile("/proc/sys/net/ipv6/conf/"+r.tunName+"/disable_ipv6", []byte("0"), 0)
	mask := ^uint32(0)
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rule := netlink.NewRule()
		rule.Family, rule.Priority, rule.Mark, rule.Mask, rule.Table = fam, r.prio, r.mark, &mask, unix.RT_TABLE_MAIN
		if err := r.h.RuleAdd(rule); err != nil {
			return fmt.Errorf("bypass rule: %w", err)
		}
		dst := &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}
		if fam == netlink.FAMILY_V6 {
			dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		}
		if err := r.h.RouteAdd(&netlink.Route{LinkIndex: r.linkIdx, Dst: dst, Table: r.table, Scope: netlink.SCOPE_LINK}); err != nil {
			return fmt.Errorf("default route in table %d: %w", r.table, err)
		}
	}
	return nil
}

func policyKey(p *provider.Policy) string {
	return fmt.Sprintf("%v|%v|%d|%d", p.Local, p.Remote, p.Mark, p.IfID)
}

// addPolicy steers the policy's outbound traffic into the TUN device, or
// for Bypass policies keeps it on the main table ahead of the steering rules.
func (r *routing) addPolicy(p *provider.Policy) error {
	key := policyKey(p)
	if _, ok := r.installs[key]; ok {
		if (r.actions[key] == provider.Bypass) == (p.Action == provider.Bypass) {
			return nil
		}
		r.deletePolicy(p)
	}
	prio, table := r.prio+policyRuleOffset, r.table
	if p.Action == provider.Bypass {
		prio, table = r.prio+bypassRuleOffset, unix.RT_TABLE_MAIN
	}
	remote := p.Remote
	if !remote.Start.IsValid() {
		if p.Local.Start.Is6() {
			remote.Start, remote.End = netip.IPv6Unspecified(), netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
		} else {
			remote.Start, remote.End = netip.IPv4Unspecified(), netip.MustParseAddr("255.255.255.255")
		}
	}
	var undo []func() error
	fail := func(err error) error {
		for _, u := range undo {
			u()
		}
		return err
	}
	for _, pfx := range policy.Prefixes(remote.Start, remote.End) {
		rule := netlink.NewRule()
		rule.Family = netlink.FAMILY_V4
		if pfx.Addr().Is6() {
			rule.Family = netlink.FAMILY_V6
		}
		rule.Priority, rule.Table = prio, table
		if pfx.Bits() > 0 {
			rule.Dst = prefixToIPNet(pfx)
		}
		rule.IPProto = int(remote.Protocol)
		if rule.IPProto == 0 {
			rule.IPProto = int(p.Local.Protocol)
		}
		if pr := portRange(&remote); pr != nil && rule.IPProto != 0 {
			rule.Dport = pr
		}
		if pr := portRange(&p.Local); pr != nil && rule.IPProto != 0 {
			rule.Sport = pr
		}
		if u, err := r.ref("rule "+rule.String()+fmt.Sprint(rule.IPProto, rule.Dport, rule.Sport), func() error { return r.h.RuleAdd(rule) }, func() error { return r.h.RuleDel(rule) }); err != nil {
			return fail(fmt.Errorf("policy rule for %s: %w", pfx, err))
		} else {
			undo = append(undo, u)
		}
		// A route with the local address as preferred source, so sockets that
		// are not bound pick the address the selector names.
		if table == r.table && p.Local.Start.IsValid() && p.Local.Start == p.Local.End && p.Local.Start.Is4() == pfx.Addr().Is4() && pfx.Bits() > 0 {
			route := &netlink.Route{LinkIndex: r.linkIdx, Dst: prefixToIPNet(pfx), Src: p.Local.Start.AsSlice(), Table: r.table, Scope: netlink.SCOPE_LINK}
			if u, err := r.ref("route "+pfx.String(), func() error { return r.h.RouteAdd(route) }, func() error { return r.h.RouteDel(route) }); err == nil {
				undo = append(undo, u)
			}
		}
	}
	r.installs[key] = undo
	r.actions[key] = p.Action
	return nil
}

func (r *routing) deletePolicy(p *provider.Policy) {
	key := policyKey(p)
	for _, u := range r.installs[key] {
		u()
	}
	delete(r.installs, key)
	delete(r.actions, key)
}

// ref installs a shared rule or route once and returns the release function.
func (r *routing) ref(key string, add, del func() error) (func() error, error) {
	if r.refs[key] == 0 {
		if err := add(); err != nil && !os.IsExist(err) {
			return nil, err
		}
	}
	r.refs[key]++
	return func() error {
		r.refs[key]--
		if r.refs[key] <= 0 {
			delete(r.refs, key)
			return del()
		}
		return nil
	}, nil
}

func portRange(ts *provider.TrafficSelector) *netlink.RulePortRange {
	if ts.StartPort == 0 && (ts.EndPort == 0 || ts.EndPort == 0xffff) {
		return nil
	}
	return &netlink.RulePortRange{Start: ts.StartPort, End: ts.EndPort}
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
