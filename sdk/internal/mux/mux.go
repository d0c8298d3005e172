// Package mux multiplexes many concurrent calls over one long-lived gRPC
// bidirectional stream. A unary go-plugin call costs several times the CPU of
// a message on an open stream, and the per-handshake path (AUTH make/verify,
// signatures) must stay cheap, so each plugin keeps one stream open and tells
// calls apart by an id the client picks.
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

// ErrClosed is returned for calls on a stream that has ended (the plugin
// exited or the host closed it).
var ErrClosed = errors.New("plugin stream closed")

// ClientStream is the client side of a generated bidirectional stream.
type ClientStream[Call, Reply any] interface {
	Send(*Call) error
	Recv() (*Reply, error)
	CloseSend() error
}

// Client sends calls and routes replies back to their callers.
type Client[Call, Reply any] struct {
	stream  ClientStream[Call, Reply]
	cancel  context.CancelFunc
	replyID func(*Reply) uint64
	nextID  atomic.Uint64
	sendMu  sync.Mutex

	mu      sync.Mutex
	pending map[uint64]chan *Reply
	err     error // set once the stream ended
	done    chan struct{}

	// Stray counts replies whose id matched no waiting call (late replies
	// after a timeout, or a misbehaving plugin).
	Stray atomic.Uint64
}

// NewClient opens the stream with open and starts routing replies. cancel
// ends the stream's context on Close.
func NewClient[Call, Reply any](open func(ctx context.Context) (ClientStream[Call, Reply], error), replyID func(*Reply) uint64) (*Client[Call, Reply], error) {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := open(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	c := &Client[Call, Reply]{
		stream:  s,
		cancel:  cancel,
		replyID: replyID,
		pending: make(map[uint64]chan *Reply),
		done:    make(chan struct{}),
	}
	go c.routineReceive()
	return c, nil
}

func (c *Client[Call, Reply]) routineReceive() {
	for {
		r, err := c.stream.Recv()
		if err != nil {
			c.fail(err)
			return
		}
		id := c.replyID(r)
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

func (c *Client[Call, Reply]) fail(err error) {
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
func (c *Client[Call, Reply]) Done() <-chan struct{} { return c.done }

// Err is why the stream ended, nil while it is open.
func (c *Client[Call, Reply]) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Do sends the call that build makes for a fresh id and waits for its reply,
// the end of ctx or the end of the stream, whichever comes first. The
// call's time budget (what is left of ctx) travels with it so the plugin can
// give up too.
func (c *Client[Call, Reply]) Do(ctx context.Context, build func(id uint64, timeout time.Duration) *Call) (*Reply, error) {
	id := c.nextID.Add(1)
	ch := make(chan *Reply, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.pending[id] = ch
	c.mu.Unlock()

	var timeout time.Duration
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			c.forget(id)
			return nil, ctx.Err()
		}
	}
	c.sendMu.Lock()
	err := c.stream.Send(build(id, timeout))
	c.sendMu.Unlock()
	if err != nil {
		c.forget(id)
		c.fail(err)
		return nil, c.Err()
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		c.forget(id)
		return nil, ctx.Err()
	case <-c.done:
		// A reply may have raced the end of the stream.
		select {
		case r := <-ch:
			return r, nil
		default:
		}
		return nil, c.Err()
	}
}

func (c *Client[Call, Reply]) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// Close ends the stream; waiting calls fail with ErrClosed.
func (c *Client[Call, Reply]) Close() {
	c.sendMu.Lock()
	_ = c.stream.CloseSend()
	c.sendMu.Unlock()
	c.cancel()
	c.fail(errors.New("closed by host"))
}

// ServerStream is the server side of a generated bidirectional stream.
type ServerStream[Call, Reply any] interface {
	Send(*Reply) error
	Recv() (*Call, error)
	Context() context.Context
}

// Serve reads calls until the stream ends and answers each on its own
// goroutine (at most MaxInFlight at once). handle must return a reply with
// the call's id; timeout is the budget the caller sent (0: none).
// A panic in handle becomes the reply panicReply builds, not a crash.
func Serve[Call, Reply any](s ServerStream[Call, Reply], timeout func(*Call) time.Duration,
	handle func(ctx context.Context, c *Call) *Reply, panicReply func(c *Call, p any) *Reply) error {
	var sendMu sync.Mutex
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, MaxInFlight)
	for {
		call, err := s.Recv()
		if err != nil {
			return nil // the host closed the stream or went away
		}
		select {
		case slots <- struct{}{}:
		case <-s.Context().Done():
			return nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			ctx := s.Context()
			if d := timeout(call); d > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, d)
				defer cancel()
			}
			reply := safeHandle(ctx, call, handle, panicReply)
			sendMu.Lock()
			_ = s.Send(reply)
			sendMu.Unlock()
		}()
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
