package auth

import (
	"context"
	"errors"

	"github.com/veil-ipsec/veil/sdk/base"
)

// Mock is an Authenticator whose behaviour is set by closures; nil closures
// give defaults (Make: method 2 with 32 zero bytes; Verify: accept).
// For tests of hosts and harnesses.
type Mock struct {
	InfoValue   base.Info
	Schema      base.Schema
	ConfigureFn func(ctx context.Context, configJSON []byte) error
	HealthFn    func(ctx context.Context) error
	MakeFn      func(ctx context.Context, req *Request) (*Result, error)
	VerifyFn    func(ctx context.Context, req *Request) error
}

var _ Authenticator = (*Mock)(nil)

func (m *Mock) Info() base.Info {
	if m.InfoValue == (base.Info{}) {
		return base.Info{Name: "mock", Kind: base.KindAuth, Version: "0"}
	}
	return m.InfoValue
}

func (m *Mock) ConfigSchema() base.Schema { return m.Schema }

func (m *Mock) Configure(ctx context.Context, configJSON []byte) error {
	if m.ConfigureFn != nil {
		return m.ConfigureFn(ctx, configJSON)
	}
	return nil
}

func (m *Mock) Health(ctx context.Context) error {
	if m.HealthFn != nil {
		return m.HealthFn(ctx)
	}
	return nil
}

func (m *Mock) Make(ctx context.Context, req *Request) (*Result, error) {
	if m.MakeFn != nil {
		return m.MakeFn(ctx, req)
	}
	return &Result{Method: 2, Data: make([]byte, 32)}, nil
}

func (m *Mock) Verify(ctx context.Context, req *Request) error {
	if m.VerifyFn != nil {
		return m.VerifyFn(ctx, req)
	}
	if req.Method == 0 {
		return errors.New("no AUTH method")
	}
	return nil
}
