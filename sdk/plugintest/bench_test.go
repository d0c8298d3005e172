package plugintest

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/sdk/auth"
)

// In-process variants of core/pluginhost's BenchmarkAuthVerify*: both ends
// in one process over a real unix socket and gRPC, without TLS and without
// a process switch. They show the SDK's own share of the cost:
//
//	go test -run '^$' -bench . ./sdk/plugintest/
func BenchmarkAuthVerifyStreamInProcess(b *testing.B) {
	c := AuthClient(b, &auth.Mock{})
	benchVerify(b, func(ctx context.Context, r *auth.Request) error { return c.Verify(ctx, r) })
}

func BenchmarkAuthVerifyUnaryInProcess(b *testing.B) {
	c := AuthClient(b, &auth.Mock{})
	benchVerify(b, func(ctx context.Context, r *auth.Request) error { return c.VerifyUnary(ctx, r) })
}

func benchVerify(b *testing.B, verify func(context.Context, *auth.Request) error) {
	req := &auth.Request{Connection: "bench", PRF: 5, Method: 2, Data: make([]byte, 32), SignedOctets: make([]byte, 400),
		LocalID: auth.Identity{Type: 2, Data: []byte("responder.example")}, RemoteID: auth.Identity{Type: 2, Data: []byte("initiator.example")}}
	b.SetParallelism(32)
	b.ReportAllocs()
	start := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := verify(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(b.N), "cpu-us/op")
}

// cpuTime is the process's user+system CPU time: wall time means little
// on a machine shared with other work.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
