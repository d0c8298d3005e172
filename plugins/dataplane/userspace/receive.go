package userspace

/* Inbound packet path, one goroutine per socket (routineReceive):
 *
 * 1. ReadBatch (recvmmsg) takes up to batchSize ESP packets, each at offset
 *    headroom in its own buffer. Raw IPv4 sockets deliver the IP header too;
 *    raw IPv6 sockets and UDP sockets deliver the ESP packet only. On UDP,
 *    a 1-byte 0xff is a NAT keepalive and a zero 4-byte non-ESP marker
 *    means IKE (handed to Options.IKE).
 * 2. SPI lookup (unknown: wrong-SPI counter), replay window Check, which
 *    also infers the high ESN bits (replay counter).
 * 3. Open in place (authentication failure counter), then replay Accept.
 * 4. Transport mode: rebuild an IPv4/IPv6 header in front of the payload
 *    from the SA's addresses. Tunnel mode: the payload is the packet.
 * 5. Inbound policy check: the inner packet must match an inbound policy of
 *    the SA's ReqID, or it is dropped.
 * 6. Write the packet into the TUN device; the kernel delivers it locally.
 */

import (
	"encoding/binary"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/plugins/dataplane/userspace/esp"
	"github.com/veil-ipsec/veil/plugins/dataplane/userspace/policy"
	"github.com/veil-ipsec/veil/plugins/dataplane/userspace/replay"
	"github.com/veil-ipsec/veil/plugins/dataplane/userspace/tun"
)

type recvKind uint8

const (
	recvRaw4 recvKind = iota
	recvRaw6
	recvUDP
)

