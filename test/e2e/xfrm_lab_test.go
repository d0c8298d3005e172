package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/veil-ipsec/veil/test/kernellab"
)

// The steady UDP flow during the child rekey: labFlowRate packets/s of 100
// bytes for labFlowSeconds, as the issue asks. The lab's kernel runs under
// qemu TCG: with one vCPU iperf3 reaches only about 4,900 packets/s, with
// two (labSMP) 9,500-9,900 of the 10,000 asked for, with no loss, also
// while another lab runs; the check allows 80 %.
const (
	labFlowRate    = 10000
	labFlowSeconds = 8
	labReplays     = 5
	labSMP         = "2"
)

// TestXFRMVeilToVeilInKernelLab runs two veild with the default (xfrm)
// dataplane inside a kernel that has ESP: establish with PSK; ping and TCP
// through kernel ESP (tcpdump sees only ESP) with veilctl's counters equal
// to the kernel's (ip -s xfrm state) and to what was sent; a captured ESP
// packet replayed, tampered and sent with an unknown SPI is dropped and
// counted; a child rekey under a steady UDP flow loses nothing; terminate,
// and after shutdown no XFRM state or policy is left.
func TestXFRMVeilToVeilInKernelLab(t *testing.T) {
	kernellab.Require(t)
	dir := t.TempDir()
	psk := writePSK(t, dir)
	for _, side := range []struct{ name, local, remote, lid, rid, start string }{
		{"a", "10.80.0.1", "10.80.0.2", "a.test", "b.test", "start"},
		{"b", "10.80.0.2", "10.80.0.1", "b.test", "a.test", "none"},
	} {
		c := peerConfig{Dir: dir, Socket: "/run/veil-" + side.name + ".sock", Listen: side.local,
			Local: side.local, Remote: side.remote, LocalID: side.lid, RemoteID: side.rid, PSKFile: psk,
			StartAction: side.start, IKEProposal: "aes256gcm16-prfsha384-x25519-ke1_mlkem768",
			KernelDataplane: true} // the lab's kernel has ESP: the default dataplane, xfrm
		writeConfig(t, c, filepath.Join(dir, side.name+".hcl"))
	}
	inject := filepath.Join(dir, "espinject")
	if out, err := exec.Command("go", "build", "-o", inject, "../kernellab/espinject").CombinedOutput(); err != nil {
		t.Fatalf("build espinject: %v\n%s", err, out)
	}
	script := filepath.Join(dir, "veil-xfrm.sh")
	os.WriteFile(script, []byte(xfrmLabScript), 0o755)
	out := t.TempDir()
	t.Setenv("KLAB_SMP", labSMP)
	code, console := kernellab.RunDir(t, out, script, veild, veilctl, dir, inject,
		strconv.Itoa(labFlowRate), strconv.Itoa(labFlowSeconds), strconv.Itoa(labReplays))
	if code != 0 || !strings.Contains(console, "VEIL-XFRM-OK") {
		t.Fatalf("guest exit %d:\n%s", code, console)
	}
	t.Log(lastLines(console, 12))
	s := func(name string) labSnap { return readLabSnap(t, out, name) }

	t.Run("counters", func(t *testing.T) {
		c0, c1, c2 := s("c0"), s("c1"), s("c2")
		for _, x := range []labSnap{c0, c1, c2} {
			x.veilMatchesKernel(t)
		}
		// 20 pings of 100 bytes: exactly 20 packets each way on each side.
		for _, d := range []struct {
			what string
			got  uint64
		}{
			{"a out", c1.a.PacketsOut - c0.a.PacketsOut}, {"b in", c1.b.PacketsIn - c0.b.PacketsIn},
			{"b out", c1.b.PacketsOut - c0.b.PacketsOut}, {"a in", c1.a.PacketsIn - c0.a.PacketsIn},
		} {
			if d.got != 20 {
				t.Errorf("ping -c 20: %s packets rose by %d, want 20", d.what, d.got)
			}
		}
		pingBytes := c1.a.BytesOut - c0.a.BytesOut
		if got := c1.b.BytesIn - c0.b.BytesIn; got != pingBytes {
			t.Errorf("ping: a sent %d bytes, b received %d", pingBytes, got)
		}
		// Transport mode counts what follows the IP header: 8 bytes of
		// ICMP header and 100 of data per echo.
		if pingBytes != 20*108 {
			t.Errorf("ping -c 20 -s 100: %d bytes counted, want 20 x 108", pingBytes)
		}
		// 1 MiB of TCP: what a sent is what b received, and at least the data.
		sent := c2.a.BytesOut - c1.a.BytesOut
		if got := c2.b.BytesIn - c1.b.BytesIn; got != sent {
			t.Errorf("TCP: a sent %d bytes, b received %d", sent, got)
		}
		if p, q := c2.a.PacketsOut-c1.a.PacketsOut, c2.b.PacketsIn-c1.b.PacketsIn; p != q {
			t.Errorf("TCP: a sent %d packets, b received %d", p, q)
		}
		if data := iperfTCPBytes(t, filepath.Join(out, "tcp.json")); sent < data {
			t.Errorf("TCP: iperf3 sent %d bytes but the SA counted only %d", data, sent)
		} else {
			t.Logf("TCP: iperf3 sent %d bytes; the SA counted %d (with headers) in %d packets", data, sent, c2.a.PacketsOut-c1.a.PacketsOut)
		}
	})

	t.Run("replay-tamper-wrong-spi", func(t *testing.T) {
		r0, r1 := s("r0"), s("r1")
		delta := func(k string) int64 { return r1.bStat[k] - r0.bStat[k] }
		for _, c := range []struct {
			counter string
			want    int64
		}{{"XfrmInStateSeqError", labReplays}, {"XfrmInStateProtoError", 1}, {"XfrmInNoStates", 1}} {
			if got := delta(c.counter); got != c.want {
				t.Errorf("B %s rose by %d, want %d", c.counter, got, c.want)
			}
		}
		st := r1.kernelB[r1.b.spiIn]
		if st.replay-r0.kernelB[r1.b.spiIn].replay != labReplays || st.failed-r0.kernelB[r1.b.spiIn].failed != 1 {
			t.Errorf("B inbound SA stats: replay %d failed %d (before %+v), want +%d and +1", st.replay, st.failed, r0.kernelB[r1.b.spiIn], labReplays)
		}
		if got := r1.b.PacketsIn - r0.b.PacketsIn; got != 1 {
			t.Errorf("B inbound SA accepted %d packets, want 1 (the original only)", got)
		}
		sink, _ := os.ReadFile(filepath.Join(out, "sink.txt"))
		if strings.TrimSpace(string(sink)) != "delivered 1" {
			t.Errorf("UDP sink: %q, want the probe delivered once", sink)
		}
		inj, _ := os.ReadFile(filepath.Join(out, "inject.txt"))
		t.Logf("%s%s", inj, sink)
	})

	t.Run("rekey-under-flow", func(t *testing.T) {
		f0, f1 := s("f0"), s("f1")
		if f0.a.spiIn == f1.a.spiIn || f0.a.spiOut == f1.a.spiOut {
			t.Errorf("child SPIs unchanged by the rekey: %08x/%08x", f1.a.spiIn, f1.a.spiOut)
		}
		var r struct {
			End struct {
				Sum struct {
					Packets     int64 `json:"packets"`
					LostPackets int64 `json:"lost_packets"`
				} `json:"sum"`
			} `json:"end"`
		}
		data, _ := os.ReadFile(filepath.Join(out, "udp.json"))
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatalf("iperf3 UDP output: %v\n%s", err, data)
		}
		sum := r.End.Sum
		t.Logf("flow: %d packets sent at %d/s target (%d/s achieved), %d lost", sum.Packets, labFlowRate, sum.Packets/labFlowSeconds, sum.LostPackets)
		if sum.Packets < labFlowRate*labFlowSeconds*8/10 {
			t.Errorf("only %d packets sent in %d s: the flow was not steady at %d/s", sum.Packets, labFlowSeconds, labFlowRate)
		}
		// A datagram the receiving socket had no room for (the emulated
		// CPU was busy) is not lost to the rekey; every other one is.
		rcvbuf := udpRcvbufErrors(t, filepath.Join(out, "f1.B.udp")) - udpRcvbufErrors(t, filepath.Join(out, "f0.B.udp"))
		if sum.LostPackets > rcvbuf {
			t.Errorf("%d of %d packets lost across the rekey (%d of them to B's socket buffer)", sum.LostPackets, sum.Packets, rcvbuf)
		} else if sum.LostPackets > 0 {
			t.Logf("%d packets dropped by B's full socket buffer (Udp RcvbufErrors), none by IPsec", sum.LostPackets)
		}
		for _, k := range []string{"XfrmInNoStates", "XfrmInStateInvalid", "XfrmInStateSeqError"} {
			if d := f1.bStat[k] - f0.bStat[k]; d != 0 {
				t.Errorf("B %s rose by %d during the rekey", k, d)
			}
		}
		for _, k := range []string{"XfrmOutNoStates", "XfrmOutPolBlock", "XfrmOutStateInvalid"} {
			if d := f1.aStat[k] - f0.aStat[k]; d != 0 {
				t.Errorf("A %s rose by %d during the rekey", k, d)
			}
		}
	})
}

