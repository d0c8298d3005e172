package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// UDPConfig says where to listen. Zero ports mean 500 and 4500; no Addrs
// means 0.0.0.0 and ::.
type UDPConfig struct {
	Addrs   []netip.Addr
	Port    uint16 // IKE port (500)
	NATPort uint16 // NAT-T port (4500): IKE messages carry the non-ESP marker
	// Batch is how many datagrams one receive system call may return.
	Batch int
	// Mark, when not zero, is set on every socket (SO_MARK) so IKE packets
	// bypass a dataplane's steering of protected traffic (the userspace
	// dataplane routes marked packets around its TUN device).
	Mark uint32
	// KernelIPsec prepares the sockets for the kernel's XFRM dataplane:
	// per-socket bypass policies so IKE is never caught by the SAs it
	// negotiates, and UDP_ENCAP_ESPINUDP on the NAT-T sockets so the kernel
	// takes RFC 3948 ESP-in-UDP off them (only IKE reaches us).
	KernelIPsec bool
	// ShareNATPort lets a userspace dataplane receive the ESP-in-UDP that
	// arrives on the NAT-T port through a socket of its own (share.go).
	ShareNATPort bool
}

const maxDatagram = 65535

// UDP is a Conn over real sockets.
type UDP struct {
	socks []*udpSock
	in    chan Packet
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
	// NonIKEDrops counts datagrams on the NAT-T port that were not IKE
	// (ESP without a marker, or too short).
	mu          sync.Mutex
	nonIKEDrops uint64
}

type udpSock struct {
	conn  *net.UDPConn
	local netip.AddrPort
	nat   bool
	// wildcard sockets learn each datagram's destination address from
	// IP_PKTINFO / IPV6_PKTINFO and set the source address when sending
	p4 *ipv4.PacketConn
	p6 *ipv6.PacketConn
}

// ListenUDP binds the IKE and NAT-T ports on each address.
func ListenUDP(cfg UDPConfig) (*UDP, error) {
	if cfg.Port == 0 {
		cfg.Port = 500
	}
	if cfg.NATPort == 0 {
		cfg.NATPort = 4500
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 32
	}
	addrs := cfg.Addrs
	if len(addrs) == 0 {
		addrs = []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
	}
	u := &UDP{in: make(chan Packet, 256), done: make(chan struct{})}
	for _, a := range addrs {
		for _, p := range []uint16{cfg.Port, cfg.NATPort} {
			network := "udp4"
			if a.Is6() && !a.Is4In6() {
				network = "udp6"
			}
			var lc net.ListenConfig
			if cfg.ShareNATPort && p == cfg.NATPort {
				lc.Control = shareControl
			}
			pc, err := lc.ListenPacket(context.Background(), network, netip.AddrPortFrom(a, p).String())
			if err != nil {
				u.Close()
				return nil, fmt.Errorf("transport: listen %s: %w", netip.AddrPortFrom(a, p), err)
			}
			c := pc.(*net.UDPConn)
			if cfg.Mark != 0 {
				if err := setMark(c, cfg.Mark); err != nil {
					c.Close()
					u.Close()
					return nil, fmt.Errorf("transport: SO_MARK on %s: %w", netip.AddrPortFrom(a, p), err)
				}
			}
			if cfg.KernelIPsec {
				if err := kernelIPsec(c, p == cfg.NATPort); err != nil {
					c.Close()
					u.Close()
					return nil, fmt.Errorf("transport: %s: %w", netip.AddrPortFrom(a, p), err)
				}
			}
			local := c.LocalAddr().(*net.UDPAddr).AddrPort()
			s := &udpSock{conn: c, local: netip.AddrPortFrom(local.Addr().Unmap(), local.Port()), nat: p == cfg.NATPort}
			if network == "udp4" {
				s.p4 = ipv4.NewPacketConn(c)
				if a.IsUnspecified() {
					s.p4.SetControlMessage(ipv4.FlagDst, true)
				}
			} else {
				s.p6 = ipv6.NewPacketConn(c)
				if a.IsUnspecified() {
					s.p6.SetControlMessage(ipv6.FlagDst, true)
				}
			}
			u.socks = append(u.socks, s)
		}
	}
	for _, s := range u.socks {
		u.wg.Add(1)
		go u.readLoop(s, cfg.Batch)
	}
	return u, nil
}

// batchReader is what ipv4.PacketConn and ipv6.PacketConn share: ReadBatch
// uses recvmmsg on Linux.
type batchReader interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
}

