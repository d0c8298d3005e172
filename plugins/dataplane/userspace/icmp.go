package userspace

import (
	"encoding/binary"

	"github.com/veil-ipsec/veil/plugins/dataplane/userspace/policy"
)

// tooBig builds, in front of the oversize packet in buf, an ICMP
// "fragmentation needed" (IPv4, RFC 792/1191) or ICMPv6 "packet too big"
// (RFC 4443) message from the packet's destination back to its source,
// quoting the start of the packet, so the local stack lowers its path MTU.
func tooBig(buf []byte, off, size int, f policy.Flow, mtu int) []byte {
	orig := buf[off : off+size]
	if f.Src.Is4() {
		quote := min(size, f.HeaderLen+8)
		// Build after the packet: header(20) + ICMP(8) + quote.
		out := buf[off+size:]
		if len(out) < 28+quote {
			return nil
		}
		out = out[:28+quote]
		copy(out[28:], orig[:quote])
		ip := out[:20]
		ip[0], ip[1] = 0x45, 0xc0
		binary.BigEndian.PutUint16(ip[2:], uint16(len(out)))
		binary.BigEndian.PutUint32(ip[4:], 0)
		ip[8], ip[9], ip[10], ip[11] = 64, 1, 0, 0
		s, d := f.Dst.As4(), f.Src.As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		binary.BigEndian.PutUint16(ip[10:], checksum(ip, 0))
		ic := out[20:]
		ic[0], ic[1], ic[2], ic[3] = 3, 4, 0, 0
		binary.BigEndian.PutUint16(ic[4:], 0)
		binary.BigEndian.PutUint16(ic[6:], uint16(mtu))
		binary.BigEndian.PutUint16(ic[2:], checksum(ic, 0))
		return out
	}
	// IPv6: the whole message must fit the minimum MTU of 1280.
	quote := min(size, 1280-48)
	out := buf[off+size:]
	if len(out) < 48+quote {
		return nil
	}
	out = out[:48+quote]
	copy(out[48:], orig[:quote])
	ip := out[:40]
	binary.BigEndian.PutUint32(ip, 6<<28)
	binary.BigEndian.PutUint16(ip[4:], uint16(8+quote))
	ip[6], ip[7] = 58, 64
	s, d := f.Dst.As16(), f.Src.As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	ic := out[40:]
	ic[0], ic[1], ic[2], ic[3] = 2, 0, 0, 0
	binary.BigEndian.PutUint32(ic[4:], uint32(mtu))
	binary.BigEndian.PutUint16(ic[2:], checksum(ic, pseudoSum6(ip[8:40], len(ic), 58)))
	return out
}

func pseudoSum6(addrs []byte, length int, proto byte) uint32 {
	var sum uint32
	for i := 0; i < len(addrs); i += 2 {
		sum += uint32(addrs[i])<<8 | uint32(addrs[i+1])
	}
	sum += uint32(length>>16) + uint32(length&0xffff) + uint32(proto)
	return sum
}

// clampMSS lowers the MSS option of a TCP SYN so that full-size segments
// fit the SA without fragmentation, fixing the TCP checksum incrementally.
func clampMSS(pkt []byte, f policy.Flow, maxPacket int) {
	tcp := pkt[f.HeaderLen:]
	if len(tcp) < 20 || tcp[13]&0x02 == 0 {
		return
	}
	dataOff := int(tcp[12]>>4) * 4
	if dataOff < 20 || dataOff > len(tcp) {
		return
	}
	mss := maxPacket - f.HeaderLen - 20
	for i := 20; i+1 < dataOff; {
		switch kind := tcp[i]; kind {
		case 0:
			return
		case 1:
			i++
			continue
		case 2:
			if i+4 > dataOff || tcp[i+1] != 4 {
				return
			}
			old := binary.BigEndian.Uint16(tcp[i+2:])
			if int(old) <= mss {
				return
			}
			binary.BigEndian.PutUint16(tcp[i+2:], uint16(mss))
			// RFC 1624 incremental update: HC' = ~(~HC + ~m + m').
			sum := uint32(^binary.BigEndian.Uint16(tcp[16:])) + uint32(^old) + uint32(mss)
			for sum > 0xffff {
				sum = sum>>16 + sum&0xffff
			}
			binary.BigEndian.PutUint16(tcp[16:], ^uint16(sum))
			return
		default:
			if tcp[i+1] < 2 {
				return
			}
			i += int(tcp[i+1])
		}
	}
}
