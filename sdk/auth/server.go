package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
	// EAP session limits (zero: MaxEAPSessions, EAPIdleTimeout).
	EAPMaxSessions int
	EAPIdleTimeout time.Duration
}

// GRPCServer registers the Base and Auth services.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterBaseServer(s, &base.Server{Impl: p.Impl})
	pb.RegisterAuthServer(s, &server{impl: p.Impl, eapMax: p.EAPMaxSessions, eapIdle: p.EAPIdleTimeout})
	return nil
}

// GRPCClient returns a *Client.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewClient(c)
}

type server struct {
	pb.UnimplementedAuthServer
	impl    Authenticator
	eapMax  int
	eapIdle time.Duration
	// tables are the EAP sessions of the open streams (tests look at them).
	mu     sync.Mutex
	tables map[*eapTable]bool
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

// Stream serves one host's calls. EAP sessions belong to the stream they
// were started on and end with it.
func (s *server) Stream(st grpc.BidiStreamingServer[pb.AuthCalls, pb.AuthReplies]) error {
	eap := newEAPTable(s.impl, s.eapMax, s.eapIdle)
	s.mu.Lock()
	if s.tables == nil {
		s.tables = map[*eapTable]bool{}
	}
	s.tables[eap] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.tables, eap)
		s.mu.Unlock()
		eap.closeAll()
	}()
	return mux.Serve(st, streamCodec,
		func(ctx context.Context, c *pb.AuthCall) *pb.AuthReply { return s.handle(ctx, eap, c) },
		func(c *pb.AuthCall, p any) *pb.AuthReply {
			return &pb.AuthReply{Id: c.GetId(), Error: fmt.Sprintf("plugin panicked: %v", p)}
		})
}

// eapSessions counts the open EAP sessions of every stream (tests).
func (s *server) eapSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for t := range s.tables {
		n += t.count()
	}
	return n
}

func (s *server) handle(ctx context.Context, eap *eapTable, c *pb.AuthCall) *pb.AuthReply {
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
	case *pb.AuthCall_EapStart:
		id, err := eap.start(ctx, op.EapStart)
		switch {
		case errors.Is(err, errUnsupported):
			reply.Error, reply.Unsupported = eap.errNoEAP(), true
		case err != nil:
			reply.Error = err.Error()
		default:
			reply.EapSession = id
		}
	case *pb.AuthCall_EapStep:
		st, err := eap.step(ctx, op.EapStep.GetSession(), op.EapStep.GetMessage())
		if err != nil {
			reply.Error = err.Error()
		} else {
			reply.EapStep = &pb.EAPStep{Message: st.Message, Done: st.Done, Success: st.Success,
				Msk: st.MSK, Identity: st.Identity, Reason: st.Reason}
		}
	case *pb.AuthCall_EapClose:
		if err := eap.close(op.EapClose); err != nil {
			reply.Error = err.Error()
		}
	default:
		// Plugins from before EAP answer the eap_* operations with this
		// text; the client reads it as ErrNoEAP.
		reply.Error = errUnknownOp
	}
	return reply
}

const errUnknownOp = "unknown auth operation"

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