// labSnap is one snapshot the lab script took of both sides: veilctl's
// child SA (the only one), the kernel's SAs by SPI and /proc/net/xfrm_stat.
type labSnap struct {
	name             string
	a, b             labChild
	kernelA, kernelB map[uint32]kernelSA
	aStat, bStat     map[string]int64
}

type labChild struct {
	spiIn, spiOut                            uint32
	BytesIn, BytesOut, PacketsIn, PacketsOut uint64
}

type kernelSA struct{ bytes, packets, replay, failed uint64 }

func readLabSnap(t *testing.T, dir, name string) labSnap {
	t.Helper()
	read := func(f string) string {
		data, err := os.ReadFile(filepath.Join(dir, name+"."+f))
		if err != nil {
			t.Fatalf("snapshot %s: %v", name, err)
		}
		return string(data)
	}
	return labSnap{name: name, a: parseChild(t, read("a.json")), b: parseChild(t, read("b.json")),
		kernelA: parseXFRMState(read("A.xfrm")), kernelB: parseXFRMState(read("B.xfrm")),
		aStat: parseXFRMStat(read("A.stat")), bStat: parseXFRMStat(read("B.stat"))}
}

func parseChild(t *testing.T, js string) labChild {
	t.Helper()
	var l saList
	if err := json.Unmarshal([]byte(js), &l); err != nil || len(l.IKESAs) != 1 || len(l.IKESAs[0].Children) != 1 {
		t.Fatalf("veilctl sas --json: want one IKE SA with one child (%v):\n%s", err, js)
	}
	c := l.IKESAs[0].Children[0]
	spi := func(s string) uint32 {
		v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 32)
		if err != nil {
			t.Fatalf("SPI %q: %v", s, err)
		}
		return uint32(v)
	}
	return labChild{spiIn: spi(c.SPIIn), spiOut: spi(c.SPIOut), BytesIn: c.BytesIn, BytesOut: c.BytesOut, PacketsIn: c.PacketsIn, PacketsOut: c.PacketsOut}
}

