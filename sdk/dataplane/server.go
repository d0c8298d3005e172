package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/internal/mux"
	pb "github.com/veil-ipsec/veil/sdk/proto"
)

// GRPCPlugin is the go-plugin glue for dataplane plugins. Version is the
// negotiated protocol version (0 means ProtocolVersion).
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl    Dataplane
	Version int
}

// GRPCServer registers the Base and Dataplane services; at version 1
// without the stream, exactly as such a plugin served them.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterBaseServer(s, &base.Server{Impl: p.Impl})
	if p.Version == 1 {
		pb.RegisterDataplaneServer(s, v1Server{&server{impl: p.Impl}})
	} else {
		pb.RegisterDataplaneServer(s, &server{impl: p.Impl})
	}
	return nil
}

// v1Server is the version 1 service: no stream.
type v1Server struct{ *server }

func (v1Server) Stream(grpc.BidiStreamingServer[pb.DataplaneCalls, pb.DataplaneReplies]) error {
	return status.Error(codes.Unimplemented, "dataplane protocol version 1 has no stream")
}

// GRPCClient returns a *Client: from version 2 on with its stream open.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	if p.Version == 1 {
		return NewClient(c), nil
	}
	return NewStreamClient(c)
}

type server struct {
	pb.UnimplementedDataplaneServer
	impl Dataplane
}

func (s *server) AllocateSPI(ctx context.Context, r *pb.AllocateSPIRequest) (_ *pb.AllocateSPIReply, err error) {
	defer base.Recover(&err)
	src, err := addrFromProto(r.GetSrc())
	if err != nil {
		return nil, err
	}
	dst, err := addrFromProto(r.GetDst())
	if err != nil {
		return nil, err
	}
	spi, err := s.impl.AllocateSPI(ctx, src, dst)
	if err != nil {
		return nil, err
	}
	return &pb.AllocateSPIReply{Spi: spi}, nil
}

func (s *server) InstallSA(ctx context.Context, r *pb.ChildSA) (_ *pb.Empty, err error) {
	defer base.Recover(&err)
	sa, err := saFromProto(r)
	if err != nil {
		return nil, err
	}
	return &pb.Empty{}, s.impl.InstallSA(ctx, sa)
}

func (s *server) DeleteSA(ctx context.Context, r *pb.SAKey) (_ *pb.Empty, err error) {
	defer base.Recover(&err)
	k, err := keyFromProto(r)
	if err != nil {
		return nil, err
	}
	return &pb.Empty{}, s.impl.DeleteSA(ctx, k)
}

func (s *server) InstallPolicy(ctx context.Context, r *pb.Policy) (_ *pb.Empty, err error) {
	defer base.Recover(&err)
	p, err := policyFromProto(r)
	if err != nil {
		return nil, err
	}
	return &pb.Empty{}, s.impl.InstallPolicy(ctx, p)
}

func (s *server) DeletePolicy(ctx context.Context, r *pb.Policy) (_ *pb.Empty, err error) {
	defer base.Recover(&err)
	p, err := policyFromProto(r)
	if err != nil {
		return nil, err
	}
	return &pb.Empty{}, s.impl.DeletePolicy(ctx, p)
}

func (s *server) Counters(ctx context.Context, r *pb.SAKeys) (_ *pb.CountersReply, err error) {
	defer base.Recover(&err)
	keys := make([]SAKey, len(r.GetKeys()))
	for i, k := range r.GetKeys() {
		if keys[i], err = keyFromProto(k); err != nil {
			return nil, err
		}
	}
	cs, err := s.impl.Counters(ctx, keys)
	if err != nil {
		return nil, err
	}
	out := &pb.CountersReply{}
	for _, c := range cs {
		out.Counters = append(out.Counters, countersToProto(c))
	}
	return out, nil
}

func (s *server) Events(_ *pb.Empty, st grpc.ServerStreamingServer[pb.Event]) error {
	ch, err := s.impl.Events(st.Context())
	if err != nil {
		return err
	}
	for e := range ch {
		if err := st.Send(eventToProto(e)); err != nil {
			return err
		}
	}
	return nil
}

