// Package daemon is veild: it loads the configuration, starts the plugins,
// runs the IKE engine, serves the control socket and metrics, and applies
// reloads (SIGHUP or `veilctl reload`) without touching unchanged
// connections. A bad new configuration is refused with diagnostics and the
// running one stays.
package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/veil-ipsec/veil/config"
	"github.com/veil-ipsec/veil/core/control"
	"github.com/veil-ipsec/veil/core/engine"
	"github.com/veil-ipsec/veil/core/ikesa"
	"github.com/veil-ipsec/veil/core/pluginhost"
)

// Options for Run.
type Options struct {
	ConfigPath string
	Stderr     io.Writer
	// Plugins are the bundled plugins, served by re-executing veild.
	Plugins pluginhost.Builtins
}

// ErrBadConfig is returned when the configuration has errors (already
// written to Stderr as diagnostics).
var ErrBadConfig = errors.New("configuration has errors")

// Daemon is one running veild.
type Daemon struct {
	opts    Options
	log     *slog.Logger
	started time.Time

	mu      sync.Mutex // guards cfg and reloads
	cfg     *config.Config
	plugins *pluginSet
	host    *pluginhost.Host
	eng     *engine.Engine
	closers []func() error
}

// Run runs the daemon until ctx ends, then deletes every IKE SA and removes
// what it installed.
func Run(ctx context.Context, opts Options) error {
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	cfg, diags := config.LoadFile(opts.ConfigPath)
	if len(diags) > 0 {
		cfg.WriteDiagnostics(opts.Stderr, diags)
	}
	if diags.HasErrors() {
		return ErrBadConfig
	}
	log, err := newLogger(opts.Stderr, cfg.Daemon.LogFormat, cfg.Daemon.LogLevel, cfg.Daemon.LogLevels)
	if err != nil {
		return err
	}
	d := &Daemon{opts: opts, log: log, started: time.Now(), cfg: cfg}
	return d.run(ctx)
}

func (d *Daemon) run(ctx context.Context) error {
	cfg := d.cfg
	host, err := pluginhost.New(pluginhost.Options{Logger: d.log.With("subsystem", "plugin"), OnCall: observePluginCall})
	if err != nil {
		return err
	}
	d.host = host
	defer host.Close()
	// The IKE sockets come first: a userspace dataplane joins the NAT-T
	// port's SO_REUSEPORT group after them (see openIKESockets).
	udp, err := openIKESockets(cfg)
	if err != nil {
		return err
	}
	engineOwnsUDP := false
	defer func() {
		if !engineOwnsUDP {
			udp.Close()
		}
	}()
	ps, diags, err := startPlugins(ctx, host, cfg)
	if len(diags) > 0 {
		cfg.WriteDiagnostics(d.opts.Stderr, diags)
	}
	if err != nil {
		return err
	}
	d.plugins = ps

	eng, err := d.newEngine(cfg, ps, udp)
	if err != nil {
		return err
	}
	engineOwnsUDP = true
	d.closers = append(d.closers, udp.Close)
	d.eng = eng
	ps.dataplane.OnRestart(func(context.Context) {
		if n := eng.RekeyAllChildren(); n > 0 {
			d.log.Info("rekeying Child SAs after the dataplane plugin restarted", "children", n)
		}
	})
	engCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	engDone := make(chan error, 1)
	go func() { engDone <- eng.Run(engCtx) }()
	defer func() {
		stopEngine()
		for _, c := range d.closers {
			c()
		}
		<-engDone
	}()
	conns, err := d.engineConnections(cfg)
	if err != nil {
		return err
	}
	eng.SetConnections(conns)

	l, err := control.Listen(cfg.Daemon.ControlSocket, cfg.Daemon.ControlGroup)
	if err != nil {
		return err
	}
	srv := control.NewServer(&controlServer{d: d})
	go srv.Serve(l)
	defer srv.Stop()

	if cfg.Daemon.MetricsListen.IsValid() {
		mc := newMetricsCollector(d.snapshot, d.stats)
		if err := serveMetrics(ctx, cfg.Daemon.MetricsListen.String(), mc, d.log.With("subsystem", "metrics")); err != nil {
			return fmt.Errorf("metrics_listen: %w", err)
		}
	}
	sdNotify("READY=1")
	d.log.Info("veild running", "config", d.opts.ConfigPath, "connections", len(cfg.Connections),
		"dataplane", cfg.Dataplane(), "control_socket", cfg.Daemon.ControlSocket)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			if msg, err := d.reload(); err != nil {
				d.log.Error("reload refused; the running configuration stays", "err", msg)
			}
		case err := <-engDone:
			engDone <- err // for the deferred wait
			return fmt.Errorf("engine stopped: %w", err)
		case <-ctx.Done():
			sdNotify("STOPPING=1")
			d.log.Info("shutting down: deleting every IKE SA")
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := eng.Shutdown(sctx)
			cancel()
			if err != nil {
				d.log.Warn("shutdown incomplete", "err", err)
			}
			return nil
		}
	}
}

