#!/bin/bash
# iperf3 through wireguard-go between two network namespaces: the reference
# the userspace ESP dataplane is compared with (README, BenchmarkIperf3).
# Usage (root): GOBIN=/tmp/wg go install golang.zx2c4.com/wireguard@latest
#               WG=/tmp/wg/wireguard SECS=5 ./wireguard-go-iperf.sh
set -e
A=veil-ut-wga-$$; B=veil-ut-wgb-$$
cleanup() { ip netns pids $A 2>/dev/null | xargs -r kill; ip netns pids $B 2>/dev/null | xargs -r kill; sleep 0.3; ip netns del $A 2>/dev/null; ip netns del $B 2>/dev/null; rm -f /var/run/wireguard/wgva$$.sock /var/run/wireguard/wgvb$$.sock; }
trap cleanup EXIT
ip netns add $A; ip netns add $B
ip link add wva$$ netns $A type veth peer name wvb$$ netns $B
ip -n $A addr add 10.88.0.1/24 dev wva$$; ip -n $B addr add 10.88.0.2/24 dev wvb$$
ip -n $A link set wva$$ up; ip -n $B link set wvb$$ up; ip -n $A link set lo up; ip -n $B link set lo up
key() { openssl genpkey -algorithm X25519 -outform DER 2>/dev/null | tail -c 32 | xxd -p -c 64; }
pub() { echo "$1" | xxd -r -p | cat <(printf '\x30\x2e\x02\x01\x00\x30\x05\x06\x03\x2b\x65\x6e\x04\x22\x04\x20') - | openssl pkey -inform DER -pubout -outform DER 2>/dev/null | tail -c 32 | xxd -p -c 64; }
KA=$(key); KB=$(key); PA=$(pub $KA); PB=$(pub $KB)
ip netns exec $A env WG_PROCESS_FOREGROUND=1 "${WG:?set WG to a wireguard-go binary}" -f wgva$$ >/dev/null 2>&1 &
ip netns exec $B env WG_PROCESS_FOREGROUND=1 "${WG:?set WG to a wireguard-go binary}" -f wgvb$$ >/dev/null 2>&1 &
sleep 1
uapi() { python3 -c "
import socket,sys
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.argv[2].encode()); print(s.recv(100).decode().strip())" "$1" "$2"; }
uapi /var/run/wireguard/wgva$$.sock "set=1
private_key=$KA
listen_port=51820
public_key=$PB
endpoint=10.88.0.2:51820
allowed_ip=10.99.0.2/32

"
uapi /var/run/wireguard/wgvb$$.sock "set=1
private_key=$KB
listen_port=51820
public_key=$PA
endpoint=10.88.0.1:51820
allowed_ip=10.99.0.1/32

"
ip -n $A addr add 10.99.0.1/24 dev wgva$$; ip -n $A link set wgva$$ up
ip -n $B addr add 10.99.0.2/24 dev wgvb$$; ip -n $B link set wgvb$$ up
ip netns exec $A ping -c 2 -W 2 10.99.0.2 | tail -2
ip netns exec $B iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
sleep 0.5
ip netns exec $A iperf3 -c 10.99.0.2 -p 5201 -t ${SECS:-5} | tail -4
