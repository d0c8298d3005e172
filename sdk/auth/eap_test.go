package auth

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/internal/mux"
	pb "github.com/veil-ipsec/veil/sdk/proto"
)

// testPlugin serves a given server so tests can look at its sessions.
type testPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl Authenticator
	auth pb.AuthServer
}

func (p *testPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterBaseServer(s, &base.Server{Impl: p.impl})
	pb.RegisterAuthServer(s, p.auth)
	return nil
}

func (p *testPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return NewClient(c)
}

func serveAuth(t *testing.T, impl Authenticator, srv pb.AuthServer) *Client {
	t.Helper()
	// client.Close stops the server too (go-plugin's controller); a
	// second Stop of our own would race with it.
	client, _ := plugin.TestPluginGRPCConn(t, false, plugin.PluginSet{PluginName: &testPlugin{impl: impl, auth: srv}})
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(PluginName)
	if err != nil {
		t.Fatal(err)
	}
	c := raw.(*Client)
	t.Cleanup(c.Close)
	return c
}

func serveEAP(t *testing.T, m Authenticator, max int, idle time.Duration) (*Client, *server) {
	srv := &server{impl: m, eapMax: max, eapIdle: idle}
	return serveAuth(t, m, srv), srv
}

var (
	serverReq = &EAPRequest{Connection: "c", Method: "eap-md5", Server: true}
	clientReq = &EAPRequest{Connection: "c", Method: "eap-md5", LocalID: Identity{Type: 2, Data: []byte("alice")}}
)

// converse runs a conversation between two sessions to its end.
func converse(t *testing.T, srv, cli EAPSession) (s, c *EAPStep) {
	t.Helper()
	ctx := context.Background()
	s, err := srv.Step(ctx, nil)
	if err != nil {
		t.Fatalf("server's first step: %v", err)
	}
	for range 10 {
		if c, err = cli.Step(ctx, s.Message); err != nil {
			t.Fatalf("client step: %v", err)
		}
		if c.Done {
			return s, c
		}
		if s, err = srv.Step(ctx, c.Message); err != nil {
			t.Fatalf("server step: %v", err)
		}
	}
	t.Fatal("conversation did not end in 10 rounds")
	return nil, nil
}

func start(t *testing.T, c *Client, req *EAPRequest) EAPSession {
	t.Helper()
	s, err := c.StartEAP(context.Background(), req)
	if err != nil {
		t.Fatalf("StartEAP(server %v): %v", req.Server, err)
	}
	return s
}

func TestEAPOverGRPC(t *testing.T) {
	m := &EAPMock{Users: map[string]string{"alice": "pw"}, Password: "pw"}
	c, srv := serveEAP(t, m, 0, 0)

	ss, cs := start(t, c, serverReq), start(t, c, clientReq)
	s, cl := converse(t, ss, cs)
	if !s.Done || !s.Success || !cl.Done || !cl.Success {
		t.Fatalf("server %+v, client %+v: want success on both sides", s, cl)
	}
	if len(s.MSK) != 64 || !bytes.Equal(s.MSK, cl.MSK) {
		t.Errorf("MSKs differ or are not 64 bytes: %x, %x", s.MSK, cl.MSK)
	}
	if string(s.Identity) != "alice" {
		t.Errorf("server learned identity %q, want alice", s.Identity)
	}
	if n := srv.eapSessions(); n != 2 {
		t.Errorf("%d sessions open in the plugin, want 2", n)
	}
	ss.Close()
	ss.Close()
	cs.Close()
	waitFor(t, "both sessions closed in the plugin", func() bool { return srv.eapSessions() == 0 && m.Closed.Load() == 2 })
	if _, err := ss.Step(context.Background(), []byte{1}); err == nil {
		t.Error("Step after Close succeeded")
	}

	m.Password = "wrong"
	ss, cs = start(t, c, serverReq), start(t, c, clientReq)
	defer ss.Close()
	defer cs.Close()
	s, cl = converse(t, ss, cs)
	if !s.Done || s.Success || !strings.Contains(s.Reason, "wrong password") || len(s.MSK) != 0 {
		t.Errorf("server step with a wrong password: %+v", s)
	}
	if !cl.Done || cl.Success || cl.Reason == "" {
		t.Errorf("client step after EAP-Failure: %+v", cl)
	}
}

func TestEAPUnknownSession(t *testing.T) {
	c, _ := serveEAP(t, &EAPMock{}, 0, 0)
	_, err := (&clientSession{c: c, id: 12345}).Step(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "EAP session 12345 is unknown") {
		t.Fatalf("Step of an unknown session: %v", err)
	}
}

func TestEAPSessionLimit(t *testing.T) {
	m := &EAPMock{}
	c, _ := serveEAP(t, m, 2, 0)
	a, b := start(t, c, serverReq), start(t, c, serverReq)
	defer b.Close()
	if _, err := c.StartEAP(context.Background(), serverReq); err == nil || !strings.Contains(err.Error(), "too many EAP conversations at once (2)") {
		t.Fatalf("third session: %v", err)
	}
	a.Close()
	waitFor(t, "the session closed in the plugin", func() bool { return m.Closed.Load() == 1 })
	start(t, c, serverReq).Close()
}

func TestEAPStartPanicFreesSlot(t *testing.T) {
	m := &EAPMock{StartEAPFn: func(context.Context, *EAPRequest) (EAPSession, error) { panic("boom") }}
	c, _ := serveEAP(t, m, 1, 0)
	for range 2 {
		if _, err := c.StartEAP(context.Background(), serverReq); err == nil || !strings.Contains(err.Error(), "plugin panicked: boom") {
			t.Fatalf("StartEAP that panics: %v", err)
		}
	}
	m.StartEAPFn = nil
	start(t, c, serverReq).Close()
}

