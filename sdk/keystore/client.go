package keystore

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/internal/mux"
	pb "github.com/veil-ipsec/veil/sdk/proto"
)

// Client is the host's side of a keystore plugin, safe for concurrent use.
// Sign travels over one multiplexed stream; Secret and Public are rare
// (per connection load) and unary.
type Client struct {
	*base.Client
	rpc    pb.KeystoreClient
	stream *mux.Client[pb.KeystoreCall, pb.KeystoreReply, pb.KeystoreCalls, pb.KeystoreReplies]
}

// NewClient opens the signing stream on conn.
func NewClient(conn grpc.ClientConnInterface) (*Client, error) {
	rpc := pb.NewKeystoreClient(conn)
	s, err := mux.NewClient(func(ctx context.Context) (mux.ClientStream[pb.KeystoreCalls, pb.KeystoreReplies], error) {
		return rpc.Stream(ctx)
	}, streamCodec)
	if err != nil {
		return nil, fmt.Errorf("opening keystore stream: %w", err)
	}
	return &Client{Client: base.NewClient(conn), rpc: rpc, stream: s}, nil
}

// Done is closed when the signing stream has ended.
func (c *Client) Done() <-chan struct{} { return c.stream.Done() }

// Close ends the signing stream.
func (c *Client) Close() { c.stream.Close() }

// ErrInvalidReply wraps every rejection of a plugin's malformed answer.
var ErrInvalidReply = errors.New("keystore plugin returned an invalid reply")

// Secret fetches a shared secret; the caller zeroes it.
func (c *Client) Secret(ctx context.Context, ref string) ([]byte, error) {
	r, err := c.rpc.Secret(ctx, &pb.KeyRef{Ref: ref})
	if err != nil {
		return nil, plainError(err)
	}
	s := r.GetSecret()
	if len(s) == 0 || len(s) > MaxSecretLen {
		clear(s)
		return nil, fmt.Errorf("%w: secret of %d bytes (1-%d allowed)", ErrInvalidReply, len(s), MaxSecretLen)
	}
	return s, nil
}

// Public fetches the public key of a signing key.
func (c *Client) Public(ctx context.Context, ref string) (crypto.PublicKey, error) {
	r, err := c.rpc.Public(ctx, &pb.KeyRef{Ref: ref})
	if err != nil {
		return nil, plainError(err)
	}
	if len(r.GetPkix()) > MaxPublicLen {
		return nil, fmt.Errorf("%w: public key of %d bytes", ErrInvalidReply, len(r.GetPkix()))
	}
	pub, err := x509.ParsePKIXPublicKey(r.GetPkix())
	if err != nil {
		return nil, fmt.Errorf("%w: public key: %v", ErrInvalidReply, err)
	}
	return pub, nil
}

// Sign asks the plugin to sign digest with ref's private key.
func (c *Client) Sign(ctx context.Context, ref string, digest []byte, opts SignOptions) ([]byte, error) {
	r, err := c.stream.Do(ctx, func(id uint64, timeout time.Duration) *pb.KeystoreCall {
		return &pb.KeystoreCall{Id: id, TimeoutMs: millis(timeout), Sign: &pb.SignRequest{
			Ref: ref, Digest: digest, Hash: uint32(opts.Hash), Pss: opts.PSS, PssSaltLength: int32(opts.SaltLength),
		}}
	})
	if err != nil {
		return nil, err
	}
	if r.GetError() != "" {
		return nil, remoteError(r.GetError())
	}
	if n := len(r.GetSignature()); n == 0 || n > MaxSignatureLen {
		return nil, fmt.Errorf("%w: signature of %d bytes (1-%d allowed)", ErrInvalidReply, n, MaxSignatureLen)
	}
	return r.GetSignature(), nil
}

// plainError strips gRPC's "rpc error: code = ... desc =" from a plugin's
// error text, keeping transport failures as they are.
func plainError(err error) error {
	if s, ok := status.FromError(err); ok && s.Code() == 2 /* Unknown: the plugin's own error */ {
		return remoteError(s.Message())
	}
	return err
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
