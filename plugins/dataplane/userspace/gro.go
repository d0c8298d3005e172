package userspace

import (
	"bytes"
	"encoding/binary"

	"github.com/veil-ipsec/veil/plugins/dataplane/userspace/tun"
)

// coalescer merges consecutive TCP segments of one flow, decrypted from one
// receive batch, into a single large packet written with a virtio-net GSO
// header, so the kernel takes one TUN write per run instead of one per
// segment (the receive half of Options.Offload).
type coalescer struct {
	pkts [][]byte
	out  []byte
}

func newCoalescer() *coalescer {
	return &coalescer{out: make([]byte, headroom+65535+64)}
}

func (c *coalescer) add(pkt []byte) { c.pkts = append(c.pkts, pkt) }

// tcpInfo is what decides whether two segments can be merged.
type tcpInfo struct {
	ipLen, tcpLen int
	v4            bool
}

func parseTCP(p []byte) (tcpInfo, bool) {
	var ti tcpInfo
	switch {
	case len(p) >= 20 && p[0] == 0x45 && p[9] == 6 && binary.BigEndian.Uint16(p[6:])&0x3fff == 0:
		ti.ipLen, ti.v4 = 20, true
	case len(p) >= 40 && p[0]>>4 == 6 && p[6] == 6:
		ti.ipLen = 40
	default:
		return ti, false
	}
	if len(p) < ti.ipLen+20 {
		return ti, false
	}
	ti.tcpLen = int(p[ti.ipLen+12]>>4) * 4
	if ti.tcpLen < 20 || len(p) < ti.ipLen+ti.tcpLen {
		return ti, false
	}
	return ti, true
}

// canFollow reports whether next continues first..prev in sequence with
// identical headers apart from the sequence number and lengths.
func canFollow(first, prev, next []byte, ti tcpInfo, gsoSize int) bool {
	tn, ok := parseTCP(next)
	if !ok || tn != ti {
		return false
	}
	hl := ti.ipLen + ti.tcpLen
	if ti.v4 {
		// Same TOS, TTL, protocol, addresses.
		if first[1] != next[1] || first[8] != next[8] || !bytes.Equal(first[12:20], next[12:20]) {
			return false
		}
	} else if !bytes.Equal(first[:4], next[:4]) || !bytes.Equal(first[6:40], next[6:40]) {
		return false
	}
	ft, pt, nt := first[ti.ipLen:], prev[ti.ipLen:], next[ti.ipLen:]
	prevPayload := len(prev) - hl
	if prevPayload != gsoSize || pt[13] != 0x10 { // only full, plain ACK segments may be followed
		return false
	}
	return bytes.Equal(ft[0:4], nt[0:4]) && // ports
		binary.BigEndian.Uint32(nt[4:]) == binary.BigEndian.Uint32(pt[4:])+uint32(prevPayload) &&
		bytes.Equal(ft[8:12], nt[8:12]) && // ack
		(nt[13] == 0x10 || nt[13] == 0x18) && // ACK, or ACK+PSH ending the run
		bytes.Equal(ft[14:16], nt[14:16]) && // window
		bytes.Equal(ft[20:ti.tcpLen], nt[20:ti.tcpLen]) && // options (timestamps)
		len(next)-hl <= gsoSize && len(next)-hl > 0
}

// flush writes the batch: runs of mergeable segments as one GSO packet,
// everything else as it is.
func (c *coalescer) flush(d *Dataplane, q *tun.Queue) {
	for i := 0; i < len(c.pkts); {
		first := c.pkts[i]
		ti, ok := parseTCP(first)
		j := i + 1
		if ok {
			hl := ti.ipLen + ti.tcpLen
			gsoSize := len(first) - hl
			total := len(first)
			for j < len(c.pkts) && gsoSize > 0 && total+len(c.pkts[j])-hl <= 65535 && canFollow(first, c.pkts[j-1], c.pkts[j], ti, gsoSize) {
				total += len(c.pkts[j]) - hl
				j++
			}
			if j-i > 1 {
				d.stats.groPackets.Add(1)
				c.writeMerged(d, q, c.pkts[i:j], ti, gsoSize)
				i = j
				continue
			}
		}
		// Not merged: a plain write with an empty virtio-net header.
		c.writeOne(d, q, first)
		i++
	}
	c.pkts = c.pkts[:0]
}

func (c *coalescer) writeOne(d *Dataplane, q *tun.Queue, pkt []byte) {
	out := c.out[headroom : headroom+len(pkt)]
	copy(out, pkt)
	if err := q.Write(c.out, headroom, headroom+len(pkt)); err != nil {
		d.log.Debug("TUN write", "err", err)
	}
}

func (c *coalescer) writeMerged(d *Dataplane, q *tun.Queue, run [][]byte, ti tcpInfo, gsoSize int) {
	hl := ti.ipLen + ti.tcpLen
	out := c.out[headroom:]
	n := copy(out, run[0][:hl])
	for _, p := range run {
		n += copy(out[n:], p[hl:])
	}
	out = out[:n]
	tcp := out[ti.ipLen:]
	tcp[13] = run[len(run)-1][ti.ipLen+13] // PSH from the last segment
	gsoType := byte(gsoTCPv6)
	if ti.v4 {
		binary.BigEndian.PutUint16(out[2:], uint16(n))
		out[10], out[11] = 0, 0
		binary.BigEndian.PutUint16(out[10:], checksum(out[:20], 0))
		gsoType = gsoTCPv4
	} else {
		binary.BigEndian.PutUint16(out[4:], uint16(n-40))
	}
	// Partial checksum: the field holds the folded pseudo-header sum and
	// the kernel completes it (VIRTIO_NET_HDR_F_NEEDS_CSUM).
	binary.BigEndian.PutUint16(tcp[16:], ^checksum(nil, pseudoSum(out, ti.ipLen, len(tcp))))
	hdr := c.out[headroom-tun.VnetHdrLen : headroom]
	hdr[0], hdr[1] = vnetFlagNeedsCsum, gsoType
	binary.LittleEndian.PutUint16(hdr[2:], uint16(hl))
	binary.LittleEndian.PutUint16(hdr[4:], uint16(gsoSize))
	binary.LittleEndian.PutUint16(hdr[6:], uint16(ti.ipLen))
	binary.LittleEndian.PutUint16(hdr[8:], 16)
	if err := q.WriteRaw(c.out[headroom-tun.VnetHdrLen : headroom+n]); err != nil {
		d.log.Debug("TUN write (GSO)", "err", err)
	}
}
