package pluginhost

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/veil-ipsec/veil/core/provider"
	"github.com/veil-ipsec/veil/sdk/auth"
	"github.com/veil-ipsec/veil/sdk/base"
	"github.com/veil-ipsec/veil/sdk/dataplane"
)

// logBuffer collects the host's log for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newHost(t *testing.T) (*Host, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{
		Executable:     exe,
		Logger:         slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		CallTimeout:    3 * time.Second,
		HealthInterval: 200 * time.Millisecond,
		HealthTimeout:  500 * time.Millisecond,
		MinBackoff:     50 * time.Millisecond,
		MaxBackoff:     time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h, logs
}

// decode reads an HCL config body with the plugin's own schema, as
// config.DecodePluginConfigs does, and configures the plugin with it.
func configure(t *testing.T, h *Host, kind, name, src string) {
	t.Helper()
	spec, err := h.Schema(kind, name)
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclsyntax.ParseConfig([]byte(src), "test.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	v, diags := hcldec.Decode(f.Body, spec, nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if err := h.Configure(context.Background(), kind, name, v); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func killPlugin(t *testing.T, h *Host, kind, name string) int {
	t.Helper()
	inst, err := h.instance(kind, name)
	if err != nil {
		t.Fatal(err)
	}
	pid := inst.pid()
	if pid == 0 {
		t.Fatal("plugin is not running")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	return pid
}

// waitRestarted waits until the plugin runs with a pid other than old.
func waitRestarted(t *testing.T, h *Host, kind, name string, old int) {
	t.Helper()
	inst, _ := h.instance(kind, name)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if p := inst.pid(); p != 0 && p != old {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s/%s not restarted within 15s", kind, name)
}

var pskRequest = &provider.AuthRequest{
	Connection:   "lab",
	Role:         provider.Initiator,
	LocalID:      provider.Identity{Type: 2, Data: []byte("a.lab.example")},
	RemoteID:     provider.Identity{Type: 2, Data: []byte("b.lab.example")},
	PRF:          5,
	SignedOctets: []byte("IKE_SA_INIT | Nr | prf(SK_pi, IDi')"),
}

func startPSK(t *testing.T, h *Host) provider.Authenticator {
	t.Helper()
	if err := h.Start(context.Background(), "auth", "psk", ""); err != nil {
		t.Fatal(err)
	}
	key := writeFile(t, "lab.psk", []byte("0123456789abcdef0123456789abcdef\n"))
	configure(t, h, "auth", "psk", `secrets = { "b.lab.example" = "file:`+key+`" }`)
	a, err := h.Authenticator("psk")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestBundledPSK runs the bundled PSK plugin by re-executing the binary,
// decodes its config with the schema it supplied and makes and verifies
// AUTH through the provider interface.
func TestBundledPSK(t *testing.T) {
	h, _ := newHost(t)
	a := startPSK(t, h)
	res, err := a.Make(context.Background(), pskRequest)
	if err != nil {
		t.Fatal(err)
	}
	if res.Method != 2 || len(res.Data) != 32 {
		t.Fatalf("Make = method %d, %d bytes; want 2, 32 (HMAC-SHA2-256)", res.Method, len(res.Data))
	}
	req := *pskRequest
	req.Method, req.Data = res.Method, res.Data
	if err := a.Verify(context.Background(), &req); err != nil {
		t.Fatal(err)
	}
	req.Data = bytes.Clone(res.Data)
	req.Data[0] ^= 1
	if err := a.Verify(context.Background(), &req); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("altered AUTH: err = %v", err)
	}
}

func TestSchemaErrors(t *testing.T) {
	h, _ := newHost(t)
	startPSK(t, h)
	spec, _ := h.Schema("auth", "psk")
	f, _ := hclsyntax.ParseConfig([]byte(`secret = "x"`), "bad.hcl", hcl.InitialPos)
	_, diags := hcldec.Decode(f.Body, spec, nil)
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "secrets") {
		t.Errorf("unknown attribute and missing required one: diags = %v", diags)
	}
	if _, err := h.Schema("auth", "nope"); err == nil {
		t.Error("Schema of an unloaded plugin succeeded")
	}
	// A weak key is refused when configuring, naming the rule.
	short := writeFile(t, "short.psk", []byte("short\n"))
	err := h.Configure(context.Background(), "auth", "psk", cty.ObjectVal(map[string]cty.Value{
		"secrets": cty.MapVal(map[string]cty.Value{"*": cty.StringVal("file:" + short)}),
	}))
	if err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Errorf("short key: err = %v", err)
	}
}

func TestSpecFromSchema(t *testing.T) {
	spec, err := SpecFromSchema(base.Schema{
		Attributes: []base.Attribute{{Name: "a", Type: "list(string)", Required: true}, {Name: "n", Type: "number"}},
		Blocks: []base.Block{{Name: "server", Multiple: true, Body: base.Schema{
			Attributes: []base.Attribute{{Name: "addr", Type: "string", Required: true}}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := hclsyntax.ParseConfig([]byte(`a = ["x"]
server { addr = "1" }
server { addr = "2" }`), "t.hcl", hcl.InitialPos)
	v, diags := hcldec.Decode(f.Body, spec, nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if n := v.GetAttr("server").LengthInt(); n != 2 {
		t.Errorf("server blocks = %d, want 2", n)
	}
	for _, bad := range []base.Schema{
		{Attributes: []base.Attribute{{Name: "a", Type: "strin"}}},
		{Attributes: []base.Attribute{{Name: "a b", Type: "string"}}},
		{Attributes: []base.Attribute{{Name: "a", Type: "string"}, {Name: "a", Type: "number"}}},
		{Attributes: []base.Attribute{{Name: "a", Type: "string"}}, Blocks: []base.Block{{Name: "a"}}},
	} {
		if _, err := SpecFromSchema(bad); err == nil {
			t.Errorf("SpecFromSchema(%+v) succeeded", bad)
		}
	}
}

// TestSocketDirPrivate: plugin sockets live in a directory only the
// daemon's user can enter.
func TestSocketDirPrivate(t *testing.T) {
	h, _ := newHost(t)
	startPSK(t, h)
	st, err := os.Stat(h.sockDir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("socket directory mode %04o, want 0700", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(h.sockDir)
	if len(entries) == 0 {
		t.Errorf("no plugin socket in %s: the plugin listens elsewhere", h.sockDir)
	}
	dir := h.sockDir
	h.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("socket directory left behind after Close: %v", err)
	}
}

// cleanCallError is what a call may fail with while its plugin dies:
// an unavailable plugin, a broken stream or connection, a deadline.
func cleanCallError(err error) bool {
	var ue *UnavailableError
	msg := err.Error()
	return errors.As(err, &ue) || strings.Contains(msg, "stream closed") ||
		strings.Contains(msg, "Unavailable") || strings.Contains(msg, "connection") ||
		strings.Contains(msg, "EOF") || strings.Contains(msg, "transport") || strings.Contains(msg, "Canceled")
}

// load runs call from 8 goroutines until stop is closed; it counts
// successes and failures and fails the test on an unclean error or a call
// that took longer than the call timeout (a hang).
func load(t *testing.T, stop <-chan struct{}, call func() error) (ok, failed *atomic.Int64, wait func()) {
	ok, failed = new(atomic.Int64), new(atomic.Int64)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				err := call()
				// Calls carry the 3s call timeout: far longer means a hang.
				if d := time.Since(start); d > 10*time.Second {
					t.Errorf("a call took %v", d)
				}
				if err == nil {
					ok.Add(1)
					continue
				}
				failed.Add(1)
				if !cleanCallError(err) {
					t.Errorf("unclean error during crash: %v", err)
				}
				time.Sleep(time.Millisecond) // a down plugin fails fast: do not spin
			}
		}()
	}
	return ok, failed, wg.Wait
}

// waitSucceeds retries call until it succeeds.
func waitSucceeds(t *testing.T, what string, call func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = call(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s still failing after 15s: %v", what, err)
}

func TestKillAuthUnderLoad(t *testing.T) {
	h, logs := newHost(t)
	a := startPSK(t, h)
	res, err := a.Make(context.Background(), pskRequest)
	if err != nil {
		t.Fatal(err)
	}
	req := *pskRequest
	req.Method, req.Data = res.Method, res.Data
	verify := func() error { return a.Verify(context.Background(), &req) }

	stop := make(chan struct{})
	ok, failed, wait := load(t, stop, verify)
	time.Sleep(200 * time.Millisecond)
	before := ok.Load()
	old := killPlugin(t, h, "auth", "psk")
	waitRestarted(t, h, "auth", "psk", old)
	waitSucceeds(t, "Verify after restart", verify)
	afterRestart := ok.Load()
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wait()
	if before == 0 || ok.Load() <= afterRestart {
		t.Errorf("calls did not succeed before (%d) and after (%d -> %d) the crash", before, afterRestart, ok.Load())
	}
	t.Logf("calls: %d ok, %d failed cleanly", ok.Load(), failed.Load())
	st := h.List()
	if len(st) != 1 || st[0].State != "running" || st[0].Restarts < 1 || st[0].Version != "1.0.0" || st[0].PID == old {
		t.Errorf("List after a restart = %+v", st)
	}
	if !strings.Contains(logs.String(), "plugin failed; restarting") {
		t.Errorf("crash not logged:\n%s", logs.String())
	}
}

func TestKillKeystoreUnderLoad(t *testing.T) {
	h, _ := newHost(t)
	if err := h.Start(context.Background(), "keystore", "file", ""); err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	path := writeFile(t, "key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	ks, err := h.KeyStore("file")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ks.Signer(context.Background(), "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if !key.PublicKey.Equal(signer.Public()) {
		t.Fatal("Public differs from the key in the file")
	}
	digest := sha256.Sum256([]byte("signed octets"))
	sign := func() error {
		sig, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			return err
		}
		if !ecdsa.VerifyASN1(&key.PublicKey, digest[:], sig) {
			t.Error("signature does not verify")
		}
		return nil
	}
	stop := make(chan struct{})
	ok, failed, wait := load(t, stop, sign)
	time.Sleep(200 * time.Millisecond)
	old := killPlugin(t, h, "keystore", "file")
	waitRestarted(t, h, "keystore", "file", old)
	waitSucceeds(t, "Sign after restart", sign)
	n := ok.Load()
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wait()
	if ok.Load() <= n {
		t.Errorf("no signatures after the restart")
	}
	t.Logf("signatures: %d ok, %d failed cleanly", ok.Load(), failed.Load())
}

// TestDownPluginFailsFast: while a plugin is down (its restart waits out
// the backoff), calls return at once with an error naming the plugin.
func TestDownPluginFailsFast(t *testing.T) {
	h, _ := newHost(t)
	h.opts.MinBackoff = time.Minute // stays down for the whole test
	a := startPSK(t, h)
	killPlugin(t, h, "auth", "psk")
	inst, _ := h.instance("auth", "psk")
	deadline := time.Now().Add(5 * time.Second)
	for inst.pid() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// An UnavailableError comes from the host's own state, before any I/O.
	_, err := a.Make(context.Background(), pskRequest)
	var ue *UnavailableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), `auth plugin "psk" is unavailable`) {
		t.Fatalf("err = %v, want UnavailableError", err)
	}
}

func TestHungPluginTimesOut(t *testing.T) {
	t.Setenv("VEIL_TESTPLUGIN", "hang")
	h, _ := newHost(t)
	if err := h.Start(context.Background(), "auth", "hang", testPluginBin); err != nil {
		t.Fatal(err)
	}
	a, _ := h.Authenticator("hang")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := a.Verify(ctx, pskRequest)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer within") {
		t.Fatalf("err = %v, want a deadline error saying how long it waited", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("returned after %v", d)
	}
	// Without a deadline of its own the host's call timeout applies.
	h.opts.CallTimeout = 200 * time.Millisecond
	if _, err := a.Make(context.Background(), pskRequest); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Make without deadline: err = %v", err)
	}
}

func TestWrongProtocolVersion(t *testing.T) {
	t.Setenv("VEIL_TESTPLUGIN", "bad-version")
	h, _ := newHost(t)
	err := h.Start(context.Background(), "auth", "old", testPluginBin)
	if err == nil {
		t.Fatal("a plugin of protocol version 2 started")
	}
	for _, want := range []string{"Plugin version: 2", "version 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestGarbageAuthRejected(t *testing.T) {
	t.Setenv("VEIL_TESTPLUGIN", "garbage")
	h, _ := newHost(t)
	if err := h.Start(context.Background(), "auth", "garbage", testPluginBin); err != nil {
		t.Fatal(err)
	}
	a, _ := h.Authenticator("garbage")
	for conn, want := range map[string]string{
		"nil":        "no result",
		"method-0":   "AUTH method 0",
		"empty":      "empty AUTH data",
		"oversized":  "bytes of AUTH data",
		"many-certs": "certificates",
		"empty-cert": "certificate 0",
		"panic":      "plugin panicked",
	} {
		req := *pskRequest
		req.Connection = conn
		_, err := a.Make(context.Background(), &req)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", conn, err, want)
		}
		// nil and panics are caught by the SDK inside the plugin; the rest
		// pass the plugin's SDK and are caught by the host's checks.
		if conn != "panic" && conn != "nil" && !errors.Is(err, auth.ErrInvalidResult) {
			t.Errorf("%s: not an ErrInvalidResult: %v", conn, err)
		}
	}
	req := *pskRequest
	req.Connection = "long-error"
	if _, err := a.Make(context.Background(), &req); err == nil || len(err.Error()) > auth.MaxErrorLen+200 {
		t.Errorf("long error passed through: %d bytes", len(err.Error()))
	}
	req.Connection = "panic"
	if err := a.Verify(context.Background(), &req); err == nil || !strings.Contains(err.Error(), "plugin panicked") {
		t.Errorf("Verify panic: err = %v", err)
	}
	// The plugin survived its panics.
	req.Connection = "fine"
	if _, err := a.Make(context.Background(), &req); err != nil {
		t.Errorf("after garbage: %v", err)
	}
}

func TestExampleThirdPartyPlugin(t *testing.T) {
	t.Setenv("VEIL_EXAMPLE_PSK", "secret from the environment")
	h, _ := newHost(t)
	if err := h.Start(context.Background(), "keystore", "env", examplePlugin); err != nil {
		t.Fatal(err)
	}
	configure(t, h, "keystore", "env", `prefix = "VEIL_EXAMPLE_"`)
	ks, _ := h.KeyStore("env")
	s, err := ks.Secret(context.Background(), "env:VEIL_EXAMPLE_PSK")
	if err != nil || string(s) != "secret from the environment" {
		t.Fatalf("Secret = %q, %v", s, err)
	}
	if _, err := ks.Secret(context.Background(), "env:HOME"); err == nil || !strings.Contains(err.Error(), "prefix") {
		t.Errorf("variable outside the prefix: err = %v", err)
	}
}

// dataplaneState reads the test dataplane plugin's state file.
func dataplaneState(t *testing.T, path string) (sas []string, policies int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		SAs      []string
		Policies int
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st.SAs, st.Policies
}

func TestKillDataplaneRestoresState(t *testing.T) {
	t.Setenv("VEIL_TESTPLUGIN", "dataplane")
	h, _ := newHost(t)
	if err := h.Start(context.Background(), "dataplane", "test", testPluginBin); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state.json")
	configure(t, h, "dataplane", "test", `state_file = "`+state+`"`)
	dp, _ := h.Dataplane("test")
	restarted := make(chan struct{}, 1)
	dp.OnRestart(func(context.Context) { restarted <- struct{}{} })
	events, err := dp.Events(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	var keys []provider.SAKey
	for i := range 3 {
		spi, err := dp.AllocateSPI(ctx, a, b)
		if err != nil {
			t.Fatal(err)
		}
		sa := &provider.ChildSA{ReqID: uint32(i + 1), SPI: spi, Src: a, Dst: b, Mode: provider.Transport,
			Encryption: "aes-gcm-16", EncKey: bytes.Repeat([]byte{byte(i)}, 20)}
		if err := dp.InstallSA(ctx, sa); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, provider.SAKey{Dst: b, SPI: spi})
	}
	for _, dir := range []provider.Direction{provider.In, provider.Out} {
		p := &provider.Policy{ReqID: 1, Dir: dir, Action: provider.Protect, Mode: provider.Transport,
			Local:  provider.TrafficSelector{Start: a, End: a, EndPort: 65535},
			Remote: provider.TrafficSelector{Start: b, End: b, EndPort: 65535}}
		if err := dp.InstallPolicy(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := dp.DeleteSA(ctx, keys[2]); err != nil {
		t.Fatal(err)
	}
	keys = keys[:2]
	if sas, pols := dataplaneState(t, state); len(sas) != 2 || pols != 2 {
		t.Fatalf("before the crash the plugin has %d SAs and %d policies", len(sas), pols)
	}

	counters := func() error { _, err := dp.Counters(ctx, keys); return err }
	stop := make(chan struct{})
	_, _, wait := load(t, stop, counters)
	time.Sleep(100 * time.Millisecond)
	old := killPlugin(t, h, "dataplane", "test")
	if err := os.Remove(state); err != nil { // the new process writes it afresh
		t.Fatal(err)
	}
	waitRestarted(t, h, "dataplane", "test", old)
	waitSucceeds(t, "Counters after restart", counters)
	close(stop)
	wait()
	select {
	case <-restarted:
	case <-time.After(5 * time.Second):
		t.Fatal("OnRestart hook not called")
	}
	sas, pols := dataplaneState(t, state)
	if len(sas) != 2 || pols != 2 {
		t.Fatalf("after the restart the plugin has SAs %v and %d policies; want the 2 SAs and 2 policies installed before", sas, pols)
	}
	for _, k := range keys {
		want := k.Dst.String() + "/" + itoa(k.SPI)
		if !strings.Contains(strings.Join(sas, " "), want) {
			t.Errorf("SA %s not re-installed (have %v)", want, sas)
		}
	}

	// Events: the subscription made before the crash still delivers, and
	// the plugin's malformed events never reach the engine.
	spi, _ := dp.AllocateSPI(ctx, a, b)
	if err := dp.InstallSA(ctx, &provider.ChildSA{ReqID: 999, SPI: spi, Src: a, Dst: b, Mode: provider.Transport,
		Encryption: "aes-gcm-16", EncKey: make([]byte, 20)}); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-events:
			switch e.Kind {
			case provider.AddressChange:
				if e.Addr != netip.MustParseAddr("192.0.2.77") {
					t.Errorf("address change for %v", e.Addr)
				}
			case provider.SoftExpire:
				if e.SA.SPI != spi {
					t.Errorf("soft expire of SPI %#x, want %#x", e.SA.SPI, spi)
				}
				return
			default:
				t.Errorf("malformed event reached the engine: %+v", e)
			}
		case <-timeout:
			t.Fatal("no soft expire event after the restart")
		}
	}
}

func itoa(v uint32) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestCrashLoggedWithStderr: a plugin that dies of a panic outside any call
// is restarted, and the host's log shows the panic from the plugin's stderr.
func TestCrashLoggedWithStderr(t *testing.T) {
	t.Setenv("VEIL_TESTPLUGIN", "garbage")
	h, logs := newHost(t)
	if err := h.Start(context.Background(), "auth", "garbage", testPluginBin); err != nil {
		t.Fatal(err)
	}
	inst, _ := h.instance("auth", "garbage")
	old := inst.pid()
	a, _ := h.Authenticator("garbage")
	req := *pskRequest
	req.Connection = "crash"
	if _, err := a.Make(context.Background(), &req); err == nil {
		t.Fatal("Make on a crashing plugin succeeded")
	} else if !cleanCallError(err) {
		t.Fatalf("unclean error: %v", err)
	}
	waitRestarted(t, h, "auth", "garbage", old)
	req.Connection = "fine"
	waitSucceeds(t, "Make after the crash", func() error { _, err := a.Make(context.Background(), &req); return err })
	if !strings.Contains(logs.String(), "testplugin crashed on purpose") {
		t.Errorf("the plugin's panic is not in the host's log:\n%s", logs.String())
	}
}

// TestHungHealthRestarts: a plugin that stops answering health checks is
// restarted after HealthFailures checks in a row.
func TestHungHealthRestarts(t *testing.T) {
	t.Setenv("VEIL_TESTPLUGIN", "hang-health")
	h, logs := newHost(t)
	if err := h.Start(context.Background(), "auth", "hung", testPluginBin); err != nil {
		t.Fatal(err)
	}
	inst, _ := h.instance("auth", "hung")
	waitRestarted(t, h, "auth", "hung", inst.pid())
	if !strings.Contains(logs.String(), "health checks failed in a row") {
		t.Errorf("restart reason not logged:\n%s", logs.String())
	}
}

func TestGarbageKeystoreRejected(t *testing.T) {
	t.Setenv("VEIL_TESTPLUGIN", "garbage-keystore")
	h, _ := newHost(t)
	if err := h.Start(context.Background(), "keystore", "garbage", testPluginBin); err != nil {
		t.Fatal(err)
	}
	ks, _ := h.KeyStore("garbage")
	if _, err := ks.Secret(context.Background(), "x:y"); err == nil || !strings.Contains(err.Error(), "secret of 8193 bytes") {
		t.Errorf("oversized secret: err = %v", err)
	}
	signer, err := ks.Signer(context.Background(), "x:y")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signer.Sign(rand.Reader, nil, crypto.Hash(0)); err == nil || !strings.Contains(err.Error(), "signature of 0 bytes") {
		t.Errorf("empty signature: err = %v", err)
	}
}

// A dataplane plugin that breaks the rules is refused call by call: no
// panic, no reserved or repeated SPI reaches the engine, and the plugin
// stays in service.
func TestGarbageDataplaneRejected(t *testing.T) {
	t.Setenv("VEIL_TESTPLUGIN", "garbage-dataplane")
	h, _ := newHost(t)
	ctx := context.Background()
	if err := h.Start(ctx, "dataplane", "garbage", testPluginBin); err != nil {
		t.Fatal(err)
	}
	dp, err := h.Dataplane("garbage")
	if err != nil {
		t.Fatal(err)
	}
	local := netip.MustParseAddr("192.0.2.1")
	if _, err := dp.AllocateSPI(ctx, netip.MustParseAddr("192.0.2.7"), local); err == nil || !strings.Contains(err.Error(), "SPI 7 is reserved") {
		t.Errorf("reserved SPI: err = %v", err)
	}
	peer := netip.MustParseAddr("198.51.100.1")
	first, err := dp.AllocateSPI(ctx, peer, local)
	if err != nil {
		t.Fatalf("first SPI: %v", err)
	}
	var again error
	for range 3 { // from the pool or from the plugin: the same SPI each time
		if _, again = dp.AllocateSPI(ctx, peer, local); again == nil {
			break
		}
	}
	if again == nil || !strings.Contains(again.Error(), "twice") {
		t.Errorf("SPI %08x handed out again: err = %v", first, again)
	}
	keys := []provider.SAKey{{Dst: local, SPI: 0x1000}, {Dst: local, SPI: 0x1001}}
	if _, err := dp.Counters(ctx, keys); err == nil {
		t.Error("counters for one of two SAs accepted")
	}
	sa := &provider.ChildSA{ReqID: 1, SPI: first, Inbound: true, Src: peer, Dst: local, Mode: provider.Transport,
		Encryption: "aes-gcm-16", EncKey: bytes.Repeat([]byte{7}, 20)}
	err = dp.InstallChild(ctx, []*provider.ChildSA{sa}, nil)
	if err == nil || len(err.Error()) > 2*dataplane.MaxErrorLen {
		t.Errorf("InstallChild with a 100 kB error: %d bytes of error", len(fmt.Sprint(err)))
	}
	if sas, _ := dp.Installed(); sas != 0 {
		t.Errorf("%d SAs recorded after a failed install", sas)
	}
	if st := h.List(); len(st) != 1 || st[0].State != "running" || st[0].Restarts != 0 {
		t.Errorf("plugin after garbage replies: %+v", st)
	}
}

// A config the plugin refused is not what a restart replays: the restarted
// plugin gets the last config it accepted.
func TestRefusedConfigNotReplayed(t *testing.T) {
	t.Setenv("VEIL_TESTPLUGIN", "dataplane")
	h, _ := newHost(t)
	ctx := context.Background()
	if err := h.Start(ctx, "dataplane", "test", testPluginBin); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(t.TempDir(), "state.json")
	if err := h.Configure(ctx, "dataplane", "test", cty.ObjectVal(map[string]cty.Value{"state_file": cty.StringVal(good)})); err != nil {
		t.Fatal(err)
	}
	// A list where the plugin wants a string: its Configure refuses it.
	bad := cty.ObjectVal(map[string]cty.Value{"state_file": cty.ListVal([]cty.Value{cty.StringVal("x")})})
	if err := h.Configure(ctx, "dataplane", "test", bad); err == nil || !strings.Contains(err.Error(), "rejected its config") {
		t.Fatalf("refused config: err = %v", err)
	}
	os.Remove(good)
	old := killPlugin(t, h, "dataplane", "test")
	waitRestarted(t, h, "dataplane", "test", old)
	// The restarted plugin writes its state where the accepted config says.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(good); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted plugin did not get the accepted config (no state file); plugins: %+v", h.List())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := h.List(); len(st) != 1 || st[0].State != "running" {
		t.Errorf("after the restart: %+v", st)
	}
}
