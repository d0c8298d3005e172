package userspace

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/veil-ipsec/veil/plugins/dataplane/userspace/policy"
)

// FuzzReceive feeds arbitrary bytes to the inbound path (as raw-socket or
// UDP payloads) and to the outbound path (as TUN packets): nothing may
// panic, and nothing that does not authenticate may be delivered.
func FuzzReceive(f *testing.F) {
	d, _ := newBenchDataplane(f, "aes-gcm-16", 20)
	buf := make([]byte, bufSize)
	udpPacket(buf, 100)
	pkt, _ := d.sealOne(d.tables.Load(), nil, buf, 100, 1)
	f.Add(append([]byte(nil), pkt...))
	f.Add([]byte{0, 0, 1, 0, 0, 0, 0, 1})
	f.Add([]byte{0x45, 0, 0, 20})
	f.Add([]byte{0x60, 0, 0, 0, 0, 8, 0, 64})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 65535 {
			return
		}
		in := d.tables.Load().inBySPI[0x100]
		before := in.packets.Load()
		rbuf := make([]byte, bufSize)
		n := copy(rbuf[headroom:], data)
		if n >= 8 {
			d.openOne(d.tables.Load(), rbuf, headroom, headroom+n, netip.AddrPort{}, 1)
		}
		if in.packets.Load() != before && (len(data) < 8 || binary.BigEndian.Uint32(data) != 0x100) {
			t.Fatal("packet for another SPI delivered")
		}
		d.demuxUDP(data, netip.AddrPort{})
		policy.Parse(data)
		sbuf := make([]byte, bufSize)
		m := copy(sbuf[headroom:], data)
		d.sealOne(d.tables.Load(), nil, sbuf, m, 1)
	})
}
