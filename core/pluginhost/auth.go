package pluginhost

import (
	"context"
	"time"

	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/sdk/auth"
	"github.com/veil-ipsec/veil/sdk/base"
)

// authenticator adapts an auth plugin to provider.Authenticator.
type authenticator struct {
	inst *instance
}

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
