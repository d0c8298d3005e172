package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"

	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/internal/mux"
	pb "github.com/veil-ipsec/veil/sdk/proto"
)

// Client is the host's side of an auth plugin. Make and Verify travel over
// one multiplexed stream; it is safe for concurrent use. Replies are checked
// against the limits in versions.go: a plugin that returns garbage gets an
// error, never a panic in the host.
type Client struct {
	*base.Client
	rpc    pb.AuthClient
	stream *mux.Client[pb.AuthCall, pb.AuthReply, pb.AuthCalls, pb.AuthReplies]
}

// NewClient opens the call stream on conn.
func NewClient(conn grpc.ClientConnInterface) (*Client, error) {
	rpc := pb.NewAuthClient(conn)
	s, err := mux.NewClient(func(ctx context.Context) (mux.ClientStream[pb.AuthCalls, pb.AuthReplies], error) {
		return rpc.Stream(ctx)
	}, streamCodec)
	if err != nil {
		return nil, fmt.Errorf("opening auth stream: %w", err)
	}
	return &Client{Client: base.NewClient(conn), rpc: rpc, stream: s}, nil
}

// Done is closed when the call stream has ended (the plugin went away).
func (c *Client) Done() <-chan struct{} { return c.stream.Done() }

// Close ends the call stream.
func (c *Client) Close() { c.stream.Close() }

// Make asks the plugin for this side's AUTH payload.
func (c *Client) Make(ctx context.Context, req *Request) (*Result, error) {
	r, err := c.stream.Do(ctx, func(id uint64, timeout time.Duration) *pb.AuthCall {
		return &pb.AuthCall{Id: id, TimeoutMs: millis(timeout), Op: &pb.AuthCall_Make{Make: requestToProto(req)}}
	})
	if err != nil {
		return nil, err
	}
	if r.GetError() != "" {
		return nil, remoteError(r.GetError())
	}
	return checkResult(r.GetResult())
}

// Verify asks the plugin to check the peer's AUTH payload.
func (c *Client) Verify(ctx context.Context, req *Request) error {
	r, err := c.stream.Do(ctx, func(id uint64, timeout time.Duration) *pb.AuthCall {
		return &pb.AuthCall{Id: id, TimeoutMs: millis(timeout), Op: &pb.AuthCall_Verify{Verify: requestToProto(req)}}
	})
	if err != nil {
		return err
	}
	if r.GetError() != "" {
		return remoteError(r.GetError())
	}
	return nil
}

// VerifyUnary is Verify as one unary RPC. It exists to measure what the
// stream saves (BenchmarkAuthVerifyUnary); the host does not use it.
func (c *Client) VerifyUnary(ctx context.Context, req *Request) error {
	r, err := c.rpc.Verify(ctx, requestToProto(req))
	if err != nil {
		return err
	}
	if r.GetError() != "" {
		return remoteError(r.GetError())
	}
	return nil
}

// ErrInvalidResult wraps every rejection of a plugin's malformed answer.
var ErrInvalidResult = errors.New("auth plugin returned an invalid result")

func checkResult(r *pb.AuthResult) (*Result, error) {
	switch {
	case r == nil:
		return nil, fmt.Errorf("%w: no result", ErrInvalidResult)
	case r.GetMethod() == 0 || r.GetMethod() > 255:
		return nil, fmt.Errorf("%w: AUTH method %d out of range 1-255", ErrInvalidResult, r.GetMethod())
	case len(r.GetData()) == 0:
		return nil, fmt.Errorf("%w: empty AUTH data", ErrInvalidResult)
	case len(r.GetData()) > MaxDataLen:
		return nil, fmt.Errorf("%w: %d bytes of AUTH data (limit %d)", ErrInvalidResult, len(r.GetData()), MaxDataLen)
	case len(r.GetCerts()) > MaxCerts:
		return nil, fmt.Errorf("%w: %d certificates (limit %d)", ErrInvalidResult, len(r.GetCerts()), MaxCerts)
	}
	for i, cert := range r.GetCerts() {
		if len(cert) == 0 || len(cert) > MaxCertLen {
			return nil, fmt.Errorf("%w: certificate %d is %d bytes (1-%d allowed)", ErrInvalidResult, i, len(cert), MaxCertLen)
		}
	}
	return &Result{Method: uint8(r.GetMethod()), Data: r.GetData(), Certs: r.GetCerts()}, nil
}

func remoteError(msg string) error {
	if len(msg) > MaxErrorLen {
		msg = msg[:MaxErrorLen] + "..."
	}
	return errors.New(msg)
}

func millis(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	ms := d.Milliseconds()
	if ms == 0 {
		return 1
	}
	if ms > 1<<31 {
		return 1 << 31
	}
	return uint32(ms)
}
