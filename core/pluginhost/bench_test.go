package pluginhost

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/sdk/auth"
)

// Plugin RPC cost per AUTH verification across a real process boundary
// (the "echo" test plugin accepts every request), 64 concurrent callers as
// on a busy responder. cpu-us/op is the CPU of both processes per call
// (getrusage of the host, /proc/<pid>/stat of the plugin): what a
// handshake pays for its plugin round trip. Compare Stream (what the host
// uses) with Unary (one gRPC call per request):
//
//	go test -run '^$' -bench AuthVerify -benchtime 3s ./core/pluginhost/
func BenchmarkAuthVerifyStream(b *testing.B) {
	benchAuthVerify(b, func(c *auth.Client, ctx context.Context, r *auth.Request) error { return c.Verify(ctx, r) })
}

func BenchmarkAuthVerifyUnary(b *testing.B) {
	benchAuthVerify(b, func(c *auth.Client, ctx context.Context, r *auth.Request) error { return c.VerifyUnary(ctx, r) })
}

// BenchmarkAuthVerifyStreamOneCaller is the stream with one caller at a
// time: a quiet responder, where each call pays the wake-ups of both
// processes alone.
func BenchmarkAuthVerifyStreamOneCaller(b *testing.B) {
	oneCaller = true
	defer func() { oneCaller = false }()
	benchAuthVerify(b, func(c *auth.Client, ctx context.Context, r *auth.Request) error { return c.Verify(ctx, r) })
}

var oneCaller bool

func benchAuthVerify(b *testing.B, verify func(*auth.Client, context.Context, *auth.Request) error) {
	b.Setenv("VEIL_TESTPLUGIN", "echo")
	h, err := New(Options{Executable: os.Args[0], Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	if err := h.Start(context.Background(), "auth", "echo", testPluginBin); err != nil {
		b.Fatal(err)
	}
	inst, _ := h.instance("auth", "echo")
	kc, err := inst.current()
	if err != nil {
		b.Fatal(err)
	}
	c := kc.(*auth.Client)
	req := &auth.Request{
		Connection: "bench", Role: auth.Responder, PRF: 5, Method: 2, Data: make([]byte, 32),
		LocalID:      auth.Identity{Type: 2, Data: []byte("responder.example")},
		RemoteID:     auth.Identity{Type: 2, Data: []byte("initiator.example")},
		SignedOctets: make([]byte, 400), // IKE_SA_INIT with X25519 + nonce + prf output
	}
	ctx := context.Background()
	if err := verify(c, ctx, req); err != nil {
		b.Fatal(err)
	}
	pid := inst.pid()
	hostCPU, pluginCPU := selfCPU(), procCPU(b, pid)
	b.ResetTimer()
	if oneCaller {
		for range b.N {
			if err := verify(c, ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		b.SetParallelism(32) // x GOMAXPROCS callers
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := verify(c, ctx, req); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.StopTimer()
	host, plugin := selfCPU()-hostCPU, procCPU(b, pid)-pluginCPU
	b.ReportMetric(float64((host+plugin).Microseconds())/float64(b.N), "cpu-us/op")
	b.ReportMetric(float64(host.Microseconds())/float64(b.N), "host-cpu-us/op")
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU reads utime+stime of pid (clock ticks of 10 ms on Linux).
func procCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}
