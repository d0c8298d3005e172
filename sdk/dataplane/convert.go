package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	pb "github.com/veil-ipsec/veil/sdk/proto"
)

func addrToProto(a netip.Addr) []byte {
	if !a.IsValid() {
		return nil
	}
	return a.AsSlice()
}

// addrFromProto accepts empty (invalid address), 4 or 16 bytes.
func addrFromProto(b []byte) (netip.Addr, error) {
	if len(b) == 0 {
		return netip.Addr{}, nil
	}
	a, ok := netip.AddrFromSlice(b)
	if !ok {
		return netip.Addr{}, fmt.Errorf("address of %d bytes", len(b))
	}
	return a, nil
}

func tsToProto(t TrafficSelector) *pb.TrafficSelector {
	return &pb.TrafficSelector{Start: addrToProto(t.Start), End: addrToProto(t.End), Protocol: uint32(t.Protocol),
		StartPort: uint32(t.StartPort), EndPort: uint32(t.EndPort)}
}

func tsFromProto(t *pb.TrafficSelector) (TrafficSelector, error) {
	var out TrafficSelector
	var err1, err2 error
	out.Start, err1 = addrFromProto(t.GetStart())
	out.End, err2 = addrFromProto(t.GetEnd())
	if err := errors.Join(err1, err2); err != nil {
		return out, err
	}
	if t.GetProtocol() > 255 || t.GetStartPort() > 65535 || t.GetEndPort() > 65535 {
		return out, errors.New("traffic selector protocol or port out of range")
	}
	out.Protocol, out.StartPort, out.EndPort = uint8(t.GetProtocol()), uint16(t.GetStartPort()), uint16(t.GetEndPort())
	return out, nil
}

func tsListToProto(ts []TrafficSelector) []*pb.TrafficSelector {
	out := make([]*pb.TrafficSelector, len(ts))
	for i, t := range ts {
		out[i] = tsToProto(t)
	}
	return out
}

func tsListFromProto(ts []*pb.TrafficSelector) ([]TrafficSelector, error) {
	out := make([]TrafficSelector, len(ts))
	for i, t := range ts {
		var err error
		if out[i], err = tsFromProto(t); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func lifetimeToProto(l Lifetime) *pb.Lifetime {
	return &pb.Lifetime{TimeNs: int64(l.Time), Bytes: l.Bytes, Packets: l.Packets}
}

func lifetimeFromProto(l *pb.Lifetime) Lifetime {
	return Lifetime{Time: time.Duration(l.GetTimeNs()), Bytes: l.GetBytes(), Packets: l.GetPackets()}
}

func saToProto(sa *ChildSA) *pb.ChildSA {
	out := &pb.ChildSA{
		ReqId: sa.ReqID, Spi: sa.SPI, Inbound: sa.Inbound, Src: addrToProto(sa.Src), Dst: addrToProto(sa.Dst),
		Mode: uint32(sa.Mode), Encryption: sa.Encryption, EncKey: sa.EncKey, Integrity: sa.Integrity, IntegKey: sa.IntegKey,
		Esn: sa.ESN, ReplayWindow: sa.ReplayWindow, LocalTs: tsListToProto(sa.LocalTS), RemoteTs: tsListToProto(sa.RemoteTS),
		Soft: lifetimeToProto(sa.Soft), Hard: lifetimeToProto(sa.Hard), Mark: sa.Mark, IfId: sa.IfID, Offload: sa.Offload,
	}
	if sa.Encap != nil {
		out.Encap = &pb.UDPEncap{SrcPort: uint32(sa.Encap.SrcPort), DstPort: uint32(sa.Encap.DstPort)}
	}
	return out
}

func saFromProto(p *pb.ChildSA) (*ChildSA, error) {
	src, err1 := addrFromProto(p.GetSrc())
	dst, err2 := addrFromProto(p.GetDst())
	lts, err3 := tsListFromProto(p.GetLocalTs())
	rts, err4 := tsListFromProto(p.GetRemoteTs())
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return nil, err
	}
	sa := &ChildSA{
		ReqID: p.GetReqId(), SPI: p.GetSpi(), Inbound: p.GetInbound(), Src: src, Dst: dst, Mode: Mode(p.GetMode()),
		Encryption: p.GetEncryption(), EncKey: p.GetEncKey(), Integrity: p.GetIntegrity(), IntegKey: p.GetIntegKey(),
		ESN: p.GetEsn(), ReplayWindow: p.GetReplayWindow(), LocalTS: lts, RemoteTS: rts,
		Soft: lifetimeFromProto(p.GetSoft()), Hard: lifetimeFromProto(p.GetHard()), Mark: p.GetMark(), IfID: p.GetIfId(),
		Offload: p.GetOffload(),
	}
	if e := p.GetEncap(); e != nil {
		sa.Encap = &UDPEncap{SrcPort: uint16(e.GetSrcPort()), DstPort: uint16(e.GetDstPort())}
	}
	return sa, nil
}

func keyToProto(k SAKey) *pb.SAKey { return &pb.SAKey{Dst: addrToProto(k.Dst), Spi: k.SPI} }

func keyFromProto(k *pb.SAKey) (SAKey, error) {
	dst, err := addrFromProto(k.GetDst())
	return SAKey{Dst: dst, SPI: k.GetSpi()}, err
}

func policyToProto(p *Policy) *pb.Policy {
	return &pb.Policy{ReqId: p.ReqID, Dir: uint32(p.Dir), Action: uint32(p.Action), Local: tsToProto(p.Local),
		Remote: tsToProto(p.Remote), Priority: p.Priority, Mode: uint32(p.Mode), TmplSrc: addrToProto(p.TmplSrc),
		TmplDst: addrToProto(p.TmplDst), Mark: p.Mark, IfId: p.IfID}
}

func policyFromProto(p *pb.Policy) (*Policy, error) {
	local, err1 := tsFromProto(p.GetLocal())
	remote, err2 := tsFromProto(p.GetRemote())
	src, err3 := addrFromProto(p.GetTmplSrc())
	dst, err4 := addrFromProto(p.GetTmplDst())
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return nil, err
	}
	if p.GetDir() < 1 || p.GetDir() > 3 || p.GetAction() < 1 || p.GetAction() > 4 {
		return nil, fmt.Errorf("policy direction %d or action %d unknown", p.GetDir(), p.GetAction())
	}
	return &Policy{ReqID: p.GetReqId(), Dir: Direction(p.GetDir()), Action: PolicyAction(p.GetAction()), Local: local,
		Remote: remote, Priority: p.GetPriority(), Mode: Mode(p.GetMode()), TmplSrc: src, TmplDst: dst,
		Mark: p.GetMark(), IfID: p.GetIfId()}, nil
}

