package mux

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

type call struct {
	id      uint64
	timeout time.Duration
	n       int
}

type reply struct {
	id uint64
	n  int
}

type calls struct{ list []*call }
type replies struct{ list []*reply }

var codec = Codec[call, reply, calls, replies]{
	ReplyID: func(r *reply) uint64 { return r.id },
	Timeout: func(c *call) time.Duration { return c.timeout },
	// Copies: the multiplexer reuses its batch slices after Send, as gRPC
	// has serialized them by then.
	WrapCalls:   func(cs []*call) *calls { return &calls{append([]*call(nil), cs...)} },
	UnwrapCalls: func(b *calls) []*call { return b.list },
	WrapReplies: func(rs []*reply) *replies { return &replies{append([]*reply(nil), rs...)} },
	Unwrap:      func(b *replies) []*reply { return b.list },
}

// pipe is an in-memory bidirectional stream: the client side's Send feeds
// the server side's Recv and the other way round.
type pipe struct {
	calls   chan *calls
	replies chan *replies
	ctx     context.Context
	cancel  context.CancelFunc
}

func newPipe() *pipe {
	ctx, cancel := context.WithCancel(context.Background())
	return &pipe{calls: make(chan *calls, 16), replies: make(chan *replies, 16), ctx: ctx, cancel: cancel}
}

type clientSide struct{ *pipe }

func (c clientSide) Send(x *calls) error {
	select {
	case c.calls <- x:
		return nil
	case <-c.ctx.Done():
		return errors.New("broken")
	}
}

func (c clientSide) Recv() (*replies, error) {
	select {
	case r := <-c.replies:
		return r, nil
	case <-c.ctx.Done():
		return nil, errors.New("broken")
	}
}

func (c clientSide) CloseSend() error { return nil }

type serverSide struct{ *pipe }

func (s serverSide) Send(r *replies) error {
	select {
	case s.replies <- r:
		return nil
	case <-s.ctx.Done():
		return errors.New("broken")
	}
}

func (s serverSide) Recv() (*calls, error) {
	select {
	case c := <-s.calls:
		return c, nil
	case <-s.ctx.Done():
		return nil, errors.New("broken")
	}
}

func (s serverSide) Context() context.Context { return s.ctx }

func start(t *testing.T, handle func(context.Context, *call) *reply) (*Client[call, reply, calls, replies], *pipe) {
	t.Helper()
	p := newPipe()
	go Serve(serverSide{p}, codec, handle, func(c *call, v any) *reply { return &reply{id: c.id, n: -1} })
	c, err := NewClient(func(context.Context) (ClientStream[calls, replies], error) { return clientSide{p}, nil }, codec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); p.cancel() })
	return c, p
}

func build(n int) func(uint64, time.Duration) *call {
	return func(id uint64, d time.Duration) *call { return &call{id: id, timeout: d, n: n} }
}

// TestConcurrentCallsGetTheirOwnReplies: replies come back out of order
// (the handler sleeps longer for small n) and each caller gets its own.
func TestConcurrentCallsGetTheirOwnReplies(t *testing.T) {
	c, _ := start(t, func(_ context.Context, x *call) *reply {
		time.Sleep(time.Duration(100-x.n) * 10 * time.Microsecond)
		return &reply{id: x.id, n: x.n * 2}
	})
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.Do(context.Background(), build(i))
			if err != nil || r.n != 2*i {
				t.Errorf("call %d: %+v, %v", i, r, err)
			}
		}()
	}
	wg.Wait()
}

