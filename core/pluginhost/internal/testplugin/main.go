// Command testplugin is a plugin process for core/pluginhost's tests, built
// by the tests with go build. VEIL_TESTPLUGIN picks what it does:
//
//	dataplane    sdk/dataplane's Mock; config {"state_file": path} makes it
//	             write its SAs and policies there after every change; an SA
//	             with req id 999 makes it emit a soft expire for that SA;
//	             subscribing to events first delivers malformed events, then
//	             one valid address change.
//	             A policy with req id 666 is refused.
//	dataplane-v1 the same, serving only dataplane protocol version 1 (a
//	             plugin built with an SDK before version 2).
//	dataplane-v3 a dataplane plugin speaking only protocol version 3.
//	bad-version  an auth plugin speaking plugin protocol version 2.
//	garbage      an auth plugin whose Make answers break the rules
//	             (chosen by the request's connection name) and whose
//	             Verify panics for connection "panic"; connection "crash"
//	             crashes the process with a panic outside any call.
//	garbage-keystore  a keystore whose secrets are too big and whose
//	             signatures are empty.
//	garbage-dataplane  a dataplane whose AllocateSPI answers a reserved
//	             SPI for source 192.0.2.7 and always the same SPI
//	             otherwise, whose Counters answers fewer entries than asked
//	             for and whose InstallChild fails with a 100 kB error.
//	hang         an auth plugin whose Make and Verify never answer.
//	hang-health  an auth plugin whose health check never answers.
//	echo         an auth plugin that accepts everything (benchmarks).
package main

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"

	"github.com/hashicorp/go-plugin"

	"github.com/veil-ipsec/veil/sdk/auth"
	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/dataplane"
	"github.com/veil-ipsec/veil/sdk/keystore"
)

func main() {
	switch mode := os.Getenv("VEIL_TESTPLUGIN"); mode {
	case "dataplane":
		dataplane.Serve(newDataplane())
	case "dataplane-v1", "dataplane-v3":
		v := map[string]int{"dataplane-v1": 1, "dataplane-v3": 3}[mode]
		hs := base.Handshake
		hs.ProtocolVersion = uint(v)
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig:  hs,
			VersionedPlugins: map[int]plugin.PluginSet{v: dataplane.PluginSetVersion(newDataplane(), v)},
			GRPCServer:       plugin.DefaultGRPCServer,
		})
	case "bad-version":
		hs := base.Handshake
		hs.ProtocolVersion = 2
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig:  hs,
			VersionedPlugins: map[int]plugin.PluginSet{2: auth.PluginSet(&auth.Mock{})},
			GRPCServer:       plugin.DefaultGRPCServer,
		})
	case "garbage":
		auth.Serve(&auth.Mock{MakeFn: garbageMake, VerifyFn: func(_ context.Context, r *auth.Request) error {
			if r.Connection == "panic" {
				var p *auth.Request
				_ = p.Connection // nil dereference: a real panic in plugin code
			}
			return nil
		}})
	case "garbage-keystore":
		keystore.Serve(&garbageStore{})
	case "garbage-dataplane":
		dataplane.Serve(&garbageDataplane{Mock: &dataplane.Mock{}})
	case "hang-health":
		auth.Serve(&auth.Mock{HealthFn: func(context.Context) error { select {} }})
	case "hang":
		auth.Serve(&auth.Mock{
			MakeFn:   func(context.Context, *auth.Request) (*auth.Result, error) { select {} },
			VerifyFn: func(context.Context, *auth.Request) error { select {} },
		})
	case "echo":
		auth.Serve(&auth.Mock{})
	default:
		fmt.Fprintf(os.Stderr, "testplugin: unknown VEIL_TESTPLUGIN %q\n", mode)
		os.Exit(2)
	}
}

func garbageMake(_ context.Context, r *auth.Request) (*auth.Result, error) {
	switch r.Connection {
	case "nil":
		return nil, nil
	case "method-0":
		return &auth.Result{Method: 0, Data: []byte{1}}, nil
	case "empty":
		return &auth.Result{Method: 2}, nil
	case "oversized":
		return &auth.Result{Method: 2, Data: make([]byte, auth.MaxDataLen+1)}, nil
	case "many-certs":
		return &auth.Result{Method: 1, Data: []byte{1}, Certs: make([][]byte, auth.MaxCerts+1)}, nil
	case "empty-cert":
		return &auth.Result{Method: 1, Data: []byte{1}, Certs: [][]byte{{}}}, nil
	case "long-error":
		return nil, errors.New(string(make([]byte, 100_000)))
	case "panic":
		panic("garbage plugin panics in Make")
	case "crash":
		go func() { panic("testplugin crashed on purpose") }()
		select {}
	}
	return &auth.Result{Method: 2, Data: []byte("fine")}, nil
}

