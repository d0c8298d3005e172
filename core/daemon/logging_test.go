package daemon

import (
	"bytes"
	"strings"
	"testing"
)

func TestSubsystemLevels(t *testing.T) {
	var buf bytes.Buffer
	l, err := newLogger(&buf, "text", "info", map[string]string{"ike": "debug"})
	if err != nil {
		t.Fatal(err)
	}
	l.With("subsystem", "ike").Debug("ike-debug")
	l.With("subsystem", "plugin").Debug("plugin-debug")
	l.With("subsystem", "plugin").Info("plugin-info")
	out := buf.String()
	if !strings.Contains(out, "ike-debug") || strings.Contains(out, "plugin-debug") || !strings.Contains(out, "plugin-info") {
		t.Errorf("log output:\n%s", out)
	}
}

func TestLoggerErrors(t *testing.T) {
	if _, err := newLogger(&bytes.Buffer{}, "xml", "info", nil); err == nil {
		t.Error("xml format accepted")
	}
	if _, err := newLogger(&bytes.Buffer{}, "json", "loud", nil); err == nil {
		t.Error("bad level accepted")
	}
}
