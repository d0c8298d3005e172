package dataplane

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	pb "github.com/veil-ipsec/veil/sdk/proto"
)

func TestChildSARoundTrip(t *testing.T) {
	a, b := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	sa := &ChildSA{ReqID: 1, SPI: 0xc0ffee, Inbound: true, Src: a, Dst: b, Mode: Tunnel,
		Encryption: "aes-cbc", EncKey: []byte{1, 2}, Integrity: "hmac-sha2-256-128", IntegKey: []byte{3},
		ESN: true, ReplayWindow: 64, Encap: &UDPEncap{SrcPort: 4500, DstPort: 4501},
		LocalTS:  []TrafficSelector{{Start: a, End: a, Protocol: 6, StartPort: 1, EndPort: 2}},
		RemoteTS: []TrafficSelector{{Start: b, End: b}},
		Soft:     Lifetime{Time: time.Minute, Bytes: 1, Packets: 2}, Hard: Lifetime{Time: time.Hour},
		Mark: 5, IfID: 6, Offload: "preferred"}
	got, err := saFromProto(saToProto(sa))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, sa) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, sa)
	}
	p := &Policy{ReqID: 1, Dir: Fwd, Action: Trap, Local: sa.LocalTS[0], Remote: sa.RemoteTS[0], Priority: 9,
		Mode: Tunnel, TmplSrc: a, TmplDst: b, Mark: 1, IfID: 2}
	gp, err := policyFromProto(policyToProto(p))
	if err != nil || !reflect.DeepEqual(gp, p) {
		t.Errorf("policy round trip: %+v, %v", gp, err)
	}
}

func TestMalformedRejected(t *testing.T) {
	for name, e := range map[string]*pb.Event{
		"unknown kind":        {Kind: 99},
		"zero kind":           {},
		"acquire, no policy":  {Kind: uint32(Acquire)},
		"expire, no SA":       {Kind: uint32(SoftExpire)},
		"bad address":         {Kind: uint32(AddressChange), Addr: []byte{1, 2, 3}},
		"address change, nil": {Kind: uint32(AddressChange)},
		"port overflow":       {Kind: uint32(NATMapping), Sa: &pb.SAKey{Dst: []byte{192, 0, 2, 1}, Spi: 1}, NewPort: 70000},
		"policy bad dir":      {Kind: uint32(Acquire), Policy: &pb.Policy{Dir: 9, Action: 1}},
	} {
		if _, err := eventFromProto(e); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := saFromProto(&pb.ChildSA{Src: make([]byte, 5)}); err == nil {
		t.Error("SA with a 5-byte address accepted")
	}
	if _, err := tsFromProto(&pb.TrafficSelector{Protocol: 256}); err == nil {
		t.Error("protocol 256 accepted")
	}
}
