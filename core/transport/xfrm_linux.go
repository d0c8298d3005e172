package transport

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// kernelIPsec installs per-socket "allow" policies in both directions (what
// every IKE daemon does to its sockets) and, on the NAT-T socket, turns on
// RFC 3948 decapsulation.
func kernelIPsec(c *net.UDPConn, natt bool) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		if natt {
			serr = EnableESPInUDP(int(fd))
		} else {
			serr = BypassIPsecPolicies(int(fd))
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// EnableESPInUDP turns a UDP socket into an RFC 3948 encapsulation socket
// (the kernel takes ESP-in-UDP off it, only IKE reaches the reader) and
// exempts it from IPsec policies: the kernel checks inbound policy before it
// decapsulates, so a host-to-host policy would drop the encapsulated ESP.
func EnableESPInUDP(fd int) error {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_ENCAP, unix.UDP_ENCAP_ESPINUDP); err != nil {
		return fmt.Errorf("setsockopt UDP_ENCAP_ESPINUDP: %w", err)
	}
	return BypassIPsecPolicies(fd)
}

// BypassIPsecPolicies installs per-socket "allow" policies in both
// directions so IKE on fd is never subject to the SAs it negotiates.
func BypassIPsecPolicies(fd int) error {
	domain, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return fmt.Errorf("socket family: %w", err)
	}
	level, opt := unix.IPPROTO_IP, unix.IP_XFRM_POLICY
	if domain == unix.AF_INET6 {
		level, opt = unix.IPPROTO_IPV6, unix.IPV6_XFRM_POLICY
	}
	for _, dir := range []uint8{0, 1} { // XFRM_POLICY_IN, XFRM_POLICY_OUT
		p := nl.XfrmUserpolicyInfo{Dir: dir, Action: 0} // XFRM_POLICY_ALLOW
		p.Sel.Family = uint16(domain)
		p.Lft = nl.XfrmLifetimeCfg{SoftByteLimit: nl.XFRM_INF, HardByteLimit: nl.XFRM_INF,
			SoftPacketLimit: nl.XFRM_INF, HardPacketLimit: nl.XFRM_INF}
		if err := unix.SetsockoptString(fd, level, opt, string(p.Serialize())); err != nil {
			return fmt.Errorf("socket bypass policy: %w", err)
		}
	}
	return nil
}
