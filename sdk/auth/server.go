package auth

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/internal/mux"
	pb "github.com/veil-ipsec/veil/sdk/proto"
)

// GRPCPlugin is the go-plugin glue for auth plugins: Impl on the plugin
// side, nothing on the host side.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Authenticator
}

// GRPCServer registers the Base and Auth services.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterBaseServer(s, &base.Server{Impl: p.Impl})
	pb.RegisterAuthServer(s, &server{impl: p.Impl})
	return nil
}

// GRPCClient returns a *Client.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewClient(c)
}

type server struct {
	pb.UnimplementedAuthServer
	impl Authenticator
}

// streamCodec fits the generated stream types to the multiplexer.
var streamCodec = mux.Codec[pb.AuthCall, pb.AuthReply, pb.AuthCalls, pb.AuthReplies]{
	ReplyID:     (*pb.AuthReply).GetId,
	Timeout:     func(c *pb.AuthCall) time.Duration { return time.Duration(c.GetTimeoutMs()) * time.Millisecond },
	WrapCalls:   func(cs []*pb.AuthCall) *pb.AuthCalls { return &pb.AuthCalls{Calls: cs} },
	UnwrapCalls: (*pb.AuthCalls).GetCalls,
	WrapReplies: func(rs []*pb.AuthReply) *pb.AuthReplies { return &pb.AuthReplies{Replies: rs} },
	Unwrap:      (*pb.AuthReplies).GetReplies,
}

func (s *server) Stream(st grpc.BidiStreamingServer[pb.AuthCalls, pb.AuthReplies]) error {
	return mux.Serve(st, streamCodec, s.handle,
		func(c *pb.AuthCall, p any) *pb.AuthReply {
			return &pb.AuthReply{Id: c.GetId(), Error: fmt.Sprintf("plugin panicked: %v", p)}
		})
}

func (s *server) handle(ctx context.Context, c *pb.AuthCall) *pb.AuthReply {
	reply := &pb.AuthReply{Id: c.GetId()}
	switch op := c.GetOp().(type) {
	case *pb.AuthCall_Make:
		res, err := s.impl.Make(ctx, requestFromProto(op.Make))
		if err != nil {
			reply.Error = err.Error()
		} else if res == nil {
			reply.Error = "plugin returned no result"
		} else {
			reply.Result = &pb.AuthResult{Method: uint32(res.Method), Data: res.Data, Certs: res.Certs}
		}
	case *pb.AuthCall_Verify:
		if err := s.impl.Verify(ctx, requestFromProto(op.Verify)); err != nil {
			reply.Error = err.Error()
		}
	default:
		reply.Error = "unknown auth operation"
	}
	return reply
}

func (s *server) Verify(ctx context.Context, r *pb.AuthRequest) (_ *pb.AuthReply, err error) {
	defer base.Recover(&err)
	reply := &pb.AuthReply{}
	if err := s.impl.Verify(ctx, requestFromProto(r)); err != nil {
		reply.Error = err.Error()
	}
	return reply, nil
}

func requestToProto(r *Request) *pb.AuthRequest {
	hashes := make([]uint32, len(r.SignatureHashes))
	for i, h := range r.SignatureHashes {
		hashes[i] = uint32(h)
	}
	return &pb.AuthRequest{
		Connection:      r.Connection,
		Role:            uint32(r.Role),
		LocalId:         &pb.Identity{Type: uint32(r.LocalID.Type), Data: r.LocalID.Data},
		RemoteId:        &pb.Identity{Type: uint32(r.RemoteID.Type), Data: r.RemoteID.Data},
		Prf:             uint32(r.PRF),
		SignedOctets:    r.SignedOctets,
		Method:          uint32(r.Method),
		Data:            r.Data,
		Certs:           r.Certs,
		SignatureHashes: hashes,
	}
}

// requestFromProto trusts the host; out-of-range numbers are truncated,
// which a plugin then rejects as an unknown value.
func requestFromProto(r *pb.AuthRequest) *Request {
	hashes := make([]uint16, len(r.GetSignatureHashes()))
	for i, h := range r.GetSignatureHashes() {
		hashes[i] = uint16(h)
	}
	return &Request{
		Connection:      r.GetConnection(),
		Role:            Role(r.GetRole()),
		LocalID:         Identity{Type: uint8(r.GetLocalId().GetType()), Data: r.GetLocalId().GetData()},
		RemoteID:        Identity{Type: uint8(r.GetRemoteId().GetType()), Data: r.GetRemoteId().GetData()},
		PRF:             uint16(r.GetPrf()),
		SignedOctets:    r.GetSignedOctets(),
		Method:          uint8(r.GetMethod()),
		Data:            r.GetData(),
		Certs:           r.GetCerts(),
		SignatureHashes: hashes,
	}
}
