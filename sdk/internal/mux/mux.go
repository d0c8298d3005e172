// Package mux multiplexes many concurrent calls over one long-lived gRPC
// bidirectional stream. A unary go-plugin call costs several times the CPU of
// a message on an open stream, and the per-handshake path (AUTH make/verify,
// signatures) must stay cheap, so each plugin keeps one stream open and tells
// calls apart by an id the client picks.
//
// Messages on the stream are batches: one goroutine per direction writes
// whatever calls (or replies) have queued up while it wrote the previous
// batch. An idle stream sends batches of one without waiting; a busy one
// spreads the per-message cost (HTTP/2 frame, TLS record, system call) over
// many calls.
package mux

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// MaxInFlight bounds the calls a server works on at once per stream.
const MaxInFlight = 1024

// MaxBatch bounds the calls or replies in one stream message.
const MaxBatch = 128

// ErrClosed is returned for calls on a stream that has ended (the plugin
// exited or the host closed it).
var ErrClosed = errors.New("plugin stream closed")

// ClientStream is the client side of a generated bidirectional stream of
// batches CB (calls) and RB (replies).
type ClientStream[CB, RB any] interface {
	Send(*CB) error
	Recv() (*RB, error)
	CloseSend() error
}

// Codec tells the multiplexer how the generated types fit together.
type Codec[Call, Reply, CB, RB any] struct {
	ReplyID     func(*Reply) uint64
	Timeout     func(*Call) time.Duration
	WrapCalls   func([]*Call) *CB
	UnwrapCalls func(*CB) []*Call
	WrapReplies func([]*Reply) *RB
	Unwrap      func(*RB) []*Reply
}

// Client sends calls and routes replies back to their callers.
type Client[Call, Reply, CB, RB any] struct {
	stream ClientStream[CB, RB]
	codec  Codec[Call, Reply, CB, RB]
	cancel context.CancelFunc
	nextID atomic.Uint64
	queue  chan []*Call // groups of calls that travel together

	mu      sync.Mutex
	pending map[uint64]chan *Reply
	err     error // set once the stream ended
	done    chan struct{}

	// Stray counts replies whose id matched no waiting call (late replies
	// after a timeout, or a misbehaving plugin).
	Stray atomic.Uint64
}

// NewClient opens the stream with open and starts routing.
func NewClient[Call, Reply, CB, RB any](open func(ctx context.Context) (ClientStream[CB, RB], error), codec Codec[Call, Reply, CB, RB]) (*Client[Call, Reply, CB, RB], error) {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := open(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	c := &Client[Call, Reply, CB, RB]{
		stream:  s,
		codec:   codec,
		cancel:  cancel,
		queue:   make(chan []*Call, MaxInFlight),
		pending: make(map[uint64]chan *Reply),
		done:    make(chan struct{}),
	}
	go c.routineReceive()
	go c.routineSend()
	return c, nil
}

func (c *Client[Call, Reply, CB, RB]) routineSend() {
	var batch []*Call
	for {
		select {
		case group := <-c.queue:
			batch = append(batch[:0], group...)
		case <-c.done:
			return
		}
	fill:
		for len(batch) < MaxBatch {
			select {
			case group := <-c.queue:
				batch = append(batch, group...)
			default:
				break fill
			}
		}
		for rest := batch; len(rest) > 0; {
			n := min(len(rest), MaxBatch)
			if err := c.stream.Send(c.codec.WrapCalls(rest[:n])); err != nil {
				c.fail(err)
				return
			}
			rest = rest[n:]
		}
		clear(batch)
	}
}

func (c *Client[Call, Reply, CB, RB]) routineReceive() {
	for {
		rb, err := c.stream.Recv()
		if err != nil {
			c.fail(err)
			return
		}
		for _, r := range c.codec.Unwrap(rb) {
			id := c.codec.ReplyID(r)
			c.mu.Lock()
			ch, ok := c.pending[id]
			delete(c.pending, id)
			c.mu.Unlock()
			if !ok {
				c.Stray.Add(1)
				continue
			}
			ch <- r // buffered: never blocks
		}
	}
}

func (c *Client[Call, Reply, CB, RB]) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = fmt.Errorf("%w: %v", ErrClosed, err)
	close(c.done)
	c.pending = nil
}

// Done is closed when the stream has ended.
func (c *Client[Call, Reply, CB, RB]) Done() <-chan struct{} { return c.done }

// Err is why the stream ended, nil while it is open.
func (c *Client[Call, Reply, CB, RB]) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Do sends the call that build makes for a fresh id and waits for its reply,
// the end of ctx or the end of the stream, whichever comes first. The
// call's time budget (what is left of ctx) travels with it so the plugin can
// give up too.
func (c *Client[Call, Reply, CB, RB]) Do(ctx context.Context, build func(id uint64, timeout time.Duration) *Call) (*Reply, error) {
	rs, err := c.DoBatch(ctx, 1, func(_ int, id uint64, timeout time.Duration) *Call { return build(id, timeout) })
	if err != nil {
		return nil, err
	}
	return rs[0], nil
}

