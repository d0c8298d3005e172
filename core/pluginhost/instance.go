package pluginhost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/veil-ipsec/veil/sdk/auth"
	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/dataplane"
	"github.com/veil-ipsec/veil/sdk/keystore"
)

// kindClient is what every kind's client has.
type kindClient interface {
	Info(ctx context.Context) (base.Info, error)
	ConfigSchema(ctx context.Context) (base.Schema, error)
	Configure(ctx context.Context, configJSON []byte) error
	Health(ctx context.Context) error
}

// streamClient is a client with a multiplexed stream (auth, keystore): its
// end is the fastest sign of a crashed plugin.
type streamClient interface {
	Done() <-chan struct{}
	Close()
}

// instance is one supervised plugin.
type instance struct {
	h                *Host
	kind, name, path string
	log              *slog.Logger
	stderr           *tailWriter
	dataplane        *Dataplane // dataplane plugins only
	// configured counts Configure calls; caches of what a plugin said
	// (public keys) are dropped when it changes.
	configured atomic.Uint64

	mu         sync.Mutex
	proc       *plugin.Client
	client     kindClient // nil while down
	down       error      // why it is down
	up         chan struct{}
	schema     base.Schema
	info       base.Info
	configJSON []byte
	restarts   int
	stopping   bool
	stopCh     chan struct{}
	doneCh     chan struct{}
}

func newInstance(h *Host, kind, name, path string) *instance {
	log := h.opts.Logger.With("plugin", kind+"/"+name)
	return &instance{
		h: h, kind: kind, name: name, path: path, log: log,
		stderr: newTailWriter(log, 20),
		down:   errors.New("not started"),
		up:     make(chan struct{}),
		stopCh: make(chan struct{}),
		doneCh: make(chan struct{}),
	}
}

// pluginSets are the protocol versions the host speaks for kind, each
// with its plugin set; go-plugin picks the highest the plugin also serves.
func pluginSets(kind string) map[int]plugin.PluginSet {
	switch kind {
	case base.KindAuth:
		return map[int]plugin.PluginSet{base.ProtocolVersion: auth.PluginSet(nil)}
	case base.KindKeystore:
		return map[int]plugin.PluginSet{base.ProtocolVersion: keystore.PluginSet(nil)}
	default:
		sets := map[int]plugin.PluginSet{}
		for _, v := range dataplane.ProtocolVersions {
			sets[v] = dataplane.PluginSetVersion(nil, v)
		}
		return sets
	}
}

// versionList names the versions in sets ("1" or "1 and 2").
func versionList(sets map[int]plugin.PluginSet) string {
	ns := make([]int, 0, len(sets))
	for v := range sets {
		ns = append(ns, v)
	}
	sort.Ints(ns)
	vs := make([]string, len(ns))
	for i, v := range ns {
		vs[i] = strconv.Itoa(v)
	}
	if len(vs) == 1 {
		return "version " + vs[0]
	}
	return "versions " + strings.Join(vs[:len(vs)-1], ", ") + " and " + vs[len(vs)-1]
}

// launch starts the process, dispenses the kind's client and checks the
// plugin's info. It does not configure.
func (i *instance) launch(ctx context.Context) (*plugin.Client, kindClient, base.Info, error) {
	var cmd *exec.Cmd
	if i.path == "" {
		cmd = exec.Command(i.h.opts.Executable, "plugin", i.kind, i.name)
	} else {
		cmd = exec.Command(i.path)
	}
	// go-plugin appends the host's environment (where a value is set twice
	// the later wins); this keeps the plugin's socket in our 0700
	// directory.
	cmd.Env = []string{plugin.EnvUnixSocketDir + "=" + i.h.sockDir, "GOMAXPROCS=" + strconv.Itoa(i.h.opts.PluginProcs)}
	// A plugin must not outlive a daemon that died without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	sets := pluginSets(i.kind)
	proc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  base.Handshake,
		VersionedPlugins: sets,
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		// A fixed window turns off gRPC's BDP probing: fewer frames and
		// wake-ups per streamed call (see sdk/internal/grpcopt).
		GRPCDialOptions: []grpc.DialOption{grpc.WithInitialWindowSize(1 << 20), grpc.WithInitialConnWindowSize(1 << 20)},
		StartTimeout:    i.h.opts.StartTimeout,
		Stderr:          i.stderr,
		SyncStderr:      i.stderr,
		SyncStdout:      i.stderr,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: "go-plugin", Output: io.Discard, Level: hclog.Off,
		}),
	})
	rpc, err := proc.Client()
	if err != nil {
		proc.Kill()
		if strings.Contains(err.Error(), "incompatible API version") {
			return nil, nil, base.Info{}, fmt.Errorf("%s plugin %q speaks another plugin protocol version than veild (which speaks %s for %s plugins): %v",
				i.kind, i.name, versionList(sets), i.kind, err)
		}
		return nil, nil, base.Info{}, fmt.Errorf("starting %s plugin %q: %w%s", i.kind, i.name, err, i.stderr.tailSuffix())
	}
	raw, err := rpc.Dispense(i.kind)
	if err != nil {
		proc.Kill()
		return nil, nil, base.Info{}, fmt.Errorf("starting %s plugin %q: %w", i.kind, i.name, err)
	}
	kc, ok := raw.(kindClient)
	if !ok {
		proc.Kill()
		return nil, nil, base.Info{}, fmt.Errorf("starting %s plugin %q: unexpected client %T", i.kind, i.name, raw)
	}
	if dc, ok := kc.(*dataplane.Client); ok {
		dc.Logger = i.log
	}
	cctx, cancel := context.WithTimeout(ctx, i.h.opts.CallTimeout)
	defer cancel()
	info, err := kc.Info(cctx)
	if err == nil && info.Kind != i.kind {
		err = fmt.Errorf("it says it is a %q plugin", info.Kind)
	}
	if err != nil {
		closeClient(kc)
		proc.Kill()
		return nil, nil, base.Info{}, fmt.Errorf("%s plugin %q: %w", i.kind, i.name, err)
	}
	return proc, kc, info, nil
}

