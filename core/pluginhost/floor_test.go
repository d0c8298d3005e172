package pluginhost

import (
	"io"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// BenchmarkProcessRoundTripFloor is the least a plugin round trip can cost
// on this machine: 512 bytes to another Go process over a unix socket and
// back, without gRPC, TLS, HTTP/2 or protobuf, one caller at a time (a
// responder's handshakes do not overlap their plugin calls). cpu-us/op is
// the CPU of both processes per round trip. A handshake that crosses to
// an auth, a keystore and a dataplane plugin pays it at least three times
// (bench/plugin-rpc-budget.txt):
//
//	go test -run '^$' -bench ProcessRoundTripFloor -benchtime 20000x ./core/pluginhost/
func BenchmarkProcessRoundTripFloor(b *testing.B) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "host"), os.NewFile(uintptr(fds[1]), "echo")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "VEIL_ECHO_FLOOR=1", "GOMAXPROCS=1") // as plugins run
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	theirs.Close()
	conn, err := net.FileConn(ours) // the netpoller, as gRPC's connection
	ours.Close()
	if err != nil {
		b.Fatal(err)
	}
	defer func() { conn.Close(); cmd.Wait() }()
	buf := make([]byte, 512)
	roundTrip := func() {
		if _, err := conn.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(conn, buf); err != nil {
			b.Fatal(err)
		}
	}
	roundTrip()
	host, echo := selfCPU(), procCPU(b, cmd.Process.Pid)
	b.ResetTimer()
	for range b.N {
		roundTrip()
	}
	b.StopTimer()
	h, e := selfCPU()-host, procCPU(b, cmd.Process.Pid)-echo
	b.ReportMetric(float64((h+e).Microseconds())/float64(b.N), "cpu-us/op")
	b.ReportMetric(float64(h.Microseconds())/float64(b.N), "host-cpu-us/op")
}

// echoFloor is the other process of BenchmarkProcessRoundTripFloor: it
// sends back what it reads on fd 3 until the host closes it.
func echoFloor() {
	f := os.NewFile(3, "host")
	conn, err := net.FileConn(f)
	if err != nil {
		os.Exit(1)
	}
	buf := make([]byte, 512)
	for {
		if _, err := io.ReadFull(conn, buf); err != nil {
			os.Exit(0)
		}
		if _, err := conn.Write(buf); err != nil {
			os.Exit(0)
		}
	}
}
