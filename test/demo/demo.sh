#!/usr/bin/env bash
# make demo: the main job on an embedded default.
#
# Two network namespaces joined by a veth pair, two veild with the userspace
# dataplane, one transport-mode SA (AES-GCM, X25519 + ML-KEM-768), ping and a
# TCP transfer through it, `veilctl sas` from both sides and tcpdump's proof
# that only ESP crosses the link. Cleans up after itself and exits 0.
#
# The hosts authenticate with certificates from a throwaway CA (openssl);
# their private keys stay in the file keystore plugin.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces)" >&2; exit 1; }
for c in ip tcpdump ping openssl; do command -v $c >/dev/null || { echo "make demo needs $c (apt install iproute2 tcpdump iputils-ping)" >&2; exit 1; }; done

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

step "a throwaway CA and a certificate for each host"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -keyout "$WORK/ca.key" -out "$WORK/ca.pem" -subj "/CN=veil demo CA" 2>/dev/null
for h in a b; do
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/$h.key" -out "$WORK/$h.csr" \
    -subj "/CN=$h.demo.example" -addext "subjectAltName=DNS:$h.demo.example" 2>/dev/null
  openssl x509 -req -in "$WORK/$h.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
    -days 1 -copy_extensions copy -out "$WORK/$h.pem" 2>/dev/null
  chmod 600 "$WORK/$h.key"
  openssl x509 -in "$WORK/$h.pem" -noout -subject -ext subjectAltName | tr '\n' ' '; echo
done
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
    auth        = "pubkey"
    id          = "$4"
    certificate = "$WORK/$1.pem"
    key         = "file:$WORK/$1.key"
  }
  remote {
    auth       = "pubkey"
    id         = "$5"
    cacerts    = ["$WORK/ca.pem"]
    revocation = "off"
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
