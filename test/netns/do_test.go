package netns

import (
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// A listener opened inside Do lives in the namespace: reachable from a
// process in the namespace, not from the host.
func TestDoOpensSocketsInside(t *testing.T) {
	Require(t)
	ns := New(t, "do")
	var ln net.Listener
	if err := ns.Do(func() (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("inside\n"))
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	out, err := ns.Output("bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/"+strconv.Itoa(port)+"; cat <&3")
	if err != nil || strings.TrimSpace(out) != "inside" {
		t.Fatalf("from inside the namespace: %q %v", out, err)
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatal("the listener is reachable from the host namespace")
	}
	// A process started inside Do runs in the namespace too.
	var cmd *exec.Cmd
	if err := ns.Do(func() error {
		cmd = exec.Command("ip", "-o", "link")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := ns.Do(func() error {
		out, err := cmd.Output()
		if err == nil && strings.Count(string(out), "\n") != 1 {
			t.Errorf("links seen by a process started in Do: %q (want only lo)", out)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