var (
	xfrmSPI      = regexp.MustCompile(`proto esp spi 0x([0-9a-f]+)`)
	xfrmLifetime = regexp.MustCompile(`(\d+)\(bytes\), (\d+)\(packets\)`)
	xfrmStats    = regexp.MustCompile(`replay-window \d+ replay (\d+) failed (\d+)`)
)

// parseXFRMState reads `ip -s xfrm state`: per SA (a block starting with
// "src"), its SPI, current bytes/packets and replay/integrity failures.
func parseXFRMState(s string) map[uint32]kernelSA {
	m := map[uint32]kernelSA{}
	for _, block := range strings.Split("\n"+s, "\nsrc ")[1:] {
		spi := xfrmSPI.FindStringSubmatch(block)
		if spi == nil {
			continue
		}
		var k kernelSA
		if l := xfrmLifetime.FindStringSubmatch(block); l != nil {
			k.bytes, _ = strconv.ParseUint(l[1], 10, 64)
			k.packets, _ = strconv.ParseUint(l[2], 10, 64)
		}
		if st := xfrmStats.FindStringSubmatch(block); st != nil {
			k.replay, _ = strconv.ParseUint(st[1], 10, 64)
			k.failed, _ = strconv.ParseUint(st[2], 10, 64)
		}
		v, _ := strconv.ParseUint(spi[1], 16, 32)
		m[uint32(v)] = k
	}
	return m
}

