package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veil-ipsec/veil/sdk/base"
	pb "github.com/veil-ipsec/veil/sdk/proto"
)

// Client is the host's side of a dataplane plugin, safe for concurrent use.
// Calls are unary: they happen per SA, not per handshake or packet.
type Client struct {
	*base.Client
	rpc pb.DataplaneClient
	// DroppedEvents counts malformed events from the plugin, dropped.
	DroppedEvents atomic.Uint64
	// Logger, when set, reports dropped events.
	Logger *slog.Logger
}

// NewClient returns a dataplane client on conn.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{Client: base.NewClient(conn), rpc: pb.NewDataplaneClient(conn)}
}

// ErrInvalidReply wraps every rejection of a plugin's malformed answer.
var ErrInvalidReply = errors.New("dataplane plugin returned an invalid reply")

func (c *Client) AllocateSPI(ctx context.Context, src, dst netip.Addr) (uint32, error) {
	r, err := c.rpc.AllocateSPI(ctx, &pb.AllocateSPIRequest{Src: addrToProto(src), Dst: addrToProto(dst)})
	if err != nil {
		return 0, plainError(err)
	}
	// SPIs 1-255 are reserved by IANA (RFC 4303 §2.1); 0 means none.
	if r.GetSpi() < 256 {
		return 0, fmt.Errorf("%w: SPI %d is reserved", ErrInvalidReply, r.GetSpi())
	}
	return r.GetSpi(), nil
}

func (c *Client) InstallSA(ctx context.Context, sa *ChildSA) error {
	_, err := c.rpc.InstallSA(ctx, saToProto(sa))
	return plainError(err)
}

func (c *Client) DeleteSA(ctx context.Context, key SAKey) error {
	_, err := c.rpc.DeleteSA(ctx, keyToProto(key))
	return plainError(err)
}

func (c *Client) InstallPolicy(ctx context.Context, p *Policy) error {
	_, err := c.rpc.InstallPolicy(ctx, policyToProto(p))
	return plainError(err)
}

func (c *Client) DeletePolicy(ctx context.Context, p *Policy) error {
	_, err := c.rpc.DeletePolicy(ctx, policyToProto(p))
	return plainError(err)
}

func (c *Client) Counters(ctx context.Context, keys []SAKey) ([]Counters, error) {
	req := &pb.SAKeys{}
	for _, k := range keys {
		req.Keys = append(req.Keys, keyToProto(k))
	}
	r, err := c.rpc.Counters(ctx, req)
	if err != nil {
		return nil, plainError(err)
	}
	if len(r.GetCounters()) != len(keys) {
		return nil, fmt.Errorf("%w: %d counters for %d SAs", ErrInvalidReply, len(r.GetCounters()), len(keys))
	}
	out := make([]Counters, len(keys))
	for i, pc := range r.GetCounters() {
		out[i] = countersFromProto(pc)
	}
	return out, nil
}

// Events subscribes to the plugin's events until ctx ends or the plugin
// goes away; then the channel is closed. Malformed events are dropped and
// counted in DroppedEvents.
func (c *Client) Events(ctx context.Context) (<-chan Event, error) {
	st, err := c.rpc.Events(ctx, &pb.Empty{})
	if err != nil {
		return nil, plainError(err)
	}
	out := make(chan Event, EventBuffer)
	go func() {
		defer close(out)
		for {
			pe, err := st.Recv()
			if err != nil {
				return
			}
			e, err := eventFromProto(pe)
			if err != nil {
				c.DroppedEvents.Add(1)
				if c.Logger != nil {
					c.Logger.Warn("dropped malformed dataplane event", "reason", err)
				}
				continue
			}
			select {
			case out <- e:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// plainError strips gRPC's wrapping from the plugin's own error text.
func plainError(err error) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok && s.Code() == codes.Unknown {
		msg := s.Message()
		if len(msg) > 1024 {
			msg = msg[:1024] + "..."
		}
		return errors.New(msg)
	}
	return err
}
