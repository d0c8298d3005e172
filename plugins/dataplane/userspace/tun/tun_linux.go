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

// Queue is one queue of a TUN device: plain IP packets, no packet info.
type Queue struct {
	file *os.File
	rc   syscall.RawConn
}

// Device is a TUN device and its queues. It disappears when closed.
type Device struct {
	Name   string
	Queues []*Queue
}

// Open creates (or attaches to) the TUN device name with n queues in the
// calling thread's network namespace.
func Open(name string, n int) (*Device, error) {
	if n < 1 {
		n = 1
	}
	d := &Device{}
	for i := 0; i < n; i++ {
		q, ifname, err := openQueue(name, n > 1)
		if err != nil {
			d.Close()
			return nil, err
		}
		d.Name = ifname
		d.Queues = append(d.Queues, q)
	}
	return d, nil
}

func openQueue(name string, multi bool) (*Queue, string, error) {
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
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("tun: TUNSETIFF %s: %w", name, err)
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
	return &Queue{file: f, rc: rc}, ifr.Name(), nil
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

// Write writes one IP packet into the kernel.
func (q *Queue) Write(pkt []byte) error {
	_, err := q.file.Write(pkt)
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
