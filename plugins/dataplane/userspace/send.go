package userspace

/* Outbound packet path, one goroutine per TUN queue (routineReadTUN):
 *
 * 1. ReadBatch takes up to batchSize packets the kernel routed into the TUN
 *    device (policy routing rules), each at offset headroom in its own buffer
 *    so the ESP header can be written in front of it without copying.
 * 2. For each packet: parse the flow, find the first outbound policy whose
 *    selectors match (priority order). No policy, Bypass or Block: drop.
 *    Trap, or Protect without an SA: raise Acquire (rate-limited), drop —
 *    protected traffic is never sent in clear.
 * 3. Size check against the SA's path MTU: too big gets ICMP fragmentation
 *    needed / packet too big written back into the TUN device.
 * 4. Take the next sequence number (atomic, so several queues share an SA);
 *    near exhaustion emit SeqExhausted, at the limit drop (never wrap).
 * 5. Seal in place (transport: payload after the IP header, next header =
 *    its protocol; tunnel: the whole packet, next header 4 or 41).
 * 6. Queue the ESP packet per socket (raw IPv4/IPv6, UDP IPv4/IPv6) and
 *    flush each with one sendmmsg at the end of the batch.
 */

import (
	"encoding/binary"
	"net"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/plugins/dataplane/userspace/policy"
	"github.com/veil-ipsec/veil/plugins/dataplane/userspace/tun"
)

const (
	batchSize = 64
	headroom  = 64 // esp.Headroom + ESP header + IV, with room to spare
	bufSize   = headroom + 65535 + 64
)

// sendQueue collects sealed packets for one socket.
type sendQueue struct {
	conn batchConn
	msgs []ipv4.Message
	n    int
}

func newSendQueue(c batchConn) *sendQueue { // batchSize messages per sendmmsg
	q := &sendQueue{conn: c, msgs: make([]ipv4.Message, batchSize)}
	for i := range q.msgs {
		q.msgs[i].Buffers = make([][]byte, 1)
	}
	return q
}

func (q *sendQueue) add(d *Dataplane, pkt []byte, addr net.Addr) {
	if q.n == len(q.msgs) {
		q.flush(d)
	}
	q.msgs[q.n].Buffers[0] = pkt
	q.msgs[q.n].Addr = addr
	q.n++
}

func (q *sendQueue) flush(d *Dataplane) {
	for sent := 0; sent < q.n; {
		n, err := q.conn.WriteBatch(q.msgs[sent:q.n], 0)
		if err != nil {
			// Skip the packet that failed (e.g. EMSGSIZE, no route).
			d.stats.sendErrors.Add(1)
			n++
		}
		sent += n
	}
	q.n = 0
}

