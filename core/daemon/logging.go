package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// newLogger builds the daemon's logger: text or JSON, a default level and
// per-subsystem overrides (records carry a "subsystem" attribute, set by
// Logger.With("subsystem", name)).
func newLogger(w io.Writer, format, level string, overrides map[string]string) (*slog.Logger, error) {
	def, err := parseLevel(level)
	if err != nil {
		return nil, err
	}
	levels := map[string]slog.Level{}
	minLevel := def
	for sub, l := range overrides {
		lv, err := parseLevel(l)
		if err != nil {
			return nil, fmt.Errorf("log level for %s: %w", sub, err)
		}
		levels[sub] = lv
		minLevel = min(minLevel, lv)
	}
	opts := &slog.HandlerOptions{Level: minLevel}
	var h slog.Handler
	switch format {
	case "", "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("log format %q: want text or json", format)
	}
	if len(levels) == 0 {
		return slog.New(h), nil
	}
	return slog.New(&subsystemHandler{Handler: h, def: def, levels: levels}), nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if s == "" {
		return slog.LevelInfo, nil
	}
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// subsystemHandler filters records by the level of their subsystem.
type subsystemHandler struct {
	slog.Handler
	def    slog.Level
	levels map[string]slog.Level
	sub    string
}

func (h *subsystemHandler) level() slog.Level {
	if l, ok := h.levels[h.sub]; ok {
		return l
	}
	return h.def
}

func (h *subsystemHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level() }

func (h *subsystemHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < h.level() {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *subsystemHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	for _, a := range attrs {
		if a.Key == "subsystem" {
			n.sub = a.Value.String()
		}
	}
	n.Handler = h.Handler.WithAttrs(attrs)
	return &n
}

func (h *subsystemHandler) WithGroup(name string) slog.Handler {
	n := *h
	n.Handler = h.Handler.WithGroup(name)
	return &n
}
