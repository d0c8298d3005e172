package auth

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	pb "github.com/veil-ipsec/veil/sdk/proto"
)

// eapTable is the plugin's side of the EAP conversations started on one
// call stream. Sessions live until the host closes them, they sit idle for
// longer than idle, or the stream ends: a host that forgets a session (or
// dies) costs the plugin nothing for long.
type eapTable struct {
	impl Authenticator
	max  int
	idle time.Duration

	mu       sync.Mutex
	sessions map[uint64]*eapEntry
	starting int // StartEAP calls under way, counted against max
}

type eapEntry struct {
	timer *time.Timer
	busy  int // steps under way (guarded by the table's mu): no idle expiry meanwhile

	mu     sync.Mutex // one step at a time; Close waits for a running step
	s      EAPSession
	closed bool
}

func newEAPTable(impl Authenticator, max int, idle time.Duration) *eapTable {
	if max <= 0 {
		max = MaxEAPSessions
	}
	if idle <= 0 {
		idle = EAPIdleTimeout
	}
	return &eapTable{impl: impl, max: max, idle: idle, sessions: map[uint64]*eapEntry{}}
}

// errNoEAP is the text a plugin without EAP answers with.
func (t *eapTable) errNoEAP() string {
	return fmt.Sprintf("plugin %q does not do EAP (it does not implement auth.EAPAuthenticator)", t.impl.Info().Name)
}

func (t *eapTable) start(ctx context.Context, r *pb.EAPRequest) (uint64, error) {
	ea, ok := t.impl.(EAPAuthenticator)
	if !ok {
		return 0, errUnsupported
	}
	t.mu.Lock()
	if len(t.sessions)+t.starting >= t.max {
		t.mu.Unlock()
		return 0, fmt.Errorf("too many EAP conversations at once (%d): refusing a new one until some end or go idle for %v", t.max, t.idle)
	}
	t.starting++
	t.mu.Unlock()

	s, err := startSafely(ctx, ea, eapRequestFromProto(r))
	t.mu.Lock()
	defer t.mu.Unlock()
	t.starting--
	if err != nil {
		return 0, err
	}
	if s == nil {
		return 0, errors.New("plugin returned no EAP session")
	}
	id := t.newID()
	e := &eapEntry{s: s}
	e.timer = time.AfterFunc(t.idle, func() { t.expire(id, e) })
	t.sessions[id] = e
	return id, nil
}

// startSafely calls StartEAP; a panic there would otherwise leave the
// slot reserved (the stream turns other panics into replies).
func startSafely(ctx context.Context, ea EAPAuthenticator, req *EAPRequest) (s EAPSession, err error) {
	defer func() {
		if p := recover(); p != nil {
			s, err = nil, fmt.Errorf("plugin panicked: %v", p)
		}
	}()
	return ea.StartEAP(ctx, req)
}

// newID picks a random unused id: an id from a plugin instance that has
// since restarted must not name another conversation (called with mu).
func (t *eapTable) newID() uint64 {
	var b [8]byte
	for {
		rand.Read(b[:])
		id := binary.BigEndian.Uint64(b[:])
		if _, taken := t.sessions[id]; id != 0 && !taken {
			return id
		}
	}
}

func (t *eapTable) unknown(id uint64) error {
	return fmt.Errorf("EAP session %d is unknown: it was closed, sat idle for more than %v, or the plugin restarted", id, t.idle)
}

func (t *eapTable) step(ctx context.Context, id uint64, in []byte) (*EAPStep, error) {
	t.mu.Lock()
	e, ok := t.sessions[id]
	if ok {
		e.busy++
		e.timer.Stop()
	}
	t.mu.Unlock()
	if !ok {
		return nil, t.unknown(id)
	}
	defer func() {
		t.mu.Lock()
		e.busy--
		if e.busy == 0 && t.sessions[id] == e {
			e.timer.Reset(t.idle)
		}
		t.mu.Unlock()
	}()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, t.unknown(id)
	}
	if len(in) == 0 {
		in = nil // proto3 does not tell nil from empty; a server's first step is nil
	}
	st, err := e.s.Step(ctx, in)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, errors.New("plugin returned no EAP step")
	}
	return st, nil
}

func (t *eapTable) close(id uint64) error {
	t.mu.Lock()
	e, ok := t.sessions[id]
	delete(t.sessions, id)
	t.mu.Unlock()
	if !ok {
		return t.unknown(id)
	}
	e.close()
	return nil
}

// expire closes an idle session unless a step has begun since the timer
// fired.
func (t *eapTable) expire(id uint64, e *eapEntry) {
	t.mu.Lock()
	if t.sessions[id] != e || e.busy > 0 {
		t.mu.Unlock()
		return
	}
	delete(t.sessions, id)
	t.mu.Unlock()
	e.close()
}

// closeAll ends every session (the stream has ended).
func (t *eapTable) closeAll() {
	t.mu.Lock()
	all := t.sessions
	t.sessions = map[uint64]*eapEntry{}
	t.mu.Unlock()
	for _, e := range all {
		e.close()
	}
}

// count is the number of open sessions (tests).
func (t *eapTable) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.sessions)
}

func (e *eapEntry) close() {
	e.timer.Stop()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	e.closed = true
	defer func() { _ = recover() }() // a panicking Close must not take the plugin down
	e.s.Close()
}

var errUnsupported = errors.New("unsupported")

func eapRequestToProto(r *EAPRequest) *pb.EAPRequest {
	return &pb.EAPRequest{
		Connection: r.Connection,
		Method:     r.Method,
		Server:     r.Server,
		LocalId:    &pb.Identity{Type: uint32(r.LocalID.Type), Data: r.LocalID.Data},
		RemoteId:   &pb.Identity{Type: uint32(r.RemoteID.Type), Data: r.RemoteID.Data},
	}
}

func eapRequestFromProto(r *pb.EAPRequest) *EAPRequest {
	return &EAPRequest{
		Connection: r.GetConnection(),
		Method:     r.GetMethod(),
		Server:     r.GetServer(),
		LocalID:    Identity{Type: uint8(r.GetLocalId().GetType()), Data: r.GetLocalId().GetData()},
		RemoteID:   Identity{Type: uint8(r.GetRemoteId().GetType()), Data: r.GetRemoteId().GetData()},
	}
}
