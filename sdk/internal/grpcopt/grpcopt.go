// Package grpcopt is how a plugin's gRPC server is set up. A plugin
// connection carries one long-lived stream of small messages; gRPC's
// dynamic flow-control windows probe the link with a BDP ping for each
// burst of data received, which on a quiet connection adds frames and
// wake-ups to every call. A fixed window (1 MiB, far above what a stream
// of AUTH requests or SA installs has in flight) turns the probing off:
// one streamed round trip cost ~65 us of CPU (both processes) before,
// ~50 us after (core/pluginhost BenchmarkAuthVerifyStreamOneCaller).
package grpcopt

import "google.golang.org/grpc"

// Window is the fixed HTTP/2 flow-control window of both directions.
const Window = 1 << 20

// NewServer is go-plugin's ServeConfig.GRPCServer for Veil plugins.
func NewServer(opts []grpc.ServerOption) *grpc.Server {
	return grpc.NewServer(append(opts, grpc.InitialWindowSize(Window), grpc.InitialConnWindowSize(Window))...)
}