func countersToProto(c Counters) *pb.Counters {
	var last int64
	if !c.LastUse.IsZero() {
		last = c.LastUse.UnixNano()
	}
	return &pb.Counters{Bytes: c.Bytes, Packets: c.Packets, LastUseUnixNs: last, ReplayDrops: c.ReplayDrops, AuthFailures: c.AuthFailures}
}

func countersFromProto(c *pb.Counters) Counters {
	out := Counters{Bytes: c.GetBytes(), Packets: c.GetPackets(), ReplayDrops: c.GetReplayDrops(), AuthFailures: c.GetAuthFailures()}
	if c.GetLastUseUnixNs() != 0 {
		out.LastUse = time.Unix(0, c.GetLastUseUnixNs())
	}
	return out
}

func eventToProto(e Event) *pb.Event {
	out := &pb.Event{Kind: uint32(e.Kind), ReqId: e.ReqID, Sa: keyToProto(e.SA), Addr: addrToProto(e.Addr),
		AddrUp: e.AddrUp, NewPort: uint32(e.NewPort)}
	if e.Policy != nil {
		out.Policy = policyToProto(e.Policy)
	}
	return out
}

// eventFromProto checks what the host relies on for each kind: a plugin's
// malformed event is dropped (and counted), never passed to the engine.
func eventFromProto(p *pb.Event) (Event, error) {
	if p.GetKind() < uint32(Acquire) || p.GetKind() > uint32(SeqExhausted) {
		return Event{}, fmt.Errorf("unknown event kind %d", p.GetKind())
	}
	key, err := keyFromProto(p.GetSa())
	if err != nil {
		return Event{}, err
	}
	addr, err := addrFromProto(p.GetAddr())
	if err != nil {
		return Event{}, err
	}
	e := Event{Kind: EventKind(p.GetKind()), ReqID: p.GetReqId(), SA: key, Addr: addr, AddrUp: p.GetAddrUp()}
	if p.GetNewPort() > 65535 {
		return Event{}, fmt.Errorf("port %d out of range", p.GetNewPort())
	}
	e.NewPort = uint16(p.GetNewPort())
	if p.GetPolicy() != nil {
		if e.Policy, err = policyFromProto(p.GetPolicy()); err != nil {
			return Event{}, err
		}
	}
	switch e.Kind {
	case Acquire:
		if e.Policy == nil {
			return Event{}, errors.New("acquire event without a policy")
		}
	case SoftExpire, HardExpire, SeqExhausted:
		if !e.SA.Dst.IsValid() || e.SA.SPI == 0 {
			return Event{}, errors.New("expire event without an SA")
		}
	case AddressChange:
		if !e.Addr.IsValid() {
			return Event{}, errors.New("address change without an address")
		}
	case NATMapping:
		if !e.SA.Dst.IsValid() || e.NewPort == 0 {
			return Event{}, errors.New("NAT mapping event without an SA or port")
		}
	}
	return e, nil
}