func TestDeadlineTravelsAndExpires(t *testing.T) {
	got := make(chan time.Duration, 1)
	c, _ := start(t, func(ctx context.Context, x *call) *reply {
		got <- x.timeout
		<-ctx.Done() // the server side has the caller's budget
		time.Sleep(20 * time.Millisecond)
		return &reply{id: x.id}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Do(ctx, build(1))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if d := <-got; d <= 0 || d > 50*time.Millisecond {
		t.Errorf("server saw timeout %v", d)
	}
	// The late reply is dropped as stray, not delivered to a later call.
	for deadline := time.Now().Add(5 * time.Second); c.Stray.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if c.Stray.Load() != 1 {
		t.Errorf("stray replies = %d, want 1", c.Stray.Load())
	}
}

func TestStreamEndFailsWaitingAndNewCalls(t *testing.T) {
	block := make(chan struct{})
	c, p := start(t, func(_ context.Context, x *call) *reply { <-block; return &reply{id: x.id} })
	defer close(block)
	errc := make(chan error, 1)
	go func() { _, err := c.Do(context.Background(), build(1)); errc <- err }()
	time.Sleep(10 * time.Millisecond)
	p.cancel() // the plugin dies
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("waiting call: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiting call hangs after the stream ended")
	}
	<-c.Done()
	if _, err := c.Do(context.Background(), build(2)); !errors.Is(err, ErrClosed) {
		t.Errorf("new call: %v", err)
	}
}

func TestPanicBecomesReply(t *testing.T) {
	c, _ := start(t, func(_ context.Context, x *call) *reply {
		if x.n == 1 {
			panic("boom")
		}
		return &reply{id: x.id, n: 7}
	})
	r, err := c.Do(context.Background(), build(1))
	if err != nil || r.n != -1 {
		t.Fatalf("panicking call: %+v, %v", r, err)
	}
	if r, err := c.Do(context.Background(), build(2)); err != nil || r.n != 7 {
		t.Fatalf("after the panic: %+v, %v", r, err)
	}
}

// sizedSide records how many calls each message the client sends carries.
type sizedSide struct {
	clientSide
	mu    sync.Mutex
	sizes []int
}

func (s *sizedSide) Send(x *calls) error {
	s.mu.Lock()
	s.sizes = append(s.sizes, len(x.list))
	s.mu.Unlock()
	return s.clientSide.Send(x)
}

// TestDoBatchSharesMessages: a batch of calls travels in as few messages as
// MaxBatch allows, and each call still gets its own reply, in order.
func TestDoBatchSharesMessages(t *testing.T) {
	p := newPipe()
	go Serve(serverSide{p}, codec, func(_ context.Context, x *call) *reply { return &reply{id: x.id, n: x.n * 2} },
		func(c *call, v any) *reply { return &reply{id: c.id, n: -1} })
	side := &sizedSide{clientSide: clientSide{p}}
	c, err := NewClient(func(context.Context) (ClientStream[calls, replies], error) { return side, nil }, codec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); p.cancel() })

	n := MaxBatch + 10
	rs, err := c.DoBatch(context.Background(), n, func(i int, id uint64, d time.Duration) *call { return &call{id: id, timeout: d, n: i} })
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		if r.n != 2*i {
			t.Fatalf("reply %d: n = %d, want %d", i, r.n, 2*i)
		}
	}
	side.mu.Lock()
	defer side.mu.Unlock()
	if len(side.sizes) != 2 || side.sizes[0] != MaxBatch || side.sizes[1] != 10 {
		t.Errorf("messages carried %v calls, want [%d 10]", side.sizes, MaxBatch)
	}
}

// TestDoBatchDeadline: a batch whose replies do not all come in time fails
// with the deadline, and the late replies count as strays.
func TestDoBatchDeadline(t *testing.T) {
	late := make(chan struct{})
	c, _ := start(t, func(ctx context.Context, x *call) *reply {
		if x.n == 1 {
			<-late
		}
		return &reply{id: x.id}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.DoBatch(ctx, 3, func(i int, id uint64, d time.Duration) *call { return &call{id: id, timeout: d, n: i} })
	close(late)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	for deadline := time.Now().Add(5 * time.Second); c.Stray.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if c.Stray.Load() == 0 {
		t.Error("the late reply was not counted as a stray")
	}
}
