package netns

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs f on an OS thread that has entered the namespace, so that the
// sockets f opens and the processes it starts (exec.Cmd.Start) live inside
// it: a Go OCSP responder or a FreeRADIUS started by a library, for example.
// Goroutines f starts run on other threads, in the host's namespace; sockets
// keep the namespace they were created in.
func (n *NS) Do(f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return err
	}
	defer orig.Close()
	target, err := os.Open("/var/run/netns/" + n.Name)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("entering namespace %s: %w", n.Name, err)
	}
	ferr := f()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread cannot go back: keep it locked so the runtime retires it
		// instead of reusing it for other goroutines.
		runtime.LockOSThread()
		return fmt.Errorf("leaving namespace %s: %w", n.Name, err)
	}
	return ferr
}