func (d *Dataplane) routineReadTUN(q *tun.Queue) {
	bufs := make([][]byte, batchSize)
	for i := range bufs {
		bufs[i] = make([]byte, bufSize)
	}
	sizes := make([]int, batchSize)
	var raw4, raw6, udp4, udp6 *sendQueue
	if d.raw4 != nil {
		raw4, raw6 = newSendQueue(d.raw4), newSendQueue(d.raw6)
	}
	var gso4, gso6 *gsoQueue
	// Either family's ESP-in-UDP socket may be missing (the daemon listens
	// on one family only): its queues stay nil and such SAs count send errors.
	if d.udp4 != nil {
		udp4 = newSendQueue(d.udp4)
		if d.opts.Offload {
			gso4 = newGSOQueue(d.udp4)
		}
	}
	if d.udp6 != nil {
		udp6 = newSendQueue(d.udp6)
		if d.opts.Offload {
			gso6 = newGSOQueue(d.udp6)
		}
	}
	readOff, reads := headroom, bufs
	var segBufs [][]byte
	var segSizes []int
	if q.VnetHdr {
		// A TSO packet becomes up to 64 KiB / MSS segments: read fewer
		// packets per batch and keep buffers for their segments.
		readOff, reads = headroom-tun.VnetHdrLen, bufs[:4]
		segBufs, segSizes = make([][]byte, 256), make([]int, 256)
		for i := range segBufs {
			segBufs[i] = make([]byte, headroom+4096)
		}
	}
	flushAll := func() {
		for _, sq := range []*sendQueue{raw4, raw6, udp4, udp6} {
			if sq != nil && sq.n > 0 {
				sq.flush(d)
			}
		}
		for _, gq := range []*gsoQueue{gso4, gso6} {
			if gq != nil && gq.n > 0 {
				gq.flush(d)
			}
		}
	}
	for {
		n, err := q.ReadBatch(reads, sizes, readOff)
		if err != nil {
			select {
			case <-d.done:
				return
			default:
			}
			d.log.Debug("TUN read", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		t := d.tables.Load()
		now := time.Now().UnixNano()
		send := func(buf []byte, size int) {
			pkt, s := d.sealOne(t, q, buf, size, now)
			if pkt == nil {
				return
			}
			switch {
			case s.udpAddr != nil && len(d.ext) > 0:
				if _, err := d.ext[0].WriteTo(pkt, s.udpAddr); err != nil {
					d.stats.sendErrors.Add(1)
				}
			case s.udpAddr != nil && d.opts.Offload && pick(s.cfg.Dst.Is6(), gso4, gso6) != nil:
				pick(s.cfg.Dst.Is6(), gso4, gso6).add(d, pkt, s.udpAddr)
			case s.udpAddr != nil && pick(s.cfg.Dst.Is6(), udp4, udp6) != nil:
				pick(s.cfg.Dst.Is6(), udp4, udp6).add(d, pkt, s.udpAddr)
			case s.udpAddr == nil && raw4 != nil:
				sq := raw4
				if s.cfg.Dst.Is6() {
					sq = raw6
				}
				sq.add(d, pkt, s.rawAddr)
			default:
				d.stats.sendErrors.Add(1)
			}
		}
		for i := 0; i < n; i++ {
			if !q.VnetHdr {
				send(bufs[i], sizes[i])
				continue
			}
			size := sizes[i] - tun.VnetHdrLen
			if size <= 0 {
				d.stats.malformed.Add(1)
				continue
			}
			segs, err := segment(bufs[i][readOff:headroom], bufs[i][headroom:headroom+size], segBufs, segSizes)
			switch {
			case err != nil:
				d.stats.malformed.Add(1)
			case segs == 0:
				send(bufs[i], size)
			default:
				d.stats.tsoPackets.Add(1)
				for j := 0; j < segs; j++ {
					send(segBufs[j], segSizes[j])
				}
				flushAll() // the next packet reuses segBufs
			}
		}
		flushAll()
	}
}

// sealOne runs stages 2-5 for the packet buf[headroom:headroom+size] and
// returns the ESP packet to send, or nil when it was dropped or answered.
func (d *Dataplane) sealOne(t *tables, q *tun.Queue, buf []byte, size int, now int64) ([]byte, *sa) {
	pkt := buf[headroom : headroom+size]
	f, ok := policy.Parse(pkt)
	if !ok {
		d.stats.malformed.Add(1)
		return nil, nil
	}
	var pol *installedPolicy
	for _, p := range t.outPolicies {
		if policy.Match(&p.Local, &p.Remote, f.Src, f.Dst, f.Proto, f.SrcPort, f.DstPort) {
			pol = p
			break
		}
	}
	if pol == nil {
		d.stats.noPolicy.Add(1)
		return nil, nil
	}
	if pol.Action != provider.Protect && pol.Action != provider.Trap {
		d.stats.noPolicy.Add(1)
		return nil, nil
	}
	s := t.outByReqID[pol.ReqID]
	if pol.Action == provider.Trap || s == nil {
		d.stats.noSA.Add(1)
		d.acquire(pol, now)
		return nil, nil
	}
	if size > s.maxInner {
		d.stats.tooBig.Add(1)
		if f.DontFragment && q != nil {
			if icmp := tooBig(buf, headroom, size, f, s.maxInner); icmp != nil {
				h := cap(buf) - cap(icmp)
				q.Write(buf, h, h+len(icmp))
			}
		}
		return nil, nil
	}
	if d.opts.ClampMSS && f.Proto == 6 {
		clampMSS(pkt, f, s.maxInner)
	}
	seq := s.seq.Add(1)
	if seq > s.seqLimit || seq == 0 {
		s.seq.Store(s.seqLimit) // keep it from wrapping under sustained load
		d.stats.seqExhausted.Add(1)
		return nil, nil
	}
	if seq >= s.seqSoft && s.seqEventSent.CompareAndSwap(false, true) {
		d.emit(provider.Event{Kind: provider.SeqExhausted, ReqID: s.cfg.ReqID, SA: s.key})
	}
	off, nh := headroom, byte(4)
	n := size
	if s.cfg.Mode == provider.Transport {
		off += f.HeaderLen
		n -= f.HeaderLen
		nh = f.Proto
	} else if pkt[0]>>4 == 6 {
		nh = 41
	}
	if pkt[0]>>4 == 4 {
		// Transport mode carries the IPv4 payload; trim any link padding.
		if total := int(binary.BigEndian.Uint16(pkt[2:])); total < size {
			n -= size - total
		}
	}
	out, err := s.esp.Seal(buf, off, n, nh, seq)
	if err != nil {
		d.stats.malformed.Add(1)
		return nil, nil
	}
	d.account(s, size, now)
	return out, s
}

// pick returns v6 for an IPv6 destination, else v4.
func pick[T any](is6 bool, v4, v6 *T) *T {
	if is6 {
		return v6
	}
	return v4
}
