// Package pluginhost runs Veil's plugins as separate processes (go-plugin
// over gRPC with AutoMTLS) and adapts them to the engine's interfaces in
// core/provider. A plugin that crashes, hangs or lies never takes the daemon
// down: each plugin has a supervisor that health-checks it and restarts it
// with backoff; while it is down, calls fail fast with an error that says so;
// calls carry deadlines; replies are checked before the engine sees them.
//
// Bundled plugins run by re-executing the daemon ("veild plugin <kind>
// <name>", see ServeBuiltin); third-party plugins are executables named in
// the configuration.
//
// Plugin sockets live in a directory created with mode 0700 (os.MkdirTemp)
// that the host passes to every plugin (PLUGIN_UNIX_SOCKET_DIR), so other
// users cannot reach them; AutoMTLS additionally authenticates both ends.
package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/keystore"
)

// Options tune a Host; zero values take the defaults in brackets.
type Options struct {
	// Executable is re-executed for bundled plugins [os.Executable()].
	Executable string
	Logger     *slog.Logger // [slog.Default()]
	// CallTimeout bounds a call whose context has no deadline [5s].
	CallTimeout time.Duration
	// HealthInterval between health checks [5s]; HealthTimeout for one
	// check [2s]; HealthFailures in a row before a restart [2].
	HealthInterval time.Duration
	HealthTimeout  time.Duration
	HealthFailures int
	// MinBackoff and MaxBackoff bound the delay before a restart
	// [100ms, 30s]; it doubles per failed start and resets once a plugin
	// has stayed up for StableAfter [1m].
	MinBackoff, MaxBackoff time.Duration
	StableAfter            time.Duration
	// StartTimeout for a plugin's handshake [10s].
	StartTimeout time.Duration
	// OnCall, if set, is told about every call to a plugin (the daemon
	// feeds its latency histogram from it).
	OnCall func(kind, name, method string, d time.Duration, err error)
	// LocalKeystores, by name, are bundled keystores whose signatures the
	// host makes in its own process. The file keystore's key files are
	// readable by veild anyway, so another process isolates nothing there,
	// while its round trip would cost a responder more CPU than the
	// signature itself. Each is configured along with its plugin; Secret
	// and everything else still go to the plugin.
	LocalKeystores map[string]keystore.Store
	// PluginProcs is the GOMAXPROCS of plugin processes [a quarter of the
	// CPUs, at least 1]. A plugin is a helper: a Go runtime with as many
	// Ps as the machine has spins up idle threads and steals work on every
	// stream message, which here costs more CPU than the message itself
	// (bench/plugin-rpc-budget.txt). GOMAXPROCS in veild's own environment
	// wins: go-plugin passes it on.
	PluginProcs int
}

func (o *Options) setDefaults() error {
	if o.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding the daemon executable for bundled plugins: %w", err)
		}
		o.Executable = exe
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	def(&o.CallTimeout, 5*time.Second)
	def(&o.HealthInterval, 5*time.Second)
	def(&o.HealthTimeout, 2*time.Second)
	def(&o.MinBackoff, 100*time.Millisecond)
	def(&o.MaxBackoff, 30*time.Second)
	def(&o.StableAfter, time.Minute)
	def(&o.StartTimeout, 10*time.Second)
	if o.HealthFailures <= 0 {
		o.HealthFailures = 2
	}
	if o.PluginProcs <= 0 {
		o.PluginProcs = max(1, runtime.NumCPU()/4)
	}
	return nil
}

// Host owns the plugin processes.
type Host struct {
	opts    Options
	sockDir string

	mu      sync.Mutex
	plugins map[string]*instance // by kind + "/" + name
	closed  bool
}

// New returns a Host; Close stops its plugins and removes the socket
// directory.
func New(opts Options) (*Host, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "veil-plugins-") // mode 0700
	if err != nil {
		return nil, fmt.Errorf("creating the plugin socket directory: %w", err)
	}
	return &Host{opts: opts, sockDir: dir, plugins: make(map[string]*instance)}, nil
}

// UnavailableError is returned at once for calls to a plugin that is not
// running (crashed and waiting for its restart, or failing to start).
type UnavailableError struct {
	Kind, Name string
	Reason     error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("%s plugin %q is unavailable (restarting): %v", e.Kind, e.Name, e.Reason)
}

func (e *UnavailableError) Unwrap() error { return e.Reason }

// Start launches the plugin kind/name: the bundled one when path is empty,
// else the executable at path. It returns once the plugin has answered its
// handshake and said who it is, or with an error (a protocol version
// mismatch names both versions). The plugin is supervised until Close.
func (h *Host) Start(ctx context.Context, kind, name, path string) error {
	switch kind {
	case base.KindAuth, base.KindKeystore, base.KindDataplane:
	default:
		return fmt.Errorf("unknown plugin kind %q (auth, keystore or dataplane)", kind)
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return errors.New("plugin host is closed")
	}
	if _, ok := h.plugins[kind+"/"+name]; ok {
		h.mu.Unlock()
		return fmt.Errorf("%s plugin %q started twice", kind, name)
	}
	inst := newInstance(h, kind, name, path)
	h.plugins[kind+"/"+name] = inst
	h.mu.Unlock()
	if kind == base.KindDataplane {
		inst.dataplane = newDataplane(inst)
	}
	if err := inst.startFirst(ctx); err != nil {
		h.mu.Lock()
		delete(h.plugins, kind+"/"+name)
		h.mu.Unlock()
		return err
	}
	return nil
}

