package dataplane

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/internal/mux"
	pb "github.com/veil-ipsec/veil/sdk/proto"
)

// Client is the host's side of a dataplane plugin, safe for concurrent use.
// From protocol version 2 on, a handshake's calls (AllocateSPI,
// InstallChild) travel on one multiplexed stream; the rest (deletes,
// counters, re-installs after a restart) are unary: they are per SA
// lifetime or per operator request, not per handshake.
type Client struct {
	*base.Client
	rpc    pb.DataplaneClient
	stream *mux.Client[pb.DataplaneCall, pb.DataplaneReply, pb.DataplaneCalls, pb.DataplaneReplies] // nil: version 1
	// DroppedEvents counts malformed events from the plugin, dropped.
	DroppedEvents atomic.Uint64
	// Logger, when set, reports dropped events.
	Logger *slog.Logger
}

// NewClient returns a protocol version 1 client on conn: every call unary.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{Client: base.NewClient(conn), rpc: pb.NewDataplaneClient(conn)}
}

// NewStreamClient returns a protocol version 2 client on conn, with its
// stream open.
func NewStreamClient(conn grpc.ClientConnInterface) (*Client, error) {
	c := NewClient(conn)
	s, err := mux.NewClient(func(ctx context.Context) (mux.ClientStream[pb.DataplaneCalls, pb.DataplaneReplies], error) {
		return c.rpc.Stream(ctx)
	}, streamCodec)
	if err != nil {
		return nil, fmt.Errorf("opening dataplane stream: %w", err)
	}
	c.stream = s
	return c, nil
}

// Version is the protocol version the client speaks.
func (c *Client) Version() int {
	if c.stream == nil {
		return 1
	}
	return 2
}

// Done is closed when the stream has ended (the plugin went away); nil,
// never ready, for a version 1 client.
func (c *Client) Done() <-chan struct{} {
	if c.stream == nil {
		return nil
	}
	return c.stream.Done()
}

// Close ends the stream.
func (c *Client) Close() {
	if c.stream != nil {
		c.stream.Close()
	}
}

// do runs one call on the stream and turns the plugin's error text into
// an error.
func (c *Client) do(ctx context.Context, build func(*pb.DataplaneCall)) (*pb.DataplaneReply, error) {
	r, err := c.stream.Do(ctx, func(id uint64, timeout time.Duration) *pb.DataplaneCall {
		call := &pb.DataplaneCall{Id: id, TimeoutMs: millis(timeout)}
		build(call)
		return call
	})
	if err != nil {
		return nil, err
	}
	if r.GetError() != "" {
		return nil, remoteError(r.GetError())
	}
	return r, nil
}

// InstallChild installs a Child SA's SAs, then its policies, all or none
// (see ChildInstaller): one streamed call from version 2 on, else unary
// calls in order with a rollback on failure.
func (c *Client) InstallChild(ctx context.Context, sas []*ChildSA, policies []*Policy) error {
	if c.stream == nil {
		return installSteps(ctx, c, sas, policies)
	}
	req := &pb.InstallChildRequest{}
	for _, sa := range sas {
		req.Sas = append(req.Sas, saToProto(sa))
	}
	for _, p := range policies {
		req.Policies = append(req.Policies, policyToProto(p))
	}
	_, err := c.do(ctx, func(call *pb.DataplaneCall) {
		call.Op = &pb.DataplaneCall_InstallChild{InstallChild: req}
	})
	return err
}

// AllocateSPIs reserves n SPIs for SAs from src to dst in one stream
// message (version 2; a version 1 client makes n calls). It returns the
// SPIs it got and the first error, if any.
func (c *Client) AllocateSPIs(ctx context.Context, src, dst netip.Addr, n int) ([]uint32, error) {
	if c.stream == nil {
		var spis []uint32
		for range n {
			spi, err := c.AllocateSPI(ctx, src, dst)
			if err != nil {
				return spis, err
			}
			spis = append(spis, spi)
		}
		return spis, nil
	}
	req := &pb.AllocateSPIRequest{Src: addrToProto(src), Dst: addrToProto(dst)}
	rs, err := c.stream.DoBatch(ctx, n, func(_ int, id uint64, timeout time.Duration) *pb.DataplaneCall {
		return &pb.DataplaneCall{Id: id, TimeoutMs: millis(timeout), Op: &pb.DataplaneCall_AllocateSpi{AllocateSpi: req}}
	})
	if err != nil {
		return nil, err
	}
	spis := make([]uint32, 0, n)
	seen := make(map[uint32]bool, n)
	var first error
	for _, r := range rs {
		spi := r.GetSpi()
		err := checkSPI(spi)
		switch {
		case r.GetError() != "":
			err = remoteError(r.GetError())
		case err == nil && seen[spi]:
			err = fmt.Errorf("%w: SPI %08x handed out twice", ErrInvalidReply, spi)
		}
		if err != nil {
			first = cmp.Or(first, err)
			continue
		}
		seen[spi] = true
		spis = append(spis, spi)
	}
	return spis, first
}

// ErrInvalidReply wraps every rejection of a plugin's malformed answer.
var ErrInvalidReply = errors.New("dataplane plugin returned an invalid reply")

func (c *Client) AllocateSPI(ctx context.Context, src, dst netip.Addr) (uint32, error) {
	req := &pb.AllocateSPIRequest{Src: addrToProto(src), Dst: addrToProto(dst)}
	var spi uint32
	if c.stream != nil {
		r, err := c.do(ctx, func(call *pb.DataplaneCall) { call.Op = &pb.DataplaneCall_AllocateSpi{AllocateSpi: req} })
		if err != nil {
			return 0, err
		}
		spi = r.GetSpi()
	} else {
		r, err := c.rpc.AllocateSPI(ctx, req)
		if err != nil {
			return 0, plainError(err)
		}
		spi = r.GetSpi()
	}
	if err := checkSPI(spi); err != nil {
		return 0, err
	}
	return spi, nil
}

// checkSPI refuses an SPI a plugin allocated that no SA may have: 1-255
// are reserved by IANA (RFC 4303 §2.1), 0 means none.
func checkSPI(spi uint32) error {
	if spi < 256 {
		return fmt.Errorf("%w: SPI %d is reserved", ErrInvalidReply, spi)
	}
	return nil
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
	return uint32(min(max(d.Milliseconds(), 1), 1<<31))
}