// waitFor polls cond; what it waits for is an event (a timer firing, a
// stream ending), not a speed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestEAPIdleSessionsExpire(t *testing.T) {
	m := &EAPMock{}
	c, srv := serveEAP(t, m, 0, 10*time.Millisecond)
	s := start(t, c, serverReq)
	defer s.Close()
	waitFor(t, "the idle session to be closed", func() bool { return m.Closed.Load() == 1 && srv.eapSessions() == 0 })
	if _, err := s.Step(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "idle") {
		t.Fatalf("Step of an expired session: %v", err)
	}
}

func TestEAPStreamEndClosesSessions(t *testing.T) {
	m := &EAPMock{}
	c, _ := serveEAP(t, m, 0, 0)
	for range 3 {
		start(t, c, serverReq)
	}
	c.Close()
	waitFor(t, "the sessions to be closed", func() bool { return m.Closed.Load() == 3 })
	if _, err := c.StartEAP(context.Background(), serverReq); !errors.Is(err, mux.ErrClosed) {
		t.Errorf("StartEAP on a closed client: %v", err)
	}
}

func TestEAPNotImplemented(t *testing.T) {
	c, _ := serveEAP(t, &Mock{InfoValue: base.Info{Name: "psk-only", Kind: base.KindAuth}}, 0, 0)
	_, err := c.StartEAP(context.Background(), serverReq)
	if !errors.Is(err, ErrNoEAP) || !strings.Contains(err.Error(), `plugin "psk-only" does not do EAP`) {
		t.Fatalf("StartEAP on a plugin without EAP: %v", err)
	}
}

// oldServer answers like a plugin built before EAP: every operation it
// does not know gets "unknown auth operation".
type oldServer struct{ pb.UnimplementedAuthServer }

func (oldServer) Stream(st grpc.BidiStreamingServer[pb.AuthCalls, pb.AuthReplies]) error {
	return mux.Serve(st, streamCodec, func(_ context.Context, c *pb.AuthCall) *pb.AuthReply {
		return &pb.AuthReply{Id: c.GetId(), Error: "unknown auth operation"}
	}, nil)
}

func TestEAPOldPlugin(t *testing.T) {
	c := serveAuth(t, &Mock{}, oldServer{})
	_, err := c.StartEAP(context.Background(), serverReq)
	if !errors.Is(err, ErrNoEAP) || !strings.Contains(err.Error(), "before EAP") {
		t.Fatalf("StartEAP on a plugin from before EAP: %v", err)
	}
}

func TestCheckEAPStep(t *testing.T) {
	for name, p := range map[string]*pb.EAPStep{
		"nil":              nil,
		"stalls":           {},
		"success not done": {Message: []byte{3, 1, 0, 4}, Success: true},
		"msk on failure":   {Done: true, Msk: []byte{1}},
		"huge message":     {Message: make([]byte, MaxEAPMessageLen+1)},
		"huge msk":         {Done: true, Success: true, Msk: make([]byte, MaxMSKLen+1)},
		"huge identity":    {Done: true, Identity: make([]byte, MaxEAPIdentityLen+1)},
	} {
		if _, err := checkEAPStep(p); !errors.Is(err, ErrInvalidResult) {
			t.Errorf("%s: err = %v, want ErrInvalidResult", name, err)
		}
	}
	msk := bytes.Repeat([]byte{7}, 64)
	st, err := checkEAPStep(&pb.EAPStep{Done: true, Success: true, Msk: msk, Reason: strings.Repeat("x", 2*MaxErrorLen)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(st.MSK, bytes.Repeat([]byte{7}, 64)) || !bytes.Equal(msk, make([]byte, 64)) {
		t.Errorf("MSK not copied out and the message's copy zeroed: %x, %x", st.MSK, msk)
	}
	if len(st.Reason) > MaxErrorLen+3 {
		t.Errorf("reason of %d bytes not cut", len(st.Reason))
	}
}

// blockingSession's Step waits for release.
type blockingSession struct {
	entered, release chan struct{}
	closed           bool
}

func (b *blockingSession) Step(context.Context, []byte) (*EAPStep, error) {
	b.entered <- struct{}{}
	<-b.release
	return &EAPStep{Message: []byte{1, 1, 0, 5, 1}}, nil
}

func (b *blockingSession) Close() { b.closed = true }

// TestEAPIdleSparesRunningStep: the idle timer firing while a step is
// under way (a slow RADIUS server) does not close the session.
func TestEAPIdleSparesRunningStep(t *testing.T) {
	bs := &blockingSession{entered: make(chan struct{}), release: make(chan struct{})}
	tbl := newEAPTable(&EAPMock{StartEAPFn: func(context.Context, *EAPRequest) (EAPSession, error) { return bs, nil }}, 0, time.Hour)
	id, err := tbl.start(context.Background(), &pb.EAPRequest{Server: true})
	if err != nil {
		t.Fatal(err)
	}
	e := tbl.sessions[id]
	done := make(chan error)
	go func() {
		_, err := tbl.step(context.Background(), id, nil)
		done <- err
	}()
	<-bs.entered
	tbl.expire(id, e) // as if the timer fired now
	close(bs.release)
	if err := <-done; err != nil {
		t.Fatalf("step during expiry: %v", err)
	}
	if tbl.count() != 1 || bs.closed {
		t.Fatal("the session was closed during its step")
	}
	tbl.expire(id, e) // idle again: now it goes
	if tbl.count() != 0 || !bs.closed {
		t.Fatal("the idle session was not closed")
	}
	if _, err := tbl.step(context.Background(), id, nil); err == nil || !strings.Contains(err.Error(), "unknown") {
		t.Fatalf("step after expiry: %v", err)
	}
}
