#!/usr/bin/env bash
# make demo: the main job on an embedded default.
#
# Two network namespaces joined by a veth pair, two veild with the userspace
# dataplane, one transport-mode SA (AES-GCM, X25519 + ML-KEM-768), ping and a
# TCP transfer through it, `veilctl sas` from both sides and tcpdump's proof
# that only ESP crosses the link. Cleans up after itself and exits 0.
#
# Authentication is a pre-shared key: X.509 auth (issue 7) has not landed yet;
# the demo switches to a throwaway CA and two certificates when it does.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces)" >&2; exit 1; }
for c in ip tcpdump ping; do command -v $c >/dev/null || { echo "make demo needs $c (apt install iproute2 tcpdump iputils-ping)" >&2; exit 1; }; done

VEILD=$PWD/bin/veild VEILCTL=$PWD/bin/veilctl
A=veil-demo-a B=veil-demo-b
WORK=$(mktemp -d /tmp/veil-demo.XXXXXX)
pids=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.5
  ip netns del $A 2>/dev/null; ip netns del $B 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
cleanup_stale() { ip netns del $A 2>/dev/null || true; ip netns del $B 2>/dev/null || true; }
cleanup_stale

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "two hosts: $A (10.99.0.1) and $B (10.99.0.2)"
ip netns add $A; ip netns add $B
ip link add veil-demo0 netns $A type veth peer name veil-demo1 netns $B
ip -n $A addr add 10.99.0.1/24 dev veil-demo0; ip -n $A link set veil-demo0 up; ip -n $A link set lo up
ip -n $B addr add 10.99.0.2/24 dev veil-demo1; ip -n $B link set veil-demo1 up; ip -n $B link set lo up

head -c 32 /dev/urandom | base64 > "$WORK/psk"; chmod 600 "$WORK/psk"
conf() { # side local remote lid rid start
  mkdir -p "$WORK/$1"
  cat > "$WORK/$1/veil.hcl" <<HCL
daemon {
  control_socket = "$WORK/$1/veil.sock"
  listen         = ["$2"]
}
plugin "dataplane" "userspace" {}
connection "demo" {
  local_addrs   = ["$2"]
  remote_addrs  = ["$3"]
  ike_proposals = ["aes256gcm16-prfsha384-x25519-ke1_mlkem768"]
  local  {
    auth = "psk"
    id   = "$4"
    psk  = "file:$WORK/psk"
  }
  remote {
    auth = "psk"
    id   = "$5"
    psk  = "file:$WORK/psk"
  }
  child "hosts" {
    mode          = "transport"
    esp_proposals = ["aes256gcm16"]
    start_action  = "$6"
  }
}
HCL
}
conf a 10.99.0.1 10.99.0.2 a.demo.example b.demo.example start
conf b 10.99.0.2 10.99.0.1 b.demo.example a.demo.example none

step "config check: veild validate"
$VEILD validate "$WORK/a/veil.hcl"

step "start veild on both hosts (b responds, a initiates)"
ip netns exec $B "$VEILD" --config "$WORK/b/veil.hcl" >"$WORK/b.log" 2>&1 & pids+=($!)
ip netns exec $A "$VEILD" --config "$WORK/a/veil.hcl" >"$WORK/a.log" 2>&1 & pids+=($!)

ctl() { local side=$1; shift; "$VEILCTL" --socket "$WORK/$side/veil.sock" "$@"; }
up=""
for i in $(seq 1 100); do
  if ctl a sas --json 2>/dev/null | grep -q '"state":"INSTALLED"'; then up=1; break; fi
  sleep 0.2
done
if [ -z "$up" ]; then
  echo "SA did not come up; logs:" >&2; tail -50 "$WORK/a.log" "$WORK/b.log" >&2
  ctl a status demo >&2 || true
  exit 1
fi

step "capture the link while traffic flows"
ip netns exec $B tcpdump -n -i veil-demo1 -w "$WORK/wire.pcap" 'not port 500 and not port 4500' >/dev/null 2>&1 & tcpd=$!
pids+=($tcpd)
sleep 1

step "ping through the SA"
ip netns exec $A ping -c 3 -i 0.2 10.99.0.2

step "TCP transfer through the SA (4 MiB)"
if command -v iperf3 >/dev/null; then
  ip netns exec $B iperf3 -s -1 -D -p 5201 --logfile "$WORK/iperf.log"
  sleep 0.5
  ip netns exec $A iperf3 -c 10.99.0.2 -p 5201 -n 4M
else
  ip netns exec $B sh -c "nc -l -p 5201 > $WORK/recv" & sleep 0.5
  head -c 4194304 /dev/urandom | ip netns exec $A nc -q 1 10.99.0.2 5201
fi
sleep 0.5
kill $tcpd 2>/dev/null; wait $tcpd 2>/dev/null || true

step "veilctl sas on a"
ctl a sas
step "veilctl sas on b"
ctl b sas

step "proof: what crossed the link (IKE excluded)"
total=$(tcpdump -n -r "$WORK/wire.pcap" 2>/dev/null | wc -l)
esp=$(tcpdump -n -r "$WORK/wire.pcap" esp 2>/dev/null | wc -l)
clear=$(tcpdump -n -r "$WORK/wire.pcap" 'icmp or tcp' 2>/dev/null | wc -l)
tcpdump -n -r "$WORK/wire.pcap" esp 2>/dev/null | head -5 || true
echo "packets on the link: $total, ESP: $esp, cleartext ICMP/TCP: $clear"
if [ "$esp" -eq 0 ] || [ "$clear" -ne 0 ]; then
  echo "FAIL: traffic was not protected" >&2; exit 1
fi

step "terminate"
ctl a terminate demo
echo
echo "demo passed: a transport-mode SA carried ping and TCP as ESP only."
