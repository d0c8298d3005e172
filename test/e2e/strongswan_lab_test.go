package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veil-ipsec/veil/test/kernellab"
)

// TestStrongSwanTransportInKernelLab: veil (xfrm dataplane) and strongSwan's
// charon (kernel-netlink), each in a namespace of a kernel with ESP, set up a
// transport-mode SA each way with PSK, carry ping and TCP over kernel ESP,
// rekey from either side and delete.
func TestStrongSwanTransportInKernelLab(t *testing.T) {
	kernellab.Require(t)
	if _, err := os.Stat("/usr/sbin/charon-systemd"); err != nil {
		t.Skip("needs strongSwan's charon-systemd")
	}
	dir := t.TempDir()
	pskFile := filepath.Join(dir, "psk")
	const secret = "veil-strongswan-psk-0123456789abcdef"
	os.WriteFile(pskFile, []byte(secret+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "veil.hcl"), []byte(`
daemon {
  control_socket = "/run/veil.sock"
  listen         = ["10.81.0.1"]
  log_level      = "debug"
}
connection "ss" {
  local_addrs   = ["10.81.0.1"]
  remote_addrs  = ["10.81.0.2"]
  ike_proposals = ["aes128gcm16-prfsha256-x25519"]
  local  {
    auth = "psk"
    id   = "veil@lab"
    psk  = "file:`+pskFile+`"
  }
  remote {
    auth = "psk"
    id   = "charon@lab"
    psk  = "file:`+pskFile+`"
  }
  child "host" {
    mode          = "transport"
    esp_proposals = ["aes128gcm16"]
  }
}
`), 0o600)
	script := filepath.Join(dir, "ss.sh")
	os.WriteFile(script, []byte(guestStrongSwanScript), 0o755)
	code, out := kernellab.Run(t, script, veild, veilctl, dir, secret)
	if code != 0 {
		t.Fatalf("guest exit %d:\n%s", code, out)
	}
	logPasses(t, out)
}

