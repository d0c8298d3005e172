package adapt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"sync"

	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/sdk/base"
)

// Opener builds a dataplane from the plugin's JSON configuration.
type Opener func(ctx context.Context, configJSON []byte) (provider.Dataplane, error)

// Lazy is a bundled dataplane plugin that is built when the host configures
// it (its options come from the plugin block). Wrap it with Dataplane to
// serve it; Close it when serving ends.
func Lazy(info base.Info, schema base.Schema, open Opener) LazyImpl {
	return &lazy{info: info, schema: schema, open: open}
}

// LazyImpl is an Impl that can be closed.
type LazyImpl interface {
	Impl
	io.Closer
}

type lazy struct {
	info   base.Info
	schema base.Schema
	open   Opener

	mu     sync.Mutex
	dp     provider.Dataplane
	config []byte // what dp was opened with
}

var errNotConfigured = errors.New("dataplane is not configured yet")

func (l *lazy) Info() base.Info           { return l.info }
func (l *lazy) ConfigSchema() base.Schema { return l.schema }
func (l *lazy) Health(context.Context) error {
	if l.get() == nil {
		return errNotConfigured
	}
	return nil
}

// Configure opens the dataplane with the first valid configuration. The
// host sends the configuration again after a restart of the daemon's other
// plugins; the same configuration then keeps the open dataplane (reopening
// would drop installed SAs), a different one is refused.
func (l *lazy) Configure(ctx context.Context, configJSON []byte) error {
	if len(configJSON) > 0 && !json.Valid(configJSON) {
		return errors.New("configuration is not JSON")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dp != nil {
		if !bytes.Equal(configJSON, l.config) {
			return errors.New("dataplane options cannot change while it runs; restart veild to apply them")
		}
		return nil
	}
	dp, err := l.open(ctx, configJSON)
	if err != nil {
		return err
	}
	l.dp, l.config = dp, bytes.Clone(configJSON)
	return nil
}

func (l *lazy) get() provider.Dataplane {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dp
}

func (l *lazy) AllocateSPI(ctx context.Context, src, dst netip.Addr) (uint32, error) {
	dp := l.get()
	if dp == nil {
		return 0, errNotConfigured
	}
	return dp.AllocateSPI(ctx, src, dst)
}

func (l *lazy) InstallSA(ctx context.Context, sa *provider.ChildSA) error {
	dp := l.get()
	if dp == nil {
		return errNotConfigured
	}
	return dp.InstallSA(ctx, sa)
}

func (l *lazy) DeleteSA(ctx context.Context, k provider.SAKey) error {
	dp := l.get()
	if dp == nil {
		return errNotConfigured
	}
	return dp.DeleteSA(ctx, k)
}

func (l *lazy) InstallPolicy(ctx context.Context, p *provider.Policy) error {
	dp := l.get()
	if dp == nil {
		return errNotConfigured
	}
	return dp.InstallPolicy(ctx, p)
}

func (l *lazy) DeletePolicy(ctx context.Context, p *provider.Policy) error {
	dp := l.get()
	if dp == nil {
		return errNotConfigured
	}
	return dp.DeletePolicy(ctx, p)
}

func (l *lazy) Counters(ctx context.Context, keys []provider.SAKey) ([]provider.Counters, error) {
	dp := l.get()
	if dp == nil {
		return nil, errNotConfigured
	}
	return dp.Counters(ctx, keys)
}

func (l *lazy) Events(ctx context.Context) (<-chan provider.Event, error) {
	dp := l.get()
	if dp == nil {
		return nil, errNotConfigured
	}
	return dp.Events(ctx)
}

// Close closes the dataplane, if it was opened and can be closed, so what
// it installed (TUN devices, routing rules, XFRM state) goes with it.
func (l *lazy) Close() error {
	l.mu.Lock()
	dp := l.dp
	l.dp = nil
	l.mu.Unlock()
	if c, ok := dp.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