// State is what the dataplane test plugin writes to its state file.
type State struct {
	SAs      []string // "dst/spi"
	Policies int
}

type testDataplane struct {
	*dataplane.Mock
	mu        sync.Mutex
	stateFile string
}

func newDataplane() *testDataplane {
	d := &testDataplane{}
	d.Mock = &dataplane.Mock{
		InfoValue: base.Info{Name: "test", Kind: base.KindDataplane, Version: "1"},
		ConfigureFn: func(_ context.Context, js []byte) error {
			var cfg struct {
				StateFile string `json:"state_file"`
			}
			if err := json.Unmarshal(js, &cfg); err != nil {
				return err
			}
			d.mu.Lock()
			d.stateFile = cfg.StateFile
			d.mu.Unlock()
			d.writeState()
			return nil
		},
		OnChange: func(*dataplane.Mock) { d.writeState() },
	}
	return d
}

func (d *testDataplane) ConfigSchema() base.Schema {
	return base.Schema{Attributes: []base.Attribute{{Name: "state_file", Type: "string", Description: "where to write the state"}}}
}

func (d *testDataplane) writeState() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stateFile == "" {
		return
	}
	var st State
	for k := range d.SAs() {
		st.SAs = append(st.SAs, fmt.Sprintf("%s/%d", k.Dst, k.SPI))
	}
	st.Policies = len(d.Policies())
	b, _ := json.Marshal(st)
	tmp := d.stateFile + ".tmp"
	if os.WriteFile(tmp, b, 0o600) == nil {
		_ = os.Rename(tmp, d.stateFile)
	}
}

func (d *testDataplane) InstallSA(ctx context.Context, sa *dataplane.ChildSA) error {
	if err := d.Mock.InstallSA(ctx, sa); err != nil {
		return err
	}
	if sa.ReqID == 999 {
		d.Emit(dataplane.Event{Kind: dataplane.SoftExpire, ReqID: 999, SA: dataplane.SAKey{Dst: sa.Dst, SPI: sa.SPI}})
	}
	return nil
}

func (d *testDataplane) InstallPolicy(ctx context.Context, p *dataplane.Policy) error {
	if p.ReqID == 666 {
		return errors.New("policy refused by the test plugin")
	}
	return d.Mock.InstallPolicy(ctx, p)
}

func (d *testDataplane) Events(ctx context.Context) (<-chan dataplane.Event, error) {
	ch, err := d.Mock.Events(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan dataplane.Event, dataplane.EventBuffer)
	// Malformed first: unknown kind, acquire without policy, expire
	// without SA; then one valid event.
	out <- dataplane.Event{Kind: 99}
	out <- dataplane.Event{Kind: dataplane.Acquire}
	out <- dataplane.Event{Kind: dataplane.HardExpire}
	out <- dataplane.Event{Kind: dataplane.AddressChange, Addr: netip.MustParseAddr("192.0.2.77"), AddrUp: true}
	go func() {
		defer close(out)
		for e := range ch {
			out <- e
		}
	}()
	return out, nil
}

// garbageStore breaks the keystore rules the host enforces.
type garbageStore struct{ keystore.Mock }

func (*garbageStore) Secret(context.Context, string) ([]byte, error) {
	return make([]byte, keystore.MaxSecretLen+1), nil
}

func (*garbageStore) Public(context.Context, string) (crypto.PublicKey, error) {
	return ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)), nil
}

func (*garbageStore) Sign(context.Context, string, []byte, keystore.SignOptions) ([]byte, error) {
	return nil, nil
}

// garbageDataplane breaks the dataplane rules the host enforces.
type garbageDataplane struct{ *dataplane.Mock }

func (*garbageDataplane) AllocateSPI(_ context.Context, src, _ netip.Addr) (uint32, error) {
	if src == netip.MustParseAddr("192.0.2.7") {
		return 7, nil // reserved (RFC 4303 §2.1)
	}
	return 0x1234, nil
}

func (*garbageDataplane) Counters(_ context.Context, keys []dataplane.SAKey) ([]dataplane.Counters, error) {
	return make([]dataplane.Counters, len(keys)/2), nil
}

func (*garbageDataplane) InstallChild(context.Context, []*dataplane.ChildSA, []*dataplane.Policy) error {
	return errors.New(string(make([]byte, 100_000)))
}