func parseXFRMStat(s string) map[string]int64 {
	m := map[string]int64{}
	for _, line := range strings.Split(s, "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			m[f[0]], _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	return m
}

// veilMatchesKernel: what veilctl reports for the child is the kernel's
// count for the same SAs, on both sides, and b received what a sent.
func (x labSnap) veilMatchesKernel(t *testing.T) {
	t.Helper()
	for _, side := range []struct {
		name   string
		c      labChild
		kernel map[uint32]kernelSA
	}{{"a", x.a, x.kernelA}, {"b", x.b, x.kernelB}} {
		out, okOut := side.kernel[side.c.spiOut]
		in, okIn := side.kernel[side.c.spiIn]
		if !okOut || !okIn {
			t.Errorf("%s: %s: kernel has no SA for SPI %08x or %08x", x.name, side.name, side.c.spiOut, side.c.spiIn)
			continue
		}
		if got := (labChild{spiIn: side.c.spiIn, spiOut: side.c.spiOut, BytesIn: in.bytes, BytesOut: out.bytes, PacketsIn: in.packets, PacketsOut: out.packets}); got != side.c {
			t.Errorf("%s: %s: veilctl %+v, kernel %+v", x.name, side.name, side.c, got)
		}
	}
	if x.a.spiOut != x.b.spiIn || x.a.PacketsOut != x.b.PacketsIn || x.a.BytesOut != x.b.BytesIn {
		t.Errorf("%s: a sent %d packets/%d bytes on %08x, b received %d/%d on %08x", x.name,
			x.a.PacketsOut, x.a.BytesOut, x.a.spiOut, x.b.PacketsIn, x.b.BytesIn, x.b.spiIn)
	}
}

func iperfTCPBytes(t *testing.T, path string) uint64 {
	t.Helper()
	var r struct {
		End struct {
			SumSent struct {
				Bytes uint64 `json:"bytes"`
			} `json:"sum_sent"`
		} `json:"end"`
	}
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &r); err != nil || r.End.SumSent.Bytes == 0 {
		t.Fatalf("iperf3 TCP output (%v):\n%s", err, data)
	}
	return r.End.SumSent.Bytes
}