func closeClient(kc kindClient) {
	if sc, ok := kc.(streamClient); ok {
		sc.Close()
	}
}

// startFirst launches the plugin, fetches its schema and starts the
// supervisor.
func (i *instance) startFirst(ctx context.Context) error {
	proc, kc, info, err := i.launch(ctx)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, i.h.opts.CallTimeout)
	schema, err := kc.ConfigSchema(cctx)
	cancel()
	if err != nil {
		closeClient(kc)
		proc.Kill()
		return fmt.Errorf("%s plugin %q: reading its config schema: %w", i.kind, i.name, err)
	}
	if _, err := SpecFromSchema(schema); err != nil {
		closeClient(kc)
		proc.Kill()
		return fmt.Errorf("%s plugin %q supplied a bad config schema: %w", i.kind, i.name, err)
	}
	i.mu.Lock()
	i.schema, i.info = schema, info
	i.mu.Unlock()
	i.setUp(proc, kc)
	i.log.Info("plugin started", "name", info.Name, "version", info.Version, "pid", pid(proc))
	go i.routineSupervise(proc, kc)
	return nil
}

func pid(proc *plugin.Client) int {
	if rc := proc.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}

func (i *instance) setUp(proc *plugin.Client, kc kindClient) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.proc, i.client, i.down = proc, kc, nil
	close(i.up)
}

func (i *instance) setDown(reason error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.client == nil {
		return
	}
	i.client, i.down = nil, reason
	i.up = make(chan struct{})
}

// current returns the running plugin's client, or an UnavailableError at
// once while it is down.
func (i *instance) current() (kindClient, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.client == nil {
		return nil, &UnavailableError{Kind: i.kind, Name: i.name, Reason: i.down}
	}
	return i.client, nil
}

// waitUp returns a channel closed when the plugin is (next) up.
func (i *instance) waitUp() <-chan struct{} {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.up
}

// PID of the running plugin process (0 while down), for tests and status.
func (i *instance) pid() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.client == nil || i.proc == nil {
		return 0
	}
	return pid(i.proc)
}

func (i *instance) configure(ctx context.Context, js []byte) (err error) {
	// A restart meanwhile replays js; if the plugin refuses it (or is
	// down), the previous one is what a restart replays again, as the
	// daemon keeps running its previous configuration after a refused
	// reload.
	i.mu.Lock()
	prev := i.configJSON
	i.configJSON = js
	i.mu.Unlock()
	defer func() {
		if err != nil {
			i.mu.Lock()
			if bytes.Equal(i.configJSON, js) {
				i.configJSON = prev
			}
			i.mu.Unlock()
		}
	}()
	defer i.configured.Add(1)
	kc, err := i.current()
	if err != nil {
		return err
	}
	cctx, cancel := i.h.callContext(ctx)
	defer cancel()
	if err := kc.Configure(cctx, js); err != nil {
		return fmt.Errorf("%s plugin %q rejected its config: %w", i.kind, i.name, plainError(err))
	}
	return nil
}

// routineSupervise watches the running plugin and restarts it when it
// exits, its stream breaks or its health checks fail.
func (i *instance) routineSupervise(proc *plugin.Client, kc kindClient) {
	defer close(i.doneCh)
	backoff := i.h.opts.MinBackoff
	for {
		started := time.Now()
		reason := i.watch(proc, kc)
		closeClient(kc)
		proc.Kill()
		if reason == nil { // stopping
			return
		}
		if time.Since(started) >= i.h.opts.StableAfter {
			backoff = i.h.opts.MinBackoff
		}
		i.setDown(reason)
		i.log.Error("plugin failed; restarting", "reason", reason, "backoff", backoff, "stderr", i.stderr.tail())
		for {
			select {
			case <-time.After(backoff):
			case <-i.stopCh:
				return
			}
			backoff = min(backoff*2, i.h.opts.MaxBackoff)
			var err error
			proc, kc, err = i.restart()
			if err == nil {
				break
			}
			i.mu.Lock()
			i.down = err
			i.mu.Unlock()
			i.log.Error("plugin restart failed", "err", err, "backoff", backoff)
		}
	}
}

