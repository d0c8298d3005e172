package plugintest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/veil-ipsec/veil/sdk/auth"
)

var mockCase = EAPCase{
	Name:        "md5-like",
	Server:      &auth.EAPRequest{Connection: "gw", Method: "eap-md5", Server: true},
	Client:      &auth.EAPRequest{Connection: "alice", Method: "eap-md5", LocalID: auth.Identity{Type: 2, Data: []byte("alice")}},
	WrongClient: &auth.EAPRequest{Connection: "mallory", Method: "eap-md5", LocalID: auth.Identity{Type: 2, Data: []byte("mallory")}},
	Identity:    "alice",
}

func newEAPMock() *auth.EAPMock {
	return &auth.EAPMock{Users: map[string]string{"alice": "pw"}, Password: "pw"}
}

// TestEAPMockConformance: the SDK's EAP mock passes the EAP suite (mallory
// is not a user, so her conversation fails).
func TestEAPMockConformance(t *testing.T) {
	RunEAPConformance(t, newEAPMock(), []EAPCase{mockCase})
}

// brokenSession wraps a mock session and breaks it with step.
type brokenSession struct {
	auth.EAPSession
	server bool
	closes atomic.Int32
	step   func(s *brokenSession, in []byte) (*auth.EAPStep, error)
	close  func(s *brokenSession)
}

func (b *brokenSession) Step(ctx context.Context, in []byte) (*auth.EAPStep, error) {
	if b.step != nil {
		return b.step(b, in)
	}
	return b.EAPSession.Step(ctx, in)
}

func (b *brokenSession) Close() {
	if b.close != nil {
		b.close(b)
	}
	b.EAPSession.Close()
}

// brokenPlugins are EAP plugins with one flaw each and the words the suite
// must fail with.
var brokenPlugins = map[string]struct {
	fix  func(b *brokenSession)
	want string
}{
	"msk mismatch": {func(b *brokenSession) {
		b.step = func(b *brokenSession, in []byte) (*auth.EAPStep, error) {
			st, err := b.EAPSession.Step(context.Background(), in)
			if err == nil && !b.server && st.Success {
				st.MSK[0] ^= 1
			}
			return st, err
		}
	}, "MSKs differ"},
	"fixed msk": {func(b *brokenSession) {
		b.step = func(b *brokenSession, in []byte) (*auth.EAPStep, error) {
			st, err := b.EAPSession.Step(context.Background(), in)
			if err == nil && st.Success {
				st.MSK = bytes.Repeat([]byte{1}, 64)
			}
			return st, err
		}
	}, "same MSK"},
	"trusts early success": {func(b *brokenSession) {
		b.step = func(b *brokenSession, in []byte) (*auth.EAPStep, error) {
			if !b.server && len(in) == 4 && in[0] == 3 {
				return &auth.EAPStep{Done: true, Success: true, MSK: bytes.Repeat([]byte{2}, 64)}, nil
			}
			return b.EAPSession.Step(context.Background(), in)
		}
	}, "EAP-Success before any authentication"},
	"accepts anyone": {func(b *brokenSession) {
		b.step = func(b *brokenSession, in []byte) (*auth.EAPStep, error) {
			st, err := b.EAPSession.Step(context.Background(), in)
			if err == nil && st.Done && !st.Success {
				return &auth.EAPStep{Message: []byte{3, st.Message[1], 0, 4}, Done: true, Success: true, MSK: bytes.Repeat([]byte{3}, 64), Identity: []byte("x")}, nil
			}
			return st, err
		}
	}, "wrong credentials succeeded"},
	"panics on garbage": {func(b *brokenSession) {
		b.step = func(b *brokenSession, in []byte) (*auth.EAPStep, error) {
			if in != nil && len(in) < 4 {
				_ = in[3]
			}
			return b.EAPSession.Step(context.Background(), in)
		}
	}, "plugin panicked"},
	"close panics": {func(b *brokenSession) {
		b.close = func(b *brokenSession) {
			if b.closes.Add(1) > 1 {
				panic("closed twice")
			}
		}
	}, "Close twice"},
	"first step not a request": {func(b *brokenSession) {
		b.step = func(b *brokenSession, in []byte) (*auth.EAPStep, error) {
			st, err := b.EAPSession.Step(context.Background(), in)
			if err == nil && in == nil && b.server {
				st.Message[0] = 2
			}
			return st, err
		}
	}, "not an EAP Request"},
}

// TestEAPBrokenPlugin runs the suite against the plugin named by
// VEIL_EAP_BROKEN; TestEAPConformanceCatchesBrokenPlugins runs it in a
// child process and expects it to fail.
func TestEAPBrokenPlugin(t *testing.T) {
	broken, ok := brokenPlugins[os.Getenv("VEIL_EAP_BROKEN")]
	if !ok {
		t.Skip("runs only as TestEAPConformanceCatchesBrokenPlugins's child")
	}
	m := newEAPMock()
	inner := newEAPMock()
	m.StartEAPFn = func(ctx context.Context, req *auth.EAPRequest) (auth.EAPSession, error) {
		s, err := inner.StartEAP(ctx, req)
		if err != nil {
			return nil, err
		}
		b := &brokenSession{EAPSession: s, server: req.Server}
		broken.fix(b)
		return b, nil
	}
	RunEAPConformance(t, m, []EAPCase{mockCase})
}

func TestEAPConformanceCatchesBrokenPlugins(t *testing.T) {
	for name, b := range brokenPlugins {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestEAPBrokenPlugin$", "-test.count=1")
			cmd.Env = append(os.Environ(), "VEIL_EAP_BROKEN="+name)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a plugin with flaw %q:\n%s", name, out)
			}
			if !strings.Contains(string(out), b.want) {
				t.Errorf("the suite failed without saying %q:\n%s", b.want, out)
			}
		})
	}
}
