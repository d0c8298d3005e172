package auth

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	pb "github.com/veil-ipsec/veil/sdk/proto"
)

// EAP travels on the same multiplexed stream as Make and Verify: a
// conversation is a handful of calls per IKE_AUTH (four for MSCHAPv2, a
// dozen for EAP-TLS), and the stream already brings per-call deadlines,
// panic recovery and the quickest sign of a dead plugin.

// ErrNoEAP is returned by StartEAP when the plugin does not implement
// EAPAuthenticator (or was built with an SDK from before EAP).
var ErrNoEAP = errors.New("plugin does not do EAP")

// noEAPError keeps the plugin's own words and matches ErrNoEAP.
type noEAPError struct{ msg string }

func (e *noEAPError) Error() string        { return e.msg }
func (e *noEAPError) Is(target error) bool { return target == ErrNoEAP }

// StartEAP begins a conversation in the plugin. The session's Step and
// Close are calls on this client's stream: if the plugin process goes
// away, they fail (a restarted plugin does not know the conversation).
func (c *Client) StartEAP(ctx context.Context, req *EAPRequest) (EAPSession, error) {
	r, err := c.stream.Do(ctx, func(id uint64, timeout time.Duration) *pb.AuthCall {
		return &pb.AuthCall{Id: id, TimeoutMs: millis(timeout), Op: &pb.AuthCall_EapStart{EapStart: eapRequestToProto(req)}}
	})
	if err != nil {
		return nil, err
	}
	switch {
	case r.GetUnsupported():
		return nil, &noEAPError{msg: cut(r.GetError())}
	case r.GetError() == errUnknownOp:
		return nil, &noEAPError{msg: "plugin does not do EAP (built with an SDK from before EAP)"}
	case r.GetError() != "":
		return nil, remoteError(r.GetError())
	case r.GetEapSession() == 0:
		return nil, fmt.Errorf("%w: no EAP session", ErrInvalidResult)
	}
	return &clientSession{c: c, id: r.GetEapSession()}, nil
}

// clientSession is the host's handle on a conversation in the plugin.
type clientSession struct {
	c      *Client
	id     uint64
	closed atomic.Bool
}

func (s *clientSession) Step(ctx context.Context, in []byte) (*EAPStep, error) {
	if s.closed.Load() {
		return nil, errors.New("EAP session is closed")
	}
	if len(in) > MaxEAPMessageLen {
		return nil, fmt.Errorf("EAP message of %d bytes (limit %d)", len(in), MaxEAPMessageLen)
	}
	r, err := s.c.stream.Do(ctx, func(id uint64, timeout time.Duration) *pb.AuthCall {
		return &pb.AuthCall{Id: id, TimeoutMs: millis(timeout),
			Op: &pb.AuthCall_EapStep{EapStep: &pb.EAPStepCall{Session: s.id, Message: in}}}
	})
	if err != nil {
		return nil, err
	}
	if r.GetError() != "" {
		return nil, remoteError(r.GetError())
	}
	return checkEAPStep(r.GetEapStep())
}

// Close tells the plugin to drop the conversation and returns at once:
// the engine may close sessions while holding locks, and a hung plugin must
// not stall it. The call is given EAPCloseTimeout; a lost Close is cleaned
// up by the plugin's idle timeout.
func (s *clientSession) Close() {
	if s.closed.Swap(true) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), EAPCloseTimeout)
		defer cancel()
		_, _ = s.c.stream.Do(ctx, func(id uint64, timeout time.Duration) *pb.AuthCall {
			return &pb.AuthCall{Id: id, TimeoutMs: millis(timeout), Op: &pb.AuthCall_EapClose{EapClose: s.id}}
		})
	}()
}

// checkEAPStep turns the plugin's step into an EAPStep, copying the MSK
// out of the received message and zeroing the message's copy.
func checkEAPStep(p *pb.EAPStep) (*EAPStep, error) {
	msk := p.GetMsk()
	defer clear(msk)
	switch {
	case p == nil:
		return nil, fmt.Errorf("%w: no EAP step", ErrInvalidResult)
	case len(p.GetMessage()) > MaxEAPMessageLen:
		return nil, fmt.Errorf("%w: EAP message of %d bytes (limit %d)", ErrInvalidResult, len(p.GetMessage()), MaxEAPMessageLen)
	case len(msk) > MaxMSKLen:
		return nil, fmt.Errorf("%w: MSK of %d bytes (limit %d)", ErrInvalidResult, len(msk), MaxMSKLen)
	case len(p.GetIdentity()) > MaxEAPIdentityLen:
		return nil, fmt.Errorf("%w: EAP identity of %d bytes (limit %d)", ErrInvalidResult, len(p.GetIdentity()), MaxEAPIdentityLen)
	case p.GetSuccess() && !p.GetDone():
		return nil, fmt.Errorf("%w: EAP step says success but not done", ErrInvalidResult)
	case len(msk) > 0 && !p.GetSuccess():
		return nil, fmt.Errorf("%w: EAP step has an MSK but no success", ErrInvalidResult)
	case !p.GetDone() && len(p.GetMessage()) == 0:
		// The conversation would stall: the peer waits for our packet.
		return nil, fmt.Errorf("%w: EAP step neither ends the conversation nor has a packet to send", ErrInvalidResult)
	}
	st := &EAPStep{
		Message:  p.GetMessage(),
		Done:     p.GetDone(),
		Success:  p.GetSuccess(),
		Identity: p.GetIdentity(),
		Reason:   cut(p.GetReason()),
	}
	if len(msk) > 0 {
		st.MSK = append([]byte(nil), msk...)
	}
	return st, nil
}

// cut bounds a plugin's text as remoteError does.
func cut(msg string) string {
	if len(msg) > MaxErrorLen {
		return msg[:MaxErrorLen] + "..."
	}
	return msg
}