// watch returns why the plugin must be restarted, or nil when stopping.
func (i *instance) watch(proc *plugin.Client, kc kindClient) error {
	var streamDone <-chan struct{}
	if sc, ok := kc.(streamClient); ok {
		streamDone = sc.Done()
	}
	exitPoll := time.NewTicker(50 * time.Millisecond)
	defer exitPoll.Stop()
	health := time.NewTicker(i.h.opts.HealthInterval)
	defer health.Stop()
	failures := 0
	for {
		select {
		case <-i.stopCh:
			return nil
		case <-streamDone:
			return errors.New("its call stream broke (the process exited or closed it)")
		case <-exitPoll.C:
			if proc.Exited() {
				return errors.New("the process exited")
			}
		case <-health.C:
			ctx, cancel := context.WithTimeout(context.Background(), i.h.opts.HealthTimeout)
			err := kc.Health(ctx)
			cancel()
			if err == nil {
				failures = 0
				continue
			}
			failures++
			i.log.Warn("plugin health check failed", "err", plainError(err), "failures", failures)
			if failures >= i.h.opts.HealthFailures {
				return fmt.Errorf("%d health checks failed in a row, the last: %v", failures, plainError(err))
			}
		}
	}
}

// restart launches a new process, configures it and lets the kind's adapter
// restore its state (the dataplane re-installs SAs and policies) before the
// plugin takes calls again.
func (i *instance) restart() (*plugin.Client, kindClient, error) {
	ctx, cancel := context.WithTimeout(context.Background(), i.h.opts.StartTimeout)
	defer cancel()
	proc, kc, info, err := i.launch(ctx)
	if err != nil {
		return nil, nil, err
	}
	i.mu.Lock()
	i.info = info
	js := i.configJSON
	i.restarts++
	i.mu.Unlock()
	fail := func(err error) (*plugin.Client, kindClient, error) {
		closeClient(kc)
		proc.Kill()
		return nil, nil, err
	}
	if js != nil {
		cctx, ccancel := i.h.callContext(ctx)
		err := kc.Configure(cctx, js)
		ccancel()
		if err != nil {
			return fail(fmt.Errorf("%s plugin %q rejected its config after restart: %w", i.kind, i.name, plainError(err)))
		}
	}
	if i.dataplane != nil {
		if err := i.dataplane.restore(ctx, kc.(*dataplane.Client)); err != nil {
			return fail(err)
		}
	}
	i.setUp(proc, kc)
	i.log.Info("plugin restarted", "pid", pid(proc))
	if i.dataplane != nil {
		go i.dataplane.runHooks()
	}
	return proc, kc, nil
}

func (i *instance) stop() {
	i.mu.Lock()
	if i.stopping {
		i.mu.Unlock()
		return
	}
	i.stopping = true
	close(i.stopCh)
	i.mu.Unlock()
	<-i.doneCh
	i.setDown(errors.New("plugin host closed"))
	if i.dataplane != nil {
		i.dataplane.forgetAll()
	}
}

// tailWriter logs a plugin's stderr line by line and keeps the last lines
// for crash reports.
type tailWriter struct {
	log *slog.Logger
	max int

	mu    sync.Mutex
	lines []string
	part  []byte
}

func newTailWriter(log *slog.Logger, max int) *tailWriter {
	return &tailWriter{log: log, max: max}
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.part = append(w.part, p...)
	for {
		nl := strings.IndexByte(string(w.part), '\n')
		if nl < 0 {
			break
		}
		line := strings.TrimRight(string(w.part[:nl]), "\r")
		w.part = w.part[nl+1:]
		if line == "" {
			continue
		}
		w.logLine(line)
		w.lines = append(w.lines, line)
		if len(w.lines) > w.max {
			w.lines = w.lines[len(w.lines)-w.max:]
		}
	}
	return len(p), nil
}

// logLine logs one stderr line. go-plugin's own messages from inside the
// plugin arrive as hclog JSON ({"@level": ...}) and keep their level;
// anything else (the plugin's own output, a panic) is logged as a warning.
func (w *tailWriter) logLine(line string) {
	if strings.HasPrefix(line, `{"@`) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			msg, _ := m["@message"].(string)
			lvl, _ := m["@level"].(string)
			level := slog.LevelInfo
			switch lvl {
			case "trace", "debug":
				level = slog.LevelDebug
			case "warn":
				level = slog.LevelWarn
			case "error":
				level = slog.LevelError
			}
			w.log.Log(context.Background(), level, "plugin: "+msg)
			return
		}
	}
	w.log.Warn("plugin stderr", "line", line)
}

func (w *tailWriter) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n")
}

func (w *tailWriter) tailSuffix() string {
	if t := w.tail(); t != "" {
		return "; its stderr:\n" + t
	}
	return ""
}