// streamCodec fits the generated stream types to the multiplexer.
var streamCodec = mux.Codec[pb.DataplaneCall, pb.DataplaneReply, pb.DataplaneCalls, pb.DataplaneReplies]{
	ReplyID:     (*pb.DataplaneReply).GetId,
	Timeout:     func(c *pb.DataplaneCall) time.Duration { return time.Duration(c.GetTimeoutMs()) * time.Millisecond },
	WrapCalls:   func(cs []*pb.DataplaneCall) *pb.DataplaneCalls { return &pb.DataplaneCalls{Calls: cs} },
	UnwrapCalls: (*pb.DataplaneCalls).GetCalls,
	WrapReplies: func(rs []*pb.DataplaneReply) *pb.DataplaneReplies { return &pb.DataplaneReplies{Replies: rs} },
	Unwrap:      (*pb.DataplaneReplies).GetReplies,
}

func (s *server) Stream(st grpc.BidiStreamingServer[pb.DataplaneCalls, pb.DataplaneReplies]) error {
	return mux.Serve(st, streamCodec, s.handle,
		func(c *pb.DataplaneCall, p any) *pb.DataplaneReply {
			return &pb.DataplaneReply{Id: c.GetId(), Error: fmt.Sprintf("plugin panicked: %v", p)}
		})
}

func (s *server) handle(ctx context.Context, c *pb.DataplaneCall) *pb.DataplaneReply {
	reply := &pb.DataplaneReply{Id: c.GetId()}
	var err error
	switch op := c.GetOp().(type) {
	case *pb.DataplaneCall_AllocateSpi:
		var src, dst netip.Addr
		if src, err = addrFromProto(op.AllocateSpi.GetSrc()); err == nil {
			if dst, err = addrFromProto(op.AllocateSpi.GetDst()); err == nil {
				reply.Spi, err = s.impl.AllocateSPI(ctx, src, dst)
			}
		}
	case *pb.DataplaneCall_InstallChild:
		err = s.installChild(ctx, op.InstallChild)
	default:
		err = errors.New("unknown dataplane operation")
	}
	if err != nil {
		reply.Error = err.Error()
	}
	return reply
}

func (s *server) installChild(ctx context.Context, r *pb.InstallChildRequest) error {
	sas := make([]*ChildSA, len(r.GetSas()))
	for i, p := range r.GetSas() {
		sa, err := saFromProto(p)
		if err != nil {
			return err
		}
		sas[i] = sa
	}
	pols := make([]*Policy, len(r.GetPolicies()))
	for i, p := range r.GetPolicies() {
		pol, err := policyFromProto(p)
		if err != nil {
			return err
		}
		pols[i] = pol
	}
	defer func() {
		for _, sa := range sas {
			clear(sa.EncKey)
			clear(sa.IntegKey)
		}
	}()
	return InstallChild(ctx, s.impl, sas, pols)
}

// InstallChild installs a Child SA's SAs, then its policies, through d's
// ChildInstaller if it has one, else one by one; on a failure it deletes
// what it had installed (best effort) and returns the error.
func InstallChild(ctx context.Context, d Dataplane, sas []*ChildSA, policies []*Policy) error {
	if ci, ok := d.(ChildInstaller); ok {
		return ci.InstallChild(ctx, sas, policies)
	}
	return installSteps(ctx, d, sas, policies)
}

// steps are the calls installSteps makes.
type steps interface {
	InstallSA(ctx context.Context, sa *ChildSA) error
	DeleteSA(ctx context.Context, key SAKey) error
	InstallPolicy(ctx context.Context, p *Policy) error
	DeletePolicy(ctx context.Context, p *Policy) error
}

// installSteps installs one by one and rolls back on a failure.
func installSteps(ctx context.Context, d steps, sas []*ChildSA, policies []*Policy) error {
	// Roll back on a context of its own: ctx may be what ran out.
	rollback := func(nSA, nPol int) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		for i := nPol - 1; i >= 0; i-- {
			_ = d.DeletePolicy(rctx, policies[i])
		}
		for i := nSA - 1; i >= 0; i-- {
			_ = d.DeleteSA(rctx, SAKey{Dst: sas[i].Dst, SPI: sas[i].SPI})
		}
	}
	for i, sa := range sas {
		if err := d.InstallSA(ctx, sa); err != nil {
			rollback(i, 0)
			return fmt.Errorf("installing SA %s/%#x: %w", sa.Dst, sa.SPI, err)
		}
	}
	for i, p := range policies {
		if err := d.InstallPolicy(ctx, p); err != nil {
			rollback(len(sas), i)
			return fmt.Errorf("installing policy (req id %d): %w", p.ReqID, err)
		}
	}
	return nil
}
