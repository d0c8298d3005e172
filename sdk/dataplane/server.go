package dataplane

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/veil-ipsec/veil/sdk/base"
	pb "github.com/veil-ipsec/veil/sdk/proto"
)

// GRPCPlugin is the go-plugin glue for dataplane plugins.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Dataplane
}

// GRPCServer registers the Base and Dataplane services.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterBaseServer(s, &base.Server{Impl: p.Impl})
	pb.RegisterDataplaneServer(s, &server{impl: p.Impl})
	return nil
}

// GRPCClient returns a *Client.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewClient(c), nil
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
