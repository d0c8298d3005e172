package userspace

import (
	"encoding/binary"
	"errors"
)

// virtio_net_hdr (include/uapi/linux/virtio_net.h), little-endian fields.
const (
	vnetFlagNeedsCsum = 1
	gsoNone           = 0
	gsoTCPv4          = 1
	gsoTCPv6          = 4
)

var errGSO = errors.New("malformed GSO packet")

// segment turns one packet read with a virtio-net header into packets ready
// to seal: a plain packet gets its checksum completed in place (and is
// returned as is, n = 0 segments); a TSO packet is cut into MSS-sized TCP
// segments, each copied to dst[i][headroom:] with its own IP and TCP header
// fields and checksums. hdr is the 10-byte header, pkt the packet after it.
func segment(hdr, pkt []byte, dst [][]byte, sizes []int) (int, error) {
	flags, gsoType := hdr[0], hdr[1]
	gsoSize := int(binary.LittleEndian.Uint16(hdr[4:]))
	csumStart := int(binary.LittleEndian.Uint16(hdr[6:]))
	csumOff := int(binary.LittleEndian.Uint16(hdr[8:]))
	if gsoType == gsoNone {
		if flags&vnetFlagNeedsCsum != 0 {
			if csumStart+csumOff+2 > len(pkt) {
				return 0, errGSO
			}
			binary.BigEndian.PutUint16(pkt[csumStart+csumOff:], checksum(pkt[csumStart:], 0))
		}
		return 0, nil
	}
	if gsoType != gsoTCPv4 && gsoType != gsoTCPv6 || gsoSize == 0 || len(pkt) < 20 {
		return 0, errGSO
	}
	v4 := gsoType == gsoTCPv4
	ipLen := 40
	if v4 {
		ipLen = int(pkt[0]&0x0f) * 4
	} else if pkt[6] != 6 {
		return 0, errGSO // extension headers: not produced for TSO here
	}
	if len(pkt) < ipLen+20 {
		return 0, errGSO
	}
	tcpLen := int(pkt[ipLen+12]>>4) * 4
	hl := ipLen + tcpLen
	if tcpLen < 20 || len(pkt) < hl {
		return 0, errGSO
	}
	payload := pkt[hl:]
	n := (len(payload) + gsoSize - 1) / gsoSize
	if n > len(dst) {
		return 0, errGSO
	}
	seq := binary.BigEndian.Uint32(pkt[ipLen+4:])
	id := uint16(0)
	if v4 {
		id = binary.BigEndian.Uint16(pkt[4:])
	}
	for i := 0; i < n; i++ {
		chunk := payload[i*gsoSize : min((i+1)*gsoSize, len(payload))]
		out := dst[i][headroom : headroom+hl+len(chunk)]
		copy(out, pkt[:hl])
		copy(out[hl:], chunk)
		if v4 {
			binary.BigEndian.PutUint16(out[2:], uint16(len(out)))
			binary.BigEndian.PutUint16(out[4:], id+uint16(i))
			out[10], out[11] = 0, 0
			binary.BigEndian.PutUint16(out[10:], checksum(out[:ipLen], 0))
		} else {
			binary.BigEndian.PutUint16(out[4:], uint16(len(out)-40))
		}
		tcp := out[ipLen:]
		binary.BigEndian.PutUint32(tcp[4:], seq+uint32(i*gsoSize))
		if i > 0 {
			tcp[13] &^= 0x80 // CWR only on the first segment
		}
		if i < n-1 {
			tcp[13] &^= 0x09 // FIN and PSH only on the last
		}
		tcp[16], tcp[17] = 0, 0
		binary.BigEndian.PutUint16(tcp[16:], checksum(tcp, pseudoSum(out, ipLen, len(tcp))))
		sizes[i] = len(out)
	}
	return n, nil
}

// pseudoSum is the TCP/UDP pseudo-header sum of an IPv4 or IPv6 packet.
func pseudoSum(pkt []byte, ipLen, l4Len int) uint32 {
	var sum uint32
	addrs := pkt[12:20]
	if pkt[0]>>4 == 6 {
		addrs = pkt[8:40]
	}
	for i := 0; i < len(addrs); i += 2 {
		sum += uint32(addrs[i])<<8 | uint32(addrs[i+1])
	}
	return sum + 6 + uint32(l4Len)
}
