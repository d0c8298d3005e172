package userspace

import (
	"context"
	"net"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// batchConn is the sendmmsg/recvmmsg view of a socket (ipv4 and ipv6
// PacketConn share the Message type).
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

func newBatch6(c net.PacketConn) batchConn { return ipv6.NewPacketConn(c) }

// listenMarked opens a socket with SO_MARK set, so the packets it sends
// bypass the steering rules, and a large receive buffer.
func listenMarked(network, addr string, mark uint32) (net.PacketConn, error) {
	return listenMarkedShared(network, addr, mark, false)
}

// listenMarkedShared is listenMarked with SO_REUSEPORT when shared: the
// socket joins the IKE daemon's group on its NAT-T port.
func listenMarkedShared(network, addr string, mark uint32, shared bool) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
			if serr == nil && shared {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}
			if serr == nil {
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return lc.ListenPacket(context.Background(), network, addr)
}
