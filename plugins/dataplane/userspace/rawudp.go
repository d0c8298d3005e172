package userspace

import (
	"encoding/binary"
	"errors"
	"net"
	"time"
)

// RawUDP is ESP-in-UDP (RFC 3948) on a port that another process owns: the
// IKE daemon keeps its NAT-T socket on 4500 (IKE and ESP share the port),
// and this dataplane runs in a plugin process, so it cannot read that
// socket. A raw IPv4 socket sees a copy of every UDP datagram: RawUDP keeps
// those to Port (the daemon's socket gets them too and drops the ESP), and
// sends with Port as the source port. Give it to Options.UDPConns.
//
// IPv4 only: raw IPv6 UDP would need the checksum over a pseudo-header this
// socket does not see.
type RawUDP struct {
	conn *net.IPConn
	port uint16
	rbuf []byte
}

// ListenRawUDP opens the raw socket, marked like the dataplane's other
// sockets so what it sends bypasses the steering rules.
func ListenRawUDP(port uint16, mark uint32) (*RawUDP, error) {
	c, err := listenMarked("ip4:17", "0.0.0.0", mark)
	if err != nil {
		return nil, err
	}
	return &RawUDP{conn: c.(*net.IPConn), port: port, rbuf: make([]byte, 65535)}, nil
}

const udpHeaderLen = 8

// ReadFrom returns the next datagram to Port: its payload and its sender.
func (r *RawUDP) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := r.conn.ReadFrom(r.rbuf) // Go strips the IPv4 header
		if err != nil {
			return 0, nil, err
		}
		if n < udpHeaderLen || binary.BigEndian.Uint16(r.rbuf[2:]) != r.port {
			continue
		}
		l := int(binary.BigEndian.Uint16(r.rbuf[4:]))
		if l < udpHeaderLen || l > n {
			continue
		}
		ip, _ := addr.(*net.IPAddr)
		if ip == nil || ip.IP.To4() == nil {
			continue
		}
		// The 4-byte form: callers compare netip addresses, and a 16-byte
		// net.IP would become ::ffff:a.b.c.d.
		return copy(b, r.rbuf[udpHeaderLen:l]), &net.UDPAddr{IP: ip.IP.To4(), Port: int(binary.BigEndian.Uint16(r.rbuf))}, nil
	}
}

// WriteTo sends p from Port to addr (a *net.UDPAddr). The IPv4 UDP
// checksum is optional and left zero (RFC 768, RFC 3948 §3.1.1 for NAT-T).
func (r *RawUDP) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok || ua.IP.To4() == nil {
		return 0, errors.New("userspace: raw UDP sends to IPv4 UDP addresses only")
	}
	if len(p) > 65535-udpHeaderLen-20 {
		return 0, errors.New("userspace: datagram too long")
	}
	pkt := make([]byte, udpHeaderLen+len(p))
	binary.BigEndian.PutUint16(pkt[0:], r.port)
	binary.BigEndian.PutUint16(pkt[2:], uint16(ua.Port))
	binary.BigEndian.PutUint16(pkt[4:], uint16(len(pkt)))
	copy(pkt[udpHeaderLen:], p)
	if _, err := r.conn.WriteTo(pkt, &net.IPAddr{IP: ua.IP}); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (r *RawUDP) Close() error                       { return r.conn.Close() }
func (r *RawUDP) LocalAddr() net.Addr                { return &net.UDPAddr{IP: net.IPv4zero, Port: int(r.port)} }
func (r *RawUDP) SetDeadline(t time.Time) error      { return r.conn.SetDeadline(t) }
func (r *RawUDP) SetReadDeadline(t time.Time) error  { return r.conn.SetReadDeadline(t) }
func (r *RawUDP) SetWriteDeadline(t time.Time) error { return r.conn.SetWriteDeadline(t) }