func (d *Dataplane) routineReceive(c batchConn, kind recvKind) {
	msgs := make([]ipv4.Message, batchSize)
	bufs := make([][]byte, batchSize)
	for i := range msgs {
		bufs[i] = make([]byte, bufSize)
		msgs[i].Buffers = [][]byte{bufs[i][headroom:]}
		msgs[i].OOB = make([]byte, 64)
	}
	q := d.tun.Queues[int(kind)%len(d.tun.Queues)]
	coalesce := newCoalescer()
	var segBufs [][]byte // for datagrams the kernel merged (UDP GRO)
	if kind == recvUDP && d.opts.Offload {
		segBufs = make([][]byte, maxGSOSegments)
		for i := range segBufs {
			segBufs[i] = make([]byte, headroom+4096)
		}
	}
	deliver := func(buf, pkt []byte) {
		if q.VnetHdr {
			coalesce.add(pkt)
		} else {
			d.writeTUN(q, buf, pkt)
		}
	}
	for {
		n, err := c.ReadBatch(msgs, 0)
		if err != nil {
			select {
			case <-d.done:
				return
			default:
			}
			d.log.Debug("ESP receive", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		t := d.tables.Load()
		now := time.Now().UnixNano()
		for i := 0; i < n; i++ {
			buf, size := bufs[i], msgs[i].N
			start, end := headroom, headroom+size
			var from netip.AddrPort
			switch kind {
			case recvRaw4:
				if size < 20 || buf[start]>>4 != 4 {
					d.stats.malformed.Add(1)
					continue
				}
				start += int(buf[start]&0x0f) * 4
			case recvUDP:
				if ua, ok := msgs[i].Addr.(*net.UDPAddr); ok {
					from = ua.AddrPort()
				}
				if gs := groSize(msgs[i].OOB[:msgs[i].NN]); gs > 0 && size > gs && segBufs != nil {
					d.stats.udpGROPackets.Add(1)
					d.openMerged(t, buf[start:end], gs, segBufs, from, now, deliver)
					if q.VnetHdr {
						coalesce.flush(d, q) // the next merged datagram reuses segBufs
					}
					continue
				}
				if !d.demuxUDP(buf[start:end], from) {
					continue
				}
			}
			if start+esp.HeaderLen > end {
				d.stats.malformed.Add(1)
				continue
			}
			if pkt := d.openOne(t, buf, start, end, from, now); pkt != nil {
				deliver(buf, pkt)
			}
		}
		if q.VnetHdr {
			coalesce.flush(d, q)
		}
	}
}

// openMerged opens each ESP packet of a datagram the kernel merged (UDP
// GRO: segments of gs bytes, the last possibly shorter), each in its own
// buffer so that in-place opening never touches a neighbour.
func (d *Dataplane) openMerged(t *tables, data []byte, gs int, segBufs [][]byte, from netip.AddrPort, now int64, deliver func(buf, pkt []byte)) {
	for k, off := 0, 0; off < len(data) && k < len(segBufs); k, off = k+1, off+gs {
		seg := data[off:min(off+gs, len(data))]
		b := segBufs[k]
		if len(seg) > len(b)-headroom-64 || !d.demuxUDP(seg, from) {
			continue
		}
		n := copy(b[headroom:], seg)
		if pkt := d.openOne(t, b, headroom, headroom+n, from, now); pkt != nil {
			deliver(b, pkt)
		}
	}
}

// writeTUN writes pkt, a sub-slice of buf, into the TUN device.
func (d *Dataplane) writeTUN(q *tun.Queue, buf, pkt []byte) {
	h := cap(buf) - cap(pkt)
	if err := q.Write(buf, h, h+len(pkt)); err != nil {
		d.log.Debug("TUN write", "err", err)
	}
}

// routineReceiveConn serves a caller-provided UDP socket one packet at a time.
func (d *Dataplane) routineReceiveConn(c net.PacketConn) {
	buf := make([]byte, bufSize)
	q := d.tun.Queues[0]
	for {
		n, addr, err := c.ReadFrom(buf[headroom:])
		if err != nil {
			select {
			case <-d.done:
				c.SetReadDeadline(time.Time{}) // hand the socket back as it was
				return
			default:
			}
			if ne, ok := err.(net.Error); ok && !ne.Timeout() {
				return // the owner closed it
			}
			continue
		}
		var from netip.AddrPort
		if ua, ok := addr.(*net.UDPAddr); ok {
			from = ua.AddrPort()
		}
		if !d.demuxUDP(buf[headroom:headroom+n], from) || n < esp.HeaderLen {
			continue
		}
		if pkt := d.openOne(d.tables.Load(), buf, headroom, headroom+n, from, time.Now().UnixNano()); pkt != nil {
			d.writeTUN(q, buf, pkt)
		}
	}
}

// demuxUDP reports whether a UDP datagram on the ESP-in-UDP port is ESP
// (RFC 3948 §2.2); IKE goes to the IKE handler, keepalives are dropped.
func (d *Dataplane) demuxUDP(p []byte, from netip.AddrPort) bool {
	if len(p) == 1 && p[0] == 0xff {
		return false
	}
	if len(p) >= 4 && binary.BigEndian.Uint32(p) == 0 {
		if d.opts.IKE != nil {
			d.opts.IKE(append([]byte(nil), p[4:]...), from)
		}
		return false
	}
	if len(p) < esp.HeaderLen {
		d.stats.malformed.Add(1)
		return false
	}
	return true
}

// openOne runs stages 2-5 for the ESP packet buf[start:end] and returns the
// packet to deliver (a sub-slice of buf), or nil when it was dropped.
func (d *Dataplane) openOne(t *tables, buf []byte, start, end int, from netip.AddrPort, now int64) []byte {
	spi, low, _ := esp.ParseHeader(buf[start:end])
	s := t.inBySPI[spi]
	if s == nil {
		d.stats.wrongSPI.Add(1)
		return nil
	}
	seq, r := s.window.Check(low)
	if r != replay.OK {
		s.replayDrops.Add(1)
		return nil
	}
	payload, nh, err := s.esp.Open(buf, start, end, seq)
	if err != nil {
		if err == esp.ErrAuth {
			s.authFailures.Add(1)
		} else {
			d.stats.malformed.Add(1)
		}
		return nil
	}
	if s.window.Accept(seq) != replay.OK {
		s.replayDrops.Add(1)
		return nil
	}
	if from.IsValid() && s.cfg.Encap != nil && from.Port() != s.cfg.Encap.SrcPort {
		d.emit(provider.Event{Kind: provider.NATMapping, ReqID: s.cfg.ReqID, SA: s.key, Addr: from.Addr(), NewPort: from.Port()})
	}
	if nh == 59 { // RFC 4303 dummy packet
		return nil
	}
	pkt := payload
	pstart := cap(buf) - cap(payload) // payload is buf[pstart:pstart+len(payload)]
	if s.cfg.Mode == provider.Transport {
		pkt = buildHeader(buf, pstart, len(payload), nh, s.cfg.Src, s.cfg.Dst)
		if pkt == nil {
			d.stats.malformed.Add(1)
			return nil
		}
	} else if len(pkt) == 0 || !(nh == 4 && pkt[0]>>4 == 4 || nh == 41 && pkt[0]>>4 == 6) {
		d.stats.malformed.Add(1)
		return nil
	}
	f, ok := policy.Parse(pkt)
	if !ok {
		d.stats.malformed.Add(1)
		return nil
	}
	matched := false
	for _, p := range t.inPolicies {
		if p.ReqID == s.cfg.ReqID && p.Action == provider.Protect &&
			policy.Match(&p.Local, &p.Remote, f.Dst, f.Src, f.Proto, f.DstPort, f.SrcPort) {
			matched = true
			break
		}
	}
	if !matched {
		d.stats.policyMismatch.Add(1)
		return nil
	}
	d.account(s, len(pkt), now)
	return pkt
}

// buildHeader writes an IP header for a transport-mode payload at
// buf[off:off+n] and returns the whole packet.
func buildHeader(buf []byte, off, n int, proto byte, src, dst netip.Addr) []byte {
	if src.Is4() {
		h := off - 20
		if h < 0 || n+20 > 0xffff {
			return nil
		}
		b := buf[h:off]
		b[0], b[1] = 0x45, 0
		binary.BigEndian.PutUint16(b[2:], uint16(n+20))
		binary.BigEndian.PutUint32(b[4:], 0)
		b[8], b[9] = 64, proto
		b[10], b[11] = 0, 0
		s4, d4 := src.As4(), dst.As4()
		copy(b[12:], s4[:])
		copy(b[16:], d4[:])
		binary.BigEndian.PutUint16(b[10:], checksum(b, 0))
		return buf[h : off+n]
	}
	h := off - 40
	if h < 0 || n > 0xffff {
		return nil
	}
	b := buf[h:off]
	binary.BigEndian.PutUint32(b, 6<<28)
	binary.BigEndian.PutUint16(b[4:], uint16(n))
	b[6], b[7] = proto, 64
	s16, d16 := src.As16(), dst.As16()
	copy(b[8:], s16[:])
	copy(b[24:], d16[:])
	return buf[h : off+n]
}

// checksum is the Internet checksum (RFC 1071) of b plus an initial sum.
func checksum(b []byte, sum uint32) uint16 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
