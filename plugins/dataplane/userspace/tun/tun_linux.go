// Package tun opens a Linux TUN device with one file descriptor per queue
// (IFF_MULTI_QUEUE), so several goroutines can read and write packets in
// parallel, each on its own queue, as wireguard-go's tun package does.
package tun

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Queue is one queue of a TUN device: IP packets, no packet info, and with
// VnetHdr a 10-byte virtio-net header in front of each packet.
type Queue struct {
	file    *os.File
	rc      syscall.RawConn
	VnetHdr bool
}

// VnetHdrLen is the size of struct virtio_net_hdr.
const VnetHdrLen = 10

// Offload flags for TUNSETOFFLOAD (linux/if_tun.h).
const (
	offloadCsum = 0x01
	offloadTSO4 = 0x02
	offloadTSO6 = 0x04
)

// Device is a TUN device and its queues. It disappears when closed.
type Device struct {
	Name   string
	Queues []*Queue
}

// Open creates (or attaches to) the TUN device name with n queues in the
// calling thread's network namespace. With offload the kernel may hand over
// TCP segments of up to 64 KiB (TSO) with partial checksums, described by a
// virtio-net header the reader must honour.
func Open(name string, n int, offload bool) (*Device, error) {
	if n < 1 {
		n = 1
	}
	d := &Device{}
	for i := 0; i < n; i++ {
		q, ifname, err := openQueue(name, n > 1, offload)
		if err != nil {
			d.Close()
			return nil, err
		}
		d.Name = ifname
		d.Queues = append(d.Queues, q)
	}
	return d, nil
}

func openQueue(name string, multi, offload bool) (*Queue, string, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", fmt.Errorf("tun: open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("tun: name %q: %w", name, err)
	}
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if multi {
		flags |= unix.IFF_MULTI_QUEUE
	}
	if offload {
		flags |= unix.IFF_VNET_HDR
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("tun: TUNSETIFF %s: %w", name, err)
	}
	if offload {
		if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, offloadCsum|offloadTSO4|offloadTSO6); err != nil {
			unix.Close(fd)
			return nil, "", fmt.Errorf("tun: TUNSETOFFLOAD: %w", err)
		}
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, "", err
	}
	f := os.NewFile(uintptr(fd), "/dev/net/tun")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, "", err
	}
	return &Queue{file: f, rc: rc, VnetHdr: offload}, ifr.Name(), nil
}

// ErrClosed is returned by Read after Close.
var ErrClosed = os.ErrClosed

// ReadBatch reads up to len(bufs) packets, each into bufs[i][offset:], and
// stores their sizes. It blocks until at least one packet is there and then
// takes whatever else is queued without blocking again, so the caller can
// encrypt and send the batch with one sendmmsg.
func (q *Queue) ReadBatch(bufs [][]byte, sizes []int, offset int) (int, error) {
	n := 0
	var opErr error
	err := q.rc.Read(func(fd uintptr) bool {
		for n < len(bufs) {
			r, err := unix.Read(int(fd), bufs[n][offset:])
			if err == unix.EAGAIN {
				return n > 0
			}
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				opErr = err
				return true
			}
			sizes[n] = r
			n++
		}
		return true
	})
	if err != nil {
		return n, err
	}
	if n == 0 && opErr != nil {
		return 0, opErr
	}
	return n, nil
}

// Write writes the IP packet buf[start:end] into the kernel. With VnetHdr
// the header (no offload) is written into buf[start-VnetHdrLen:start].
func (q *Queue) Write(buf []byte, start, end int) error {
	if q.VnetHdr {
		if start < VnetHdrLen {
			return errors.New("tun: no headroom for the virtio-net header")
		}
		start -= VnetHdrLen
		clear(buf[start : start+VnetHdrLen])
	}
	_, err := q.file.Write(buf[start:end])
	return err
}

// WriteRaw writes b as it is (with VnetHdr, b starts with the header).
func (q *Queue) WriteRaw(b []byte) error {
	_, err := q.file.Write(b)
	return err
}

// Close closes every queue; the device goes away with the last one.
func (d *Device) Close() error {
	var errs []error
	for _, q := range d.Queues {
		errs = append(errs, q.file.Close())
	}
	return errors.Join(errs...)
}

// QueueFromFile wraps an already open packet file (a TUN queue opened
// elsewhere, or any file for tests and benchmarks).
func QueueFromFile(f *os.File) (*Queue, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &Queue{file: f, rc: rc}, nil
}
