package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/sdk/auth"
	"github.com/veil-ipsec/veil/sdk/base"
)

// authenticator adapts an auth plugin to provider.Authenticator and
// provider.EAPAuthenticator (whether the plugin runs EAP is known only when
// it answers StartEAP).
type authenticator struct {
	inst *instance
}

var _ provider.EAPAuthenticator = (*authenticator)(nil)

func (a *authenticator) client() (*auth.Client, error) {
	kc, err := a.inst.current()
	if err != nil {
		return nil, err
	}
	return kc.(*auth.Client), nil
}

func (a *authenticator) Make(ctx context.Context, req *provider.AuthRequest) (*provider.AuthResult, error) {
	start := time.Now()
	c, err := a.client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := a.inst.h.callContext(ctx)
	defer cancel()
	res, err := c.Make(ctx, authRequest(req))
	a.inst.h.observe(base.KindAuth, a.inst.name, "make", start, err)
	if err != nil {
		return nil, callError(base.KindAuth, a.inst.name, "make AUTH", start, err)
	}
	return &provider.AuthResult{Method: res.Method, Data: res.Data, Certs: res.Certs}, nil
}

func (a *authenticator) Verify(ctx context.Context, req *provider.AuthRequest) error {
	start := time.Now()
	c, err := a.client()
	if err != nil {
		return err
	}
	ctx, cancel := a.inst.h.callContext(ctx)
	defer cancel()
	err = c.Verify(ctx, authRequest(req))
	a.inst.h.observe(base.KindAuth, a.inst.name, "verify", start, err)
	if err != nil {
		return callError(base.KindAuth, a.inst.name, "verify AUTH", start, err)
	}
	return nil
}

func authRequest(r *provider.AuthRequest) *auth.Request {
	return &auth.Request{
		Connection:      r.Connection,
		Role:            auth.Role(r.Role),
		LocalID:         auth.Identity{Type: r.LocalID.Type, Data: r.LocalID.Data},
		RemoteID:        auth.Identity{Type: r.RemoteID.Type, Data: r.RemoteID.Data},
		PRF:             r.PRF,
		SignedOctets:    r.SignedOctets,
		Method:          r.Method,
		Data:            r.Data,
		Certs:           r.Certs,
		SignatureHashes: r.SignatureHashes,
	}
}

// StartEAP begins a conversation in the plugin's running process. The
// session stays with that process: if it dies, the next Step fails (the
// new process does not know the conversation) and the engine starts over
// with a new IKE_AUTH; new sessions go to the new process.
func (a *authenticator) StartEAP(ctx context.Context, req *provider.EAPRequest) (provider.EAPSession, error) {
	start := time.Now()
	c, err := a.client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := a.inst.h.callContext(ctx)
	defer cancel()
	s, err := c.StartEAP(ctx, &auth.EAPRequest{
		Connection: req.Connection,
		Method:     req.Method,
		Server:     req.Server,
		LocalID:    auth.Identity{Type: req.LocalID.Type, Data: req.LocalID.Data},
		RemoteID:   auth.Identity{Type: req.RemoteID.Type, Data: req.RemoteID.Data},
	})
	a.inst.h.observe(base.KindAuth, a.inst.name, "eap-start", start, err)
	if errors.Is(err, auth.ErrNoEAP) {
		return nil, fmt.Errorf("auth plugin %q does not do EAP: %w", a.inst.name, err)
	}
	if err != nil {
		return nil, callError(base.KindAuth, a.inst.name, "start EAP", start, err)
	}
	return &eapSession{a: a, c: c, s: s}, nil
}

// eapSession is a conversation bound to one plugin process.
type eapSession struct {
	a *authenticator
	c *auth.Client // the process the conversation lives in
	s auth.EAPSession
}

// gone says whether the conversation's process has ended or been replaced.
func (e *eapSession) gone() bool {
	select {
	case <-e.c.Done():
		return true
	default:
	}
	cur, err := e.a.inst.current()
	return err == nil && cur != kindClient(e.c)
}

func (e *eapSession) Step(ctx context.Context, in []byte) (*provider.EAPStep, error) {
	name := e.a.inst.name
	if e.gone() {
		return nil, fmt.Errorf("auth plugin %q exited or restarted during the EAP conversation, which was lost with its process", name)
	}
	start := time.Now()
	ctx, cancel := e.a.inst.h.callContext(ctx)
	defer cancel()
	st, err := e.s.Step(ctx, in)
	e.a.inst.h.observe(base.KindAuth, name, "eap-step", start, err)
	if err != nil {
		if e.gone() {
			return nil, fmt.Errorf("auth plugin %q exited or restarted during the EAP conversation, which was lost with its process: %w", name, err)
		}
		return nil, callError(base.KindAuth, name, "EAP step", start, err)
	}
	out := &provider.EAPStep{Message: st.Message, Done: st.Done, Success: st.Success,
		Identity: st.Identity, Reason: st.Reason}
	if len(st.MSK) > 0 {
		out.MSK = append([]byte(nil), st.MSK...)
		clear(st.MSK)
	}
	return out, nil
}

func (e *eapSession) Close() { e.s.Close() }
