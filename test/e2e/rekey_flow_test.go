package e2e

import (
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/veil-ipsec/veil/test/netns"
)

// A child rekey under a steady 10,000 packets/s flow loses no packet
// (make-before-break): iperf3 counts at both ends.
func TestChildRekeyUnderFlowLosesNothing(t *testing.T) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Skip("needs iperf3")
	}
	p := newDirectPair(t)
	p.start(t)
	p.da.waitEstablished()
	p.db.waitEstablished()
	_, _, in0, _ := firstIKE(t, p.da)

	srv := p.b.Command(t.Context(), "iperf3", "-s", "-1", "-p", "5299")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Process.Kill()
	time.Sleep(300 * time.Millisecond)
	// 100-byte datagrams at 8 Mbit/s: 10,000 packets per second for 4 s.
	done := make(chan []byte, 1)
	go func() {
		out, _ := p.a.Output("iperf3", "-c", p.bAddr, "-p", "5299", "-u", "-l", "100", "-b", "8M", "-t", "4", "-J")
		done <- []byte(out)
	}()
	time.Sleep(1500 * time.Millisecond)
	p.da.ctl("rekey", "lab/all")
	netns.WaitFor(t, "child rekeyed", 10*time.Second, func() bool {
		_, _, in, _ := firstIKE(t, p.da)
		return in != in0
	})
	out := <-done
	var r struct {
		End struct {
			Sum struct {
				Packets     int     `json:"packets"`
				LostPackets int     `json:"lost_packets"`
				LostPercent float64 `json:"lost_percent"`
			} `json:"sum"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("iperf3 output: %v\n%s", err, out)
	}
	if r.End.Sum.Packets < 30000 {
		t.Fatalf("only %d packets sent; the flow was not steady", r.End.Sum.Packets)
	}
	if r.End.Sum.LostPackets != 0 {
		t.Errorf("%d of %d packets lost across the rekey", r.End.Sum.LostPackets, r.End.Sum.Packets)
	}
	t.Logf("%d packets, %d lost, across a child rekey", r.End.Sum.Packets, r.End.Sum.LostPackets)
}