// xfrmLabScript runs in the guest: VEILD VEILCTL DIR ESPINJECT RATE SECONDS
// REPLAYS. Snapshots go to $KLAB_OUT as NAME.{a,b}.json (veilctl),
// NAME.{A,B}.xfrm (ip -s xfrm state) and NAME.{A,B}.stat (xfrm_stat).
const xfrmLabScript = `#!/bin/bash
set -eu
VEILD=$1 VEILCTL=$2 DIR=$3 INJ=$4 RATE=$5 SECS=$6 REPLAYS=$7 OUT=${KLAB_OUT:-/tmp}
ip netns add A; ip netns add B
ip link add va netns A type veth peer name vb netns B
ip -n A addr add 10.80.0.1/24 dev va; ip -n B addr add 10.80.0.2/24 dev vb
for n in A B; do ip -n $n link set lo up; done
ip -n A link set va up; ip -n B link set vb up
ip netns exec B "$VEILD" --config "$DIR/b.hcl" >"$OUT/b.log" 2>&1 &
ip netns exec A "$VEILD" --config "$DIR/a.hcl" >"$OUT/a.log" 2>&1 &
ctl() { "$VEILCTL" --socket /run/veil-$1.sock "${@:2}"; }
snap() {
  ctl a sas --json >"$OUT/$1.a.json"; ctl b sas --json >"$OUT/$1.b.json"
  ip -n A -s xfrm state >"$OUT/$1.A.xfrm"; ip -n B -s xfrm state >"$OUT/$1.B.xfrm"
  ip netns exec A cat /proc/net/xfrm_stat >"$OUT/$1.A.stat"
  ip netns exec B cat /proc/net/xfrm_stat >"$OUT/$1.B.stat"
  ip netns exec B grep '^Udp:' /proc/net/snmp >"$OUT/$1.B.udp"
}
up=
for i in $(seq 1 150); do
  if ctl a sas --json 2>/dev/null | grep -q '"state":"INSTALLED"'; then up=1; break; fi
  sleep 0.2
done
if [ -z "$up" ]; then echo "SA did not come up"; cat "$OUT/a.log" "$OUT/b.log"; exit 1; fi
ctl a sas
ip netns exec B tcpdump -n -i vb -w "$OUT/wire.pcap" 'esp or icmp or tcp port 5201 or udp port 5202 or udp port 5300' 2>/dev/null &
TD=$!
sleep 1

echo "== counters: ping -c 20 -s 100, then 1 MiB TCP"
snap c0
ip netns exec A ping -q -c 20 -i 0.05 -s 100 -W 2 10.80.0.2
snap c1
ip netns exec B iperf3 -s -1 -D -p 5201
sleep 0.5
ip netns exec A iperf3 -c 10.80.0.2 -p 5201 -n 1M -J >"$OUT/tcp.json"
sleep 0.5
snap c2

echo "== replay, tampered, wrong SPI"
ip netns exec B "$INJ" sink -listen 10.80.0.2:5300 -for 60s >"$OUT/sink.txt" 2>"$OUT/sink.err" &
SINK=$!
for i in $(seq 1 50); do grep -q listening "$OUT/sink.err" 2>/dev/null && break; sleep 0.1; done
snap r0
ip netns exec A "$INJ" inject -if va -to 10.80.0.2:5300 -replays "$REPLAYS" | tee "$OUT/inject.txt"
sleep 1
snap r1
kill -TERM $SINK; wait $SINK || true
cat "$OUT/sink.txt"

echo "== child rekey under a $RATE packets/s UDP flow for $SECS s"
# Socket buffers large enough that a busy emulated CPU does not drop
# datagrams at the receiver (those would show as Udp RcvbufErrors).
sysctl -qw net.core.rmem_max=16777216 net.core.wmem_max=16777216
ip netns exec B iperf3 -s -1 -D -p 5202
sleep 0.5
snap f0
ip netns exec A iperf3 -c 10.80.0.2 -p 5202 -u -l 100 -w 4M -b $((RATE * 800)) -t "$SECS" -J >"$OUT/udp.json" &
FLOW=$!
sleep $((SECS / 2))
ctl a rekey lab/all
wait $FLOW
sleep 1
snap f1
grep -E '"(packets|lost_packets)"' "$OUT/udp.json" | tail -2
ip netns exec A ping -c 2 -W 2 10.80.0.2

sleep 0.5; kill $TD; wait $TD || true
esp=$(tcpdump -n -r "$OUT/wire.pcap" esp 2>/dev/null | wc -l)
clear=$(tcpdump -n -r "$OUT/wire.pcap" 'icmp or tcp or udp' 2>/dev/null | wc -l)
echo "wire: esp=$esp clear=$clear"
[ "$esp" -gt 0 ] && [ "$clear" -eq 0 ] || { echo "traffic not protected by kernel ESP"; exit 1; }
ctl a terminate lab
for n in A B; do
  pkill -TERM -f "veild --config $DIR/$(echo $n | tr AB ab).hcl" || true
done
sleep 3
left=$( (ip -n A xfrm state; ip -n B xfrm state; ip -n A xfrm policy; ip -n B xfrm policy) | wc -l)
echo "left after shutdown: $left"
[ "$left" -eq 0 ] || { ip -n A xfrm state; ip -n A xfrm policy; exit 1; }
echo VEIL-XFRM-OK
`

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// udpRcvbufErrors reads RcvbufErrors from the two "Udp:" lines of
// /proc/net/snmp saved in path.
func udpRcvbufErrors(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		t.Fatalf("%s: want the two Udp lines of /proc/net/snmp, got %q", path, b)
	}
	names, values := strings.Fields(lines[0]), strings.Fields(lines[1])
	for i, n := range names {
		if n == "RcvbufErrors" && i < len(values) {
			v, _ := strconv.ParseInt(values[i], 10, 64)
			return v
		}
	}
	t.Fatalf("%s: no RcvbufErrors", path)
	return 0
}