// guestStrongSwanScript runs in the lab's guest: A is veil, B is charon.
const guestStrongSwanScript = `#!/bin/bash
set -u
VEILD=$1 VEILCTL=$2 DIR=$3 SECRET=$4 OUT=${KLAB_OUT:-/tmp}
[ "${KLAB_GUEST:-}" = 1 ] || { echo "runs only inside the kernel lab"; exit 3; }
fails=0
ok()  { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
A="ip netns exec A"; B="ip netns exec B"
ip netns add A; ip netns add B
ip link add va netns A type veth peer name vb netns B
$A ip link set lo up; $B ip link set lo up
$A ip addr add 10.81.0.1/24 dev va; $B ip addr add 10.81.0.2/24 dev vb
$A ip link set va up; $B ip link set vb up
SS=/run/ss; d=$SS/B
mkdir -p $d/{x509,x509ca,x509ocsp,x509aa,x509ac,x509crl,pubkey,private,rsa,ecdsa,bliss,pkcs8,pkcs12}
cat > $d/strongswan.conf <<CONF
charon {
  load_modular = no
  load = random nonce openssl pem pkcs1 x509 pubkey curve25519 aes sha1 sha2 hmac gcm kdf kernel-netlink socket-default vici
  install_routes = no
  plugins { vici { socket = unix://$d/charon.vici } }
  filelog { b { path = $d/charon.log
          default = 1
          ike = 2
          knl = 1
          flush_line = yes } }
}
charon-systemd { journal { default = -1 } }
swanctl { socket = unix://$d/charon.vici }
CONF
cat > $d/swanctl.conf <<CONF
connections {
  veil {
    version = 2
    local_addrs = 10.81.0.2
    remote_addrs = 10.81.0.1
    proposals = aes128gcm16-prfsha256-x25519
    local { auth = psk
            id = charon@lab }
    remote { auth = psk
             id = veil@lab }
    children {
      host {
        mode = transport
        esp_proposals = aes128gcm16
      }
    }
  }
}
secrets {
  ike-psk {
    id-a = veil@lab
    id-b = charon@lab
    secret = "$SECRET"
  }
}
CONF
sw() { STRONGSWAN_CONF=$d/strongswan.conf swanctl "$@"; }
$B env STRONGSWAN_CONF=$d/strongswan.conf /usr/sbin/charon-systemd > $d/stdout.log 2>&1 &
for i in $(seq 100); do [ -S $d/charon.vici ] && break; sleep 0.2; done
sw --load-all --file $d/swanctl.conf >/dev/null || bad "swanctl load"
$A "$VEILD" --config "$DIR/veil.hcl" > "$OUT/veild.log" 2>&1 &
for i in $(seq 100); do [ -S /run/veil.sock ] && break; sleep 0.2; done
ctl() { "$VEILCTL" --socket /run/veil.sock "$@"; }

traffic() { # LABEL
  $B timeout 20 tcpdump -l -n -i vb -w $SS/wire.pcap 'esp or icmp or tcp port 5201' 2>/dev/null &
  local tp=$!; sleep 1.5
  $A ping -c 3 -i 0.3 -W 2 10.81.0.2 >/dev/null && ok "$1: ping" || bad "$1: ping"
  $B iperf3 -s -1 -D -p 5201; sleep 0.5
  $A iperf3 -c 10.81.0.2 -p 5201 -n 512K >/dev/null && ok "$1: TCP" || bad "$1: TCP"
  sleep 0.5; kill $tp 2>/dev/null; wait $tp 2>/dev/null
  local esp clear
  esp=$(tcpdump -n -r $SS/wire.pcap esp 2>/dev/null | wc -l)
  clear=$(tcpdump -n -r $SS/wire.pcap 'icmp or tcp' 2>/dev/null | wc -l)
  [ "$esp" -gt 0 ] && [ "$clear" -eq 0 ] && ok "$1: only ESP on the wire ($esp packets)" || bad "$1: esp=$esp clear=$clear"
}
spis() { ip -n A xfrm state | awk '/spi/{print $4}' | sort | tr '\n' ' '; }

# 1. veil initiates.
ctl initiate ss/host && ok "veil initiate" || bad "veil initiate"
sw --list-sas | grep -q ESTABLISHED && ok "charon lists the IKE SA" || bad "charon has no IKE SA"
[ "$(ip -n B xfrm state | grep -c 'mode transport')" -eq 2 ] && ok "charon installed 2 transport SAs" || bad "charon SAs"
traffic "veil->charon"
old=$(spis); ctl rekey ss/host >/dev/null && ok "veil rekeys the child" || bad "veil rekey child"
sleep 1; [ "$(spis)" != "$old" ] && ok "new SPIs after veil's rekey" || bad "SPIs unchanged"
old=$(spis); sw --rekey --child host >/dev/null && ok "charon rekeys the child" || bad "charon rekey child"
sleep 2; [ "$(spis)" != "$old" ] && ok "new SPIs after charon's rekey" || bad "SPIs unchanged after charon's rekey"
traffic "after rekeys"
ctl rekey ss >/dev/null && ok "veil rekeys the IKE SA" || bad "veil IKE rekey"
sleep 1; sw --list-sas | grep -q ESTABLISHED && ok "charon still has the IKE SA" || bad "IKE SA lost"
ctl terminate ss >/dev/null && ok "veil terminate" || bad "veil terminate"
sleep 1
[ "$(ip -n B xfrm state | grep -c spi)" -eq 0 ] && ok "charon removed its SAs" || bad "charon kept SAs"

# 2. charon initiates.
timeout 30 env STRONGSWAN_CONF=$d/strongswan.conf swanctl --initiate --ike veil --child host --timeout 25 > $SS/init.log 2>&1 && ok "charon initiate" || { bad "charon initiate"; cat $SS/init.log; }
ctl sas --json | grep -q '"state":"INSTALLED"' && ok "veil installed charon's child" || bad "veil has no child"
traffic "charon->veil"
sw --rekey --ike veil >/dev/null && ok "charon rekeys the IKE SA" || bad "charon IKE rekey"
sleep 2
ctl sas --json | grep -q '"state":"ESTABLISHED"' && ok "veil follows charon's IKE rekey" || bad "veil lost the IKE SA"
sw --terminate --ike veil >/dev/null && ok "charon terminate" || bad "charon terminate"
sleep 1
[ "$(ctl sas --json | grep -c INSTALLED)" -eq 0 ] && ok "veil removed the child" || bad "veil kept the child"
# Keyed SAs only: SPIs veil reserved ahead (ALLOCSPI, no keys) are larval
# states that the kernel expires by itself (xfrm_acq_expires, 30 s).
[ "$(ip -n A xfrm state | grep -cE '^\s+(aead|enc) ')" -eq 0 ] && ok "no kernel SA left in veil's namespace" || bad "stale SAs in A"

if [ $fails -ne 0 ]; then tail -60 "$OUT/veild.log"; tail -60 $d/charon.log; fi
echo "RESULT: fails=$fails"
[ $fails -eq 0 ]
`

// logPasses logs the PASS lines of a lab guest script's output.
func logPasses(t *testing.T, out string) {
	var passes []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "PASS: ") {
			passes = append(passes, l)
		}
	}
	t.Log(strings.Join(passes, "\n"))
}
