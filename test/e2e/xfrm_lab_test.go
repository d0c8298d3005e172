package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veil-ipsec/veil/test/kernellab"
)

// TestXFRMVeilToVeilInKernelLab runs two veild with the default (xfrm)
// dataplane inside a kernel that has ESP: establish with PSK, ping and TCP
// through kernel ESP (tcpdump sees only ESP), a child rekey, terminate, and
// after shutdown no XFRM state or policy is left.
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
	script := filepath.Join(dir, "veil-xfrm.sh")
	os.WriteFile(script, []byte(`#!/bin/bash
set -eu
VEILD=$1 VEILCTL=$2 DIR=$3 OUT=${KLAB_OUT:-/tmp}
ip netns add A; ip netns add B
ip link add va netns A type veth peer name vb netns B
ip -n A addr add 10.80.0.1/24 dev va; ip -n B addr add 10.80.0.2/24 dev vb
for n in A B; do ip -n $n link set lo up; done
ip -n A link set va up; ip -n B link set vb up
ip netns exec B "$VEILD" --config "$DIR/b.hcl" >"$OUT/b.log" 2>&1 &
ip netns exec A "$VEILD" --config "$DIR/a.hcl" >"$OUT/a.log" 2>&1 &
ctl() { "$VEILCTL" --socket /run/veil-$1.sock "${@:2}"; }
up=
for i in $(seq 1 150); do
  if ctl a sas --json 2>/dev/null | grep -q '"state":"INSTALLED"'; then up=1; break; fi
  sleep 0.2
done
if [ -z "$up" ]; then echo "SA did not come up"; cat "$OUT/a.log" "$OUT/b.log"; exit 1; fi
ctl a sas
ip netns exec B tcpdump -n -i vb -w "$OUT/wire.pcap" 'esp or icmp or tcp port 5201' 2>/dev/null &
TD=$!
sleep 1
ip netns exec A ping -c 3 -W 2 10.80.0.2
ip netns exec B iperf3 -s -1 -D -p 5201
sleep 0.5
ip netns exec A iperf3 -c 10.80.0.2 -p 5201 -n 1M >/dev/null
old=$(ctl a sas --json | grep -o '"spi_in":"[0-9a-f]*"')
ctl a rekey lab/all
new=$(ctl a sas --json | grep -o '"spi_in":"[0-9a-f]*"')
[ "$old" != "$new" ] || { echo "child SPI unchanged after rekey: $old"; exit 1; }
ip netns exec A ping -c 2 -W 2 10.80.0.2
sleep 0.5; kill $TD; wait $TD || true
esp=$(tcpdump -n -r "$OUT/wire.pcap" esp 2>/dev/null | wc -l)
clear=$(tcpdump -n -r "$OUT/wire.pcap" 'icmp or tcp' 2>/dev/null | wc -l)
echo "wire: esp=$esp clear=$clear"
[ "$esp" -gt 0 ] && [ "$clear" -eq 0 ] || { echo "traffic not protected by kernel ESP"; exit 1; }
ip -n A -s xfrm state | grep -c "proto esp" | sed 's/^/xfrm states in A: /'
ctl a terminate lab
for n in A B; do
  pkill -TERM -f "veild --config $DIR/$(echo $n | tr AB ab).hcl" || true
done
sleep 3
left=$( (ip -n A xfrm state; ip -n B xfrm state; ip -n A xfrm policy; ip -n B xfrm policy) | wc -l)
echo "left after shutdown: $left"
[ "$left" -eq 0 ] || { ip -n A xfrm state; ip -n A xfrm policy; exit 1; }
echo VEIL-XFRM-OK
`), 0o755)
	code, out := kernellab.Run(t, script, veild, veilctl, dir)
	if code != 0 || !strings.Contains(out, "VEIL-XFRM-OK") {
		t.Fatalf("guest exit %d:\n%s", code, out)
	}
	t.Log(lastLines(out, 12))
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