// DoBatch sends n calls (build makes call i) in the same stream message, or
// in as few as MaxBatch allows, and waits for all their replies, as Do does
// for one. Work done ahead in bulk (SPIs for the next second's handshakes)
// then costs one message, not n.
func (c *Client[Call, Reply, CB, RB]) DoBatch(ctx context.Context, n int, build func(i int, id uint64, timeout time.Duration) *Call) ([]*Reply, error) {
	var timeout time.Duration
	if dl, ok := ctx.Deadline(); ok {
		if timeout = time.Until(dl); timeout <= 0 {
			return nil, ctx.Err()
		}
	}
	ids := make([]uint64, n)
	chs := make([]chan *Reply, n)
	group := make([]*Call, n)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	for i := range n {
		ids[i] = c.nextID.Add(1)
		chs[i] = make(chan *Reply, 1)
		c.pending[ids[i]] = chs[i]
	}
	c.mu.Unlock()
	for i := range n {
		group[i] = build(i, ids[i], timeout)
	}

	select {
	case c.queue <- group:
	case <-ctx.Done():
		c.forget(ids...)
		return nil, ctx.Err()
	case <-c.done:
		return nil, c.Err()
	}
	replies := make([]*Reply, n)
	for i, ch := range chs {
		select {
		case replies[i] = <-ch:
		case <-ctx.Done():
			c.forget(ids[i:]...)
			return nil, ctx.Err()
		case <-c.done:
			// A reply may have raced the end of the stream.
			select {
			case replies[i] = <-ch:
				continue
			default:
			}
			return nil, c.Err()
		}
	}
	return replies, nil
}

func (c *Client[Call, Reply, CB, RB]) forget(ids ...uint64) {
	c.mu.Lock()
	for _, id := range ids {
		delete(c.pending, id)
	}
	c.mu.Unlock()
}

// Close ends the stream; waiting calls fail with ErrClosed.
func (c *Client[Call, Reply, CB, RB]) Close() {
	c.cancel()
	c.fail(errors.New("closed by host"))
}

// ServerStream is the server side of a generated bidirectional stream.
type ServerStream[CB, RB any] interface {
	Send(*RB) error
	Recv() (*CB, error)
	Context() context.Context
}

// Serve reads calls until the stream ends and answers each on its own
// goroutine (at most MaxInFlight at once). handle must return a reply with
// the call's id. A panic in handle becomes the reply panicReply builds, not
// a crash.
func Serve[Call, Reply, CB, RB any](s ServerStream[CB, RB], codec Codec[Call, Reply, CB, RB],
	handle func(ctx context.Context, c *Call) *Reply, panicReply func(c *Call, p any) *Reply) error {
	ctx, cancel := context.WithCancel(s.Context())
	defer cancel()
	replies := make(chan *Reply, MaxInFlight)
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		routineSendReplies(ctx, s, codec, replies)
	}()
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		cancel()
		<-sendDone
	}()
	slots := make(chan struct{}, MaxInFlight)
	for {
		cb, err := s.Recv()
		if err != nil {
			return nil // the host closed the stream or went away
		}
		for _, call := range codec.UnwrapCalls(cb) {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				cctx := ctx
				if d := codec.Timeout(call); d > 0 {
					var ccancel context.CancelFunc
					cctx, ccancel = context.WithTimeout(ctx, d)
					defer ccancel()
				}
				select {
				case replies <- safeHandle(cctx, call, handle, panicReply):
				case <-ctx.Done():
				}
			}()
		}
	}
}

func routineSendReplies[Call, Reply, CB, RB any](ctx context.Context, s ServerStream[CB, RB], codec Codec[Call, Reply, CB, RB], replies <-chan *Reply) {
	batch := make([]*Reply, 0, MaxBatch)
	for {
		select {
		case r := <-replies:
			batch = append(batch[:0], r)
		case <-ctx.Done():
			return
		}
	fill:
		for len(batch) < MaxBatch {
			select {
			case r := <-replies:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		if err := s.Send(codec.WrapReplies(batch)); err != nil {
			return
		}
		clear(batch)
	}
}

func safeHandle[Call, Reply any](ctx context.Context, c *Call, handle func(context.Context, *Call) *Reply, panicReply func(*Call, any) *Reply) (r *Reply) {
	defer func() {
		if p := recover(); p != nil {
			r = panicReply(c, p)
		}
	}()
	return handle(ctx, c)
}
