package e2e

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/test/netns"
)

// Two veild over IPv6 only: IKE on UDP over IPv6, a transport-mode SA, and
// ICMPv6 echo and TCP crossing the link as ESP only.
func TestIPv6TransportMode(t *testing.T) {
	netns.Require(t)
	p := &pair{a: netns.New(t, "a6"), b: netns.New(t, "b6"), aAddr: "fd70::1", bAddr: "fd70::2"}
	var aIf string
	aIf, p.bIf = netns.Link(t, p.a, []string{p.aAddr + "/64"}, p.b, []string{p.bAddr + "/64"})
	p.ca, p.cb = configs(t, p.aAddr, p.bAddr, p.bAddr)
	p.cb.Remote = p.aAddr
	p.start(t)
	p.da.waitEstablished()
	p.db.waitEstablished()
	l := p.da.sas()
	if s := l.IKESAs[0]; !strings.HasPrefix(s.Local, "[fd70::1]") || !strings.HasPrefix(s.Remote, "[fd70::2]") {
		t.Fatalf("IKE SA endpoints %s -> %s", s.Local, s.Remote)
	}

	pcap := filepath.Join(t.TempDir(), "wire6.pcap")
	cmd := p.a.Command(context.Background(), "tcpdump", "-n", "-U", "-i", aIf, "-w", pcap, "ip6")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	netns.WaitFor(t, "tcpdump start", 5*time.Second, func() bool { _, err := os.Stat(pcap); return err == nil })
	time.Sleep(300 * time.Millisecond)
	if out, err := p.a.Output("ping", "-6", "-c", "5", "-i", "0.2", "-W", "2", p.bAddr); err != nil {
		t.Fatalf("ping6: %v\n%s", err, out)
	}
	// 1 MiB over TCP, checked byte for byte (sockets opened inside the namespaces).
	payload := bytes.Repeat([]byte("veil over ipv6 "), 1<<20/15)
	var ln net.Listener
	if err := p.b.Do(func() (err error) { ln, err = net.Listen("tcp6", "["+p.bAddr+"]:7070"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		b, _ := io.ReadAll(c)
		got <- b
	}()
	var c net.Conn
	if err := p.a.Do(func() (err error) { c, err = net.DialTimeout("tcp6", "["+p.bAddr+"]:7070", 5*time.Second); return err }); err != nil {
		t.Fatal(err)
	}
	c.SetWriteDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if b := <-got; !bytes.Equal(b, payload) {
		t.Fatalf("TCP over IPv6: received %d bytes, sent %d", len(b), len(payload))
	}
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	count := func(filter string) int {
		out, _ := exec.Command("tcpdump", "-n", "-r", pcap, filter).Output()
		return strings.Count(string(out), "\n")
	}
	esp := count("ip6 proto 50")
	echo := count("icmp6 and (ip6[40] == 128 or ip6[40] == 129)")
	tcp := count("tcp port 7070")
	if esp < 10 || echo != 0 || tcp != 0 {
		t.Fatalf("on the link: %d ESP, %d cleartext echo, %d cleartext TCP segments", esp, echo, tcp)
	}
}