func (u *UDP) readLoop(s *udpSock, batch int) {
	defer u.wg.Done()
	var r batchReader = s.p4
	oobLen := len(ipv4.NewControlMessage(ipv4.FlagDst))
	if s.p6 != nil {
		r = s.p6
		oobLen = len(ipv6.NewControlMessage(ipv6.FlagDst))
	}
	wildcard := s.local.Addr().IsUnspecified()
	ms := make([]ipv4.Message, batch)
	for i := range ms {
		ms[i].Buffers = [][]byte{make([]byte, maxDatagram)}
		if wildcard {
			ms[i].OOB = make([]byte, oobLen)
		}
	}
	for {
		n, err := r.ReadBatch(ms, 0)
		if err != nil {
			return
		}
		for i := 0; i < n; i++ {
			b := ms[i].Buffers[0][:ms[i].N]
			if s.nat {
				var ok bool
				if b, ok = stripMarker(b); !ok {
					u.mu.Lock()
					u.nonIKEDrops++
					u.mu.Unlock()
					continue
				}
			}
			ua, _ := ms[i].Addr.(*net.UDPAddr)
			if ua == nil {
				continue
			}
			ap := ua.AddrPort()
			p := Packet{Data: append([]byte(nil), b...), Local: s.local,
				Remote: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}
			if wildcard {
				p.Local = netip.AddrPortFrom(s.dst(ms[i].OOB[:ms[i].NN]), s.local.Port())
			}
			select {
			case u.in <- p:
			case <-u.done:
				return
			}
		}
	}
}

// dst returns the destination address from a received control message
// (the unspecified address if there is none).
func (s *udpSock) dst(oob []byte) netip.Addr {
	var ip net.IP
	if s.p4 != nil {
		var cm ipv4.ControlMessage
		if cm.Parse(oob) == nil {
			ip = cm.Dst
		}
	} else {
		var cm ipv6.ControlMessage
		if cm.Parse(oob) == nil {
			ip = cm.Dst
		}
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return s.local.Addr()
	}
	return a.Unmap()
}

func stripMarker(b []byte) ([]byte, bool) {
	if len(b) >= 4 && b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 0 {
		return b[4:], true
	}
	return nil, false
}

// Receive implements Conn.
func (u *UDP) Receive(pkts []Packet) (int, error) {
	if len(pkts) == 0 {
		return 0, nil
	}
	select {
	case p := <-u.in:
		pkts[0] = p
	case <-u.done:
		return 0, ErrClosed
	}
	n := 1
	for n < len(pkts) {
		select {
		case p := <-u.in:
			pkts[n] = p
			n++
		default:
			return n, nil
		}
	}
	return n, nil
}

// Send implements Conn. The socket is the one bound to p.Local's port and
// address family (a wildcard bind matches any address of that family).
func (u *UDP) Send(p Packet) error {
	s := u.pick(p.Local, p.Remote.Addr().Is4())
	if s == nil {
		return fmt.Errorf("transport: no socket for %s", p.Local)
	}
	b := p.Data
	if s.nat {
		b = make([]byte, 4+len(p.Data))
		copy(b[4:], p.Data)
	}
	if s.local.Addr().IsUnspecified() && p.Local.Addr().IsValid() && !p.Local.Addr().IsUnspecified() {
		// A wildcard socket sends from the address the SA uses.
		dst := net.UDPAddrFromAddrPort(p.Remote)
		var err error
		if s.p4 != nil {
			_, err = s.p4.WriteTo(b, &ipv4.ControlMessage{Src: p.Local.Addr().AsSlice()}, dst)
		} else {
			_, err = s.p6.WriteTo(b, &ipv6.ControlMessage{Src: p.Local.Addr().AsSlice()}, dst)
		}
		return err
	}
	_, err := s.conn.WriteToUDPAddrPort(b, p.Remote)
	return err
}

func (u *UDP) pick(local netip.AddrPort, v4 bool) *udpSock {
	var wild *udpSock
	for _, s := range u.socks {
		if s.local.Port() != local.Port() || s.local.Addr().Is4() != v4 {
			continue
		}
		if s.local.Addr() == local.Addr() {
			return s
		}
		if s.local.Addr().IsUnspecified() || !local.Addr().IsValid() {
			wild = s
		}
	}
	return wild
}

// LocalAddrs implements Conn.
func (u *UDP) LocalAddrs() []netip.AddrPort {
	out := make([]netip.AddrPort, len(u.socks))
	for i, s := range u.socks {
		out[i] = s.local
	}
	return out
}

// NonIKEDrops is the number of datagrams dropped on the NAT-T port because
// they carried no non-ESP marker.
func (u *UDP) NonIKEDrops() uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.nonIKEDrops
}

// Close implements Conn.
func (u *UDP) Close() error {
	var errs []error
	u.once.Do(func() {
		close(u.done)
		for _, s := range u.socks {
			errs = append(errs, s.conn.Close())
		}
	})
	u.wg.Wait()
	return errors.Join(errs...)
}

func setMark(c *net.UDPConn, mark uint32) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
	}); err != nil {
		return err
	}
	return serr
}
