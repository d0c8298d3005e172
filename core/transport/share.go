package transport

import (
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Sharing the NAT-T port with a userspace dataplane (UDPConfig.ShareNATPort).
//
// RFC 3948 puts IKE and ESP-in-UDP on the same port, 4500. With the kernel's
// XFRM the kernel takes the ESP off our socket; a userspace dataplane runs in
// another process and needs the ESP on a socket of its own (batched reads,
// UDP GRO/GSO). Both sockets join one SO_REUSEPORT group on the same address
// and port, and a classic BPF program picks the member per datagram: the
// kernel runs it with the UDP payload at offset 0, so a zero first word (the
// non-ESP marker) means IKE, anything else ESP. The program returns an index
// into the group in joining order: the IKE socket binds first (index 0), the
// dataplane's after it (index 1). A dataplane that restarts leaves and joins
// again at index 1; while there is none the kernel's fallback hands ESP to
// the IKE socket, which drops it and counts it as non-IKE.

// SharedNATPortMember is the group index of the dataplane's socket.
const SharedNATPortMember = 1

// natPortSteering is the program: ESP (first word not zero) to member 1,
// IKE (non-ESP marker) and anything shorter than 4 bytes to member 0.
func natPortSteering() ([]bpf.RawInstruction, error) {
	return bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 0, Size: 4},                    // first payload word; too short: returns 0
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipTrue: 1}, // non-ESP marker?
		bpf.RetConstant{Val: SharedNATPortMember},            // ESP
		bpf.RetConstant{Val: 0},                              // IKE
	})
}

// ReusePort is a net.ListenConfig Control function that sets SO_REUSEPORT
// before bind; a userspace dataplane uses it to join the group.
func ReusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}

// shareControl sets SO_REUSEPORT and attaches the steering program (before
// bind, so the group exists with its program before anyone else joins).
func shareControl(network, address string, c syscall.RawConn) error {
	if err := ReusePort(network, address, c); err != nil {
		return fmt.Errorf("SO_REUSEPORT: %w", err)
	}
	prog, err := natPortSteering()
	if err != nil {
		return err
	}
	var serr error
	if err := c.Control(func(fd uintptr) {
		fp := unix.SockFprog{Len: uint16(len(prog)), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, &fp)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("SO_ATTACH_REUSEPORT_CBPF: %w", serr)
	}
	return nil
}
