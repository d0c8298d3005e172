package userspace

import (
	"encoding/binary"
	"net"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// UDP segmentation offload for ESP-in-UDP (Linux UDP_SEGMENT / UDP_GRO):
// equal-sized ESP packets to one peer leave in one sendmmsg entry that the
// kernel cuts, and the receive side gets runs of datagrams as one buffer.

const maxGSOSegments = 64

// gsoQueue batches ESP-in-UDP packets, merging runs to the same address.
type gsoQueue struct {
	conn    batchConn
	msgs    []ipv4.Message
	bufs    [][]byte // one 64 KiB buffer per message
	n       int
	segSize []int // per message: segment size (0 = single packet)
	segs    []int
	lastLen []int
	enabled bool
}

func newGSOQueue(c batchConn) *gsoQueue {
	q := &gsoQueue{conn: c, msgs: make([]ipv4.Message, batchSize), bufs: make([][]byte, batchSize),
		segSize: make([]int, batchSize), segs: make([]int, batchSize), lastLen: make([]int, batchSize), enabled: true}
	for i := range q.msgs {
		q.bufs[i] = make([]byte, 65535)
		q.msgs[i].Buffers = make([][]byte, 1)
		q.msgs[i].OOB = make([]byte, unix.CmsgSpace(2))
	}
	return q
}

func (q *gsoQueue) add(d *Dataplane, pkt []byte, addr net.Addr) {
	if q.n > 0 && q.enabled {
		i := q.n - 1
		m := &q.msgs[i]
		// Append to the previous run: same peer, same size as its segments,
		// and the previous packet was not a shorter final one.
		if m.Addr == addr && len(pkt) == q.segSize[i] && q.lastLen[i] == q.segSize[i] &&
			q.segs[i] < maxGSOSegments && len(m.Buffers[0])+len(pkt) <= len(q.bufs[i]) {
			n := len(m.Buffers[0])
			m.Buffers[0] = q.bufs[i][:n+copy(q.bufs[i][n:], pkt)]
			q.segs[i]++
			q.lastLen[i] = len(pkt)
			return
		}
	}
	if q.n == len(q.msgs) {
		q.flush(d)
	}
	i := q.n
	q.msgs[i].Buffers[0] = q.bufs[i][:copy(q.bufs[i], pkt)]
	q.msgs[i].Addr = addr
	q.segSize[i], q.segs[i], q.lastLen[i] = len(pkt), 1, len(pkt)
	q.n++
}

func (q *gsoQueue) flush(d *Dataplane) {
	for i := 0; i < q.n; i++ {
		m := &q.msgs[i]
		m.OOB = m.OOB[:cap(m.OOB)]
		if q.segs[i] > 1 {
			putSegmentCmsg(m.OOB, uint16(q.segSize[i]))
		} else {
			m.OOB = m.OOB[:0]
		}
	}
	for sent := 0; sent < q.n; {
		n, err := q.conn.WriteBatch(q.msgs[sent:q.n], 0)
		if err != nil {
			if q.segs[sent] > 1 && q.enabled {
				// The kernel or the device refused segmentation: resend this
				// run packet by packet and stop merging.
				q.enabled = false
				q.sendSplit(d, sent)
			} else {
				d.stats.sendErrors.Add(1)
			}
			n++
		}
		sent += n
	}
	q.n = 0
}

func (q *gsoQueue) sendSplit(d *Dataplane, i int) {
	m := q.msgs[i]
	buf, size := m.Buffers[0], q.segSize[i]
	one := []ipv4.Message{{Buffers: [][]byte{nil}, Addr: m.Addr}}
	for off := 0; off < len(buf); off += size {
		one[0].Buffers[0] = buf[off:min(off+size, len(buf))]
		if _, err := q.conn.WriteBatch(one, 0); err != nil {
			d.stats.sendErrors.Add(1)
		}
	}
}

func putSegmentCmsg(b []byte, size uint16) {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(b[unix.CmsgLen(0):], size)
}

// groSize returns the segment size from a UDP_GRO control message, or 0.
func groSize(oob []byte) int {
	for len(oob) >= unix.CmsgLen(0) {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.CmsgLen(0) || l > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && l >= unix.CmsgLen(2) {
			return int(binary.NativeEndian.Uint16(oob[unix.CmsgLen(0):]))
		}
		oob = oob[unix.CmsgSpace(l-unix.CmsgLen(0)):]
	}
	return 0
}

// enableGRO asks the kernel to coalesce received datagrams (best effort).
func enableGRO(c net.PacketConn) {
	if uc, ok := c.(*net.UDPConn); ok {
		if rc, err := uc.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1) })
		}
	}
}
