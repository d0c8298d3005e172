package engine

import (
	"slices"
	"testing"

	"github.com/veil-ipsec/veil/core/provider"
)

// Volume limits reach the dataplane on every SA, the rekeyed ones too, and
// a SoftExpire the dataplane raises at the limit rekeys the child.
func TestVolumeLifetimes(t *testing.T) {
	for _, tc := range []struct {
		name                     string
		rekeyBytes, lifeBytes    uint64
		rekeyPackets, lifePacket uint64
		soft, hard               provider.Lifetime
	}{
		{"default hard", 1_000_000, 0, 1000, 0, provider.Lifetime{Bytes: 1_000_000, Packets: 1000}, provider.Lifetime{Bytes: 1_100_000, Packets: 1100}},
		{"configured hard", 1000, 5000, 0, 0, provider.Lifetime{Bytes: 1000}, provider.Lifetime{Bytes: 5000}},
		{"none", 0, 0, 0, 0, provider.Lifetime{}, provider.Lifetime{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, func(a, b *Connection) {
				a.Children[0].RekeyBytes, a.Children[0].LifeBytes = tc.rekeyBytes, tc.lifeBytes
				a.Children[0].RekeyPackets, a.Children[0].LifePackets = tc.rekeyPackets, tc.lifePacket
			})
			p.up()
			check := func() {
				t.Helper()
				for _, sa := range append(p.a.dp.Inbound(), p.a.dp.Outbound()...) {
					if sa.Soft != tc.soft || sa.Hard != tc.hard {
						t.Fatalf("SA %08x: soft %+v hard %+v, want %+v %+v", sa.SPI, sa.Soft, sa.Hard, tc.soft, tc.hard)
					}
				}
			}
			check()
			old := spis(p.a.dp)
			out := p.a.dp.Outbound()[0]
			p.a.e.HandleDataplaneEvent(provider.Event{Kind: provider.SoftExpire, ReqID: out.ReqID, SA: provider.SAKey{Dst: out.Dst, SPI: out.SPI}})
			p.flush()
			p.established(t, 1)
			if slices.Equal(old, spis(p.a.dp)) {
				t.Fatal("SoftExpire did not rekey")
			}
			check()
		})
	}
}