func (h *Host) instance(kind, name string) (*instance, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	inst, ok := h.plugins[kind+"/"+name]
	if !ok {
		return nil, fmt.Errorf("no %s plugin %q is loaded", kind, name)
	}
	return inst, nil
}

// Schema returns the config schema plugin kind/name supplied, as an hcldec
// spec for config.(*Config).DecodePluginConfigs.
func (h *Host) Schema(kind, name string) (hcldec.Spec, error) {
	inst, err := h.instance(kind, name)
	if err != nil {
		return nil, err
	}
	spec, err := SpecFromSchema(inst.schema)
	if err != nil {
		return nil, fmt.Errorf("%s plugin %q supplied a bad config schema: %w", kind, name, err)
	}
	return spec, nil
}

// Configure hands plugin kind/name its decoded config (cty.NilVal or a null
// value: an empty object). The host keeps it and configures the plugin
// again after every restart.
func (h *Host) Configure(ctx context.Context, kind, name string, v cty.Value) error {
	inst, err := h.instance(kind, name)
	if err != nil {
		return err
	}
	js := []byte("{}")
	if v != cty.NilVal && !v.IsNull() {
		if js, err = ctyjson.Marshal(v, v.Type()); err != nil {
			return fmt.Errorf("encoding config of %s plugin %q: %w", kind, name, err)
		}
	}
	if err := inst.configure(ctx, js); err != nil {
		return err
	}
	if local := h.localKeystore(inst); local != nil {
		if err := local.Configure(ctx, js); err != nil {
			return fmt.Errorf("keystore %q (in process) rejected its config: %w", name, err)
		}
	}
	return nil
}

// localKeystore is the in-process copy of a bundled keystore, or nil.
func (h *Host) localKeystore(inst *instance) keystore.Store {
	if inst.kind != base.KindKeystore || inst.path != "" {
		return nil
	}
	return h.opts.LocalKeystores[inst.name]
}

// Authenticator returns the engine's view of auth plugin name.
func (h *Host) Authenticator(name string) (provider.Authenticator, error) {
	inst, err := h.instance(base.KindAuth, name)
	if err != nil {
		return nil, err
	}
	return &authenticator{inst: inst}, nil
}

// KeyStore returns the engine's view of keystore plugin name.
func (h *Host) KeyStore(name string) (provider.KeyStore, error) {
	inst, err := h.instance(base.KindKeystore, name)
	if err != nil {
		return nil, err
	}
	return &keyStore{inst: inst}, nil
}

// Dataplane returns the engine's view of dataplane plugin name; it also
// takes the engine's OnRestart hooks.
func (h *Host) Dataplane(name string) (*Dataplane, error) {
	inst, err := h.instance(base.KindDataplane, name)
	if err != nil {
		return nil, err
	}
	return inst.dataplane, nil
}

// Status describes one plugin for operators (veilctl plugins).
type Status struct {
	Kind, Name string
	Path       string // empty: bundled
	Version    string // what the plugin reports
	State      string // "running" or "down: <reason>"
	Restarts   int
	PID        int
}

// List returns the status of every plugin, sorted by kind and name.
func (h *Host) List() []Status {
	h.mu.Lock()
	insts := make([]*instance, 0, len(h.plugins))
	for _, i := range h.plugins {
		insts = append(insts, i)
	}
	h.mu.Unlock()
	out := make([]Status, 0, len(insts))
	for _, i := range insts {
		i.mu.Lock()
		st := Status{Kind: i.kind, Name: i.name, Path: i.path, Version: i.info.Version, Restarts: i.restarts, State: "running"}
		if i.client == nil {
			st.State = "down: " + i.down.Error()
		} else if i.proc != nil {
			st.PID = pid(i.proc)
		}
		i.mu.Unlock()
		out = append(out, st)
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Kind != out[b].Kind {
			return out[a].Kind < out[b].Kind
		}
		return out[a].Name < out[b].Name
	})
	return out
}

// Close stops every plugin and removes the socket directory.
func (h *Host) Close() error {
	h.mu.Lock()
	h.closed = true
	insts := make([]*instance, 0, len(h.plugins))
	for _, i := range h.plugins {
		insts = append(insts, i)
	}
	h.mu.Unlock()
	for _, i := range insts {
		i.stop()
	}
	return os.RemoveAll(h.sockDir)
}

// callContext gives ctx the host's call timeout when it has no deadline.
func (h *Host) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, h.opts.CallTimeout)
}

// observe reports a finished call to Options.OnCall.
func (h *Host) observe(kind, name, method string, start time.Time, err error) {
	if h.opts.OnCall != nil {
		h.opts.OnCall(kind, name, method, time.Since(start), err)
	}
}

// callError explains a failed call; a deadline says how long was waited.
func callError(kind, name, op string, start time.Time, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s plugin %q: %s: no answer within %v: %w", kind, name, op, time.Since(start).Round(time.Millisecond), err)
	}
	return fmt.Errorf("%s plugin %q: %s: %w", kind, name, op, err)
}
