package keystore

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/internal/mux"
	pb "github.com/veil-ipsec/veil/sdk/proto"
)

// GRPCPlugin is the go-plugin glue for keystore plugins.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Store
}

// GRPCServer registers the Base and Keystore services.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterBaseServer(s, &base.Server{Impl: p.Impl})
	pb.RegisterKeystoreServer(s, &server{impl: p.Impl})
	return nil
}

// GRPCClient returns a *Client.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewClient(c)
}

type server struct {
	pb.UnimplementedKeystoreServer
	impl Store
}

func (s *server) Secret(ctx context.Context, r *pb.KeyRef) (_ *pb.SecretReply, err error) {
	defer base.Recover(&err)
	secret, err := s.impl.Secret(ctx, r.GetRef())
	if err != nil {
		return nil, err
	}
	return &pb.SecretReply{Secret: secret}, nil
}

func (s *server) Public(ctx context.Context, r *pb.KeyRef) (_ *pb.PublicReply, err error) {
	defer base.Recover(&err)
	pub, err := s.impl.Public(ctx, r.GetRef())
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding public key of %s: %w", r.GetRef(), err)
	}
	return &pb.PublicReply{Pkix: der}, nil
}

// streamCodec fits the generated stream types to the multiplexer.
var streamCodec = mux.Codec[pb.KeystoreCall, pb.KeystoreReply, pb.KeystoreCalls, pb.KeystoreReplies]{
	ReplyID:     (*pb.KeystoreReply).GetId,
	Timeout:     func(c *pb.KeystoreCall) time.Duration { return time.Duration(c.GetTimeoutMs()) * time.Millisecond },
	WrapCalls:   func(cs []*pb.KeystoreCall) *pb.KeystoreCalls { return &pb.KeystoreCalls{Calls: cs} },
	UnwrapCalls: (*pb.KeystoreCalls).GetCalls,
	WrapReplies: func(rs []*pb.KeystoreReply) *pb.KeystoreReplies { return &pb.KeystoreReplies{Replies: rs} },
	Unwrap:      (*pb.KeystoreReplies).GetReplies,
}

func (s *server) Stream(st grpc.BidiStreamingServer[pb.KeystoreCalls, pb.KeystoreReplies]) error {
	return mux.Serve(st, streamCodec, s.handle,
		func(c *pb.KeystoreCall, p any) *pb.KeystoreReply {
			return &pb.KeystoreReply{Id: c.GetId(), Error: fmt.Sprintf("plugin panicked: %v", p)}
		})
}

func (s *server) handle(ctx context.Context, c *pb.KeystoreCall) *pb.KeystoreReply {
	reply := &pb.KeystoreReply{Id: c.GetId()}
	req := c.GetSign()
	if req == nil {
		reply.Error = "unknown keystore operation"
		return reply
	}
	opts := SignOptions{Hash: crypto.Hash(req.GetHash()), PSS: req.GetPss(), SaltLength: int(req.GetPssSaltLength())}
	// A digest that does not fit its hash is refused before the plugin
	// sees it: signing arbitrary bytes as if they were a hash is how
	// signing oracles get abused.
	if h := opts.Hash; h != 0 {
		if !h.Available() {
			reply.Error = fmt.Sprintf("unsupported hash %d", h)
			return reply
		}
		if len(req.GetDigest()) != h.Size() {
			reply.Error = fmt.Sprintf("digest of %d bytes does not match hash %v", len(req.GetDigest()), h)
			return reply
		}
	}
	sig, err := s.impl.Sign(ctx, req.GetRef(), req.GetDigest(), opts)
	if err != nil {
		reply.Error = err.Error()
		return reply
	}
	reply.Signature = sig
	return reply
}