func (d *Daemon) engineConnections(cfg *config.Config) ([]ikesa.Connection, error) {
	out := make([]ikesa.Connection, 0, len(cfg.Connections))
	for i := range cfg.Connections {
		c, err := engineConnection(&cfg.Connections[i])
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// reload re-reads the configuration and applies what changed. It returns
// the diagnostics text when it refuses.
func (d *Daemon) reload() (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	sdNotify("RELOADING=1")
	defer sdNotify("READY=1")
	cfg, diags := config.LoadFile(d.opts.ConfigPath)
	var buf bytes.Buffer
	if len(diags) > 0 {
		cfg.WriteDiagnostics(&buf, diags)
	}
	if diags.HasErrors() {
		return buf.String(), ErrBadConfig
	}
	if why := pluginsChanged(d.cfg, cfg); why != "" {
		return why + "; restart veild to change plugins", errors.New(why)
	}
	// Check everything before changing anything.
	conns, err := d.engineConnections(cfg)
	if err != nil {
		return err.Error(), err
	}
	if usesPubkey(cfg) && d.plugins.pubkey == nil {
		return "certificate authentication was not in use at start; restart veild to add it", errors.New("x509 plugin not running")
	}
	local, err := readLocalCredentials(cfg)
	if err != nil {
		return err.Error(), err
	}
	// A plugin may still refuse its new configuration (a missing key file):
	// then nothing after it is applied and the message says which.
	// Keystore secrets are fetched again: a secret changed in Vault is
	// picked up by a reload, and one the keystore cannot give refuses it.
	pv, done, err := pskConfig(context.Background(), cfg, d.plugins.keystore)
	if err != nil {
		err = fmt.Errorf("auth plugin \"psk\": %w", err)
		return err.Error(), err
	}
	err = d.host.Configure(context.Background(), "auth", "psk", pv)
	done()
	if err != nil {
		return err.Error(), err
	}
	if d.plugins.pubkey != nil {
		if err := d.host.Configure(context.Background(), "auth", "x509", x509Value(cfg)); err != nil {
			return err.Error(), err
		}
		d.plugins.pubkey.use(local)
	}
	d.eng.SetConnections(conns)
	d.cfg = cfg
	d.log.Info("configuration reloaded", "connections", len(cfg.Connections))
	return fmt.Sprintf("reloaded %s: %d connection(s)", d.opts.ConfigPath, len(cfg.Connections)), nil
}

// pluginsChanged names a plugin difference a reload cannot apply.
func pluginsChanged(old, cur *config.Config) string {
	if old.Dataplane() != cur.Dataplane() {
		return fmt.Sprintf("the dataplane changed from %q to %q", old.Dataplane(), cur.Dataplane())
	}
	if len(old.Plugins) != len(cur.Plugins) {
		return "the plugin blocks changed"
	}
	for i := range old.Plugins {
		if old.Plugins[i].Kind != cur.Plugins[i].Kind || old.Plugins[i].Name != cur.Plugins[i].Name || old.Plugins[i].Path != cur.Plugins[i].Path {
			return "the plugin blocks changed"
		}
	}
	return ""
}
