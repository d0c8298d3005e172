package daemon

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// vipHost puts the virtual IPs peers assign to us (connection vips) on the
// loopback device while their IKE SA lives. There the kernel takes them as
// the source of traffic into the tunnel: the userspace dataplane's routes
// name the child's local address as preferred source, and a route through
// a device without addresses picks lo's first. Addresses are counted, so
// one that two IKE SAs share (a reauthentication) stays until both go.
type vipHost struct {
	log  *slog.Logger
	mu   sync.Mutex
	refs map[netip.Addr]int
}

func newVIPHost(log *slog.Logger) *vipHost {
	return &vipHost{log: log, refs: map[netip.Addr]int{}}
}

// set is engine.Config.VirtualIPs.
func (v *vipHost) set(add bool, addrs []netip.Addr) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, a := range addrs {
		if add {
			v.refs[a]++
			if v.refs[a] == 1 {
				v.apply(true, a)
			}
			continue
		}
		if v.refs[a] == 0 {
			continue
		}
		v.refs[a]--
		if v.refs[a] == 0 {
			delete(v.refs, a)
			v.apply(false, a)
		}
	}
}

func (v *vipHost) apply(add bool, a netip.Addr) {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		v.log.Warn("virtual IP: no loopback device", "err", err)
		return
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}}
	if a.Is6() {
		addr.Flags = unix.IFA_F_NODAD
	}
	if add {
		err = netlink.AddrAdd(lo, addr)
	} else {
		err = netlink.AddrDel(lo, addr)
	}
	if err != nil && !(add && errors.Is(err, unix.EEXIST)) {
		v.log.Warn("virtual IP: changing the loopback device's addresses failed", "vip", a, "add", add, "err", err)
		return
	}
	v.log.Info("virtual IP", "vip", a, "installed", add)
}

// close takes every address off again.
func (v *vipHost) close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	for a := range v.refs {
		v.apply(false, a)
	}
	clear(v.refs)
	return nil
}
