package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veil-ipsec/veil/test/kernellab"
)

// libreswanDir is where `klab.sh prepare` extracts Debian's libreswan
// package (it conflicts with charon-systemd, so it is not installed).
func libreswanDir() string {
	home := os.Getenv("KLAB_HOME")
	if home == "" {
		home = filepath.Join(os.TempDir(), "veil-klab-cache")
	}
	return filepath.Join(home, "libreswan")
}

// TestLibreswanTransportInKernelLab: veil (xfrm dataplane) and libreswan's
// pluto, each in a namespace of a kernel with ESP, set up a transport-mode
// SA with PSK each way, carry ping and TCP over kernel ESP (only ESP on the
// wire, the kernel's ESP counters move), rekey the Child and the IKE SA from
// either side while a ping keeps running, and delete from either side
// leaving no SA or policy behind.
func TestLibreswanTransportInKernelLab(t *testing.T) {
	kernellab.Require(t)
	if err := kernellab.Ensure(); err != nil { // extracts libreswan
		t.Fatal(err)
	}
	ls := libreswanDir()
	if _, err := os.Stat(filepath.Join(ls, "usr/libexec/ipsec/pluto")); err != nil {
		t.Fatalf("klab.sh prepare left no pluto: %v", err)
	}
	if _, err := os.Stat("/usr/bin/certutil"); err != nil {
		t.Skip("needs certutil (libnss3-tools) for pluto's NSS database")
	}
	dir := t.TempDir()
	pskFile := filepath.Join(dir, "psk")
	const secret = "veil-libreswan-psk-0123456789abcdef"
	os.WriteFile(pskFile, []byte(secret+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "veil.hcl"), []byte(`
daemon {
  control_socket = "/run/veil.sock"
  listen         = ["10.82.0.1"]
  log_level      = "debug"
}
connection "ls" {
  local_addrs   = ["10.82.0.1"]
  remote_addrs  = ["10.82.0.2"]
  ike_proposals = ["aes128gcm16-prfsha256-x25519"]
  local  {
    auth = "psk"
    id   = "veil@lab"
    psk  = "file:`+pskFile+`"
  }
  remote {
    auth = "psk"
    id   = "pluto@lab"
    psk  = "file:`+pskFile+`"
  }
  child "host" {
    mode          = "transport"
    esp_proposals = ["aes128gcm16-x25519"] # pluto's default pfs=yes: rekeys with KE
  }
}
`), 0o600)
	script := filepath.Join(dir, "ls.sh")
	os.WriteFile(script, []byte(guestLibreswanScript), 0o755)
	t.Setenv("KLAB_TIMEOUT", "240") // a hung step fails in minutes, not at go test's timeout
	code, out := kernellab.Run(t, script, veild, veilctl, dir, secret, ls)
	if code != 0 || !strings.Contains(out, "RESULT: fails=0") {
		t.Fatalf("guest exit %d:\n%s", code, out)
	}
	logPasses(t, out)
}

// guestLibreswanScript runs in the lab's guest: A is veil, B is pluto.
const guestLibreswanScript = `#!/bin/bash
set -u
VEILD=$1 VEILCTL=$2 DIR=$3 SECRET=$4 LS=$5 OUT=${KLAB_OUT:-/tmp}
[ "${KLAB_GUEST:-}" = 1 ] || { echo "runs only inside the kernel lab"; exit 3; }
fails=0
ok()  { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
A="ip netns exec A"; B="ip netns exec B"
ip netns add A; ip netns add B
ip link add va netns A type veth peer name vb netns B
$A ip link set lo up; $B ip link set lo up
$A ip addr add 10.82.0.1/24 dev va; $B ip addr add 10.82.0.2/24 dev vb
$A ip link set va up; $B ip link set vb up

# pluto runs its helpers (addconn, _updown) from /usr/libexec/ipsec: put the
# extracted package there (the guest's root is an overlay in guest RAM).
cp -a $LS/usr/libexec/ipsec /usr/libexec/ && cp $LS/usr/sbin/ipsec /usr/sbin/ipsec || bad "install libreswan"
X=/usr/libexec/ipsec
d=/run/ls; mkdir -p $d/nss $d/run
certutil -N -d sql:$d/nss --empty-password || bad "certutil -N"
cat > $d/ipsec.conf <<CONF
config setup
	dnssec-enable=no
conn veil
	ikev2=insist
	type=transport
	authby=secret
	left=10.82.0.2
	leftid=pluto@lab
	right=10.82.0.1
	rightid=veil@lab
	ike=aes_gcm128-sha2_256-dh31
	esp=aes_gcm128
	leftupdown=%disabled
	auto=add
CONF
printf 'pluto@lab veil@lab : PSK "%s"\n' "$SECRET" > $d/ipsec.secrets; chmod 600 $d/ipsec.secrets
$B $X/pluto --nofork --config $d/ipsec.conf --secretsfile $d/ipsec.secrets --ipsecdir $d \
  --nssdir $d/nss --rundir $d/run --logfile $d/pluto.log > $d/stdout.log 2>&1 &
for i in $(seq 100); do [ -S $d/run/pluto.ctl ] && break; sleep 0.2; done
wh() { $B timeout 30 $X/whack --ctlsocket $d/run/pluto.ctl "$@"; }
$B $X/addconn --config $d/ipsec.conf --ctlsocket $d/run/pluto.ctl veil >/dev/null || bad "addconn"
wh --listen >/dev/null
$A "$VEILD" --config "$DIR/veil.hcl" > "$OUT/veild.log" 2>&1 &
for i in $(seq 100); do [ -S /run/veil.sock ] && break; sleep 0.2; done
ctl() { "$VEILCTL" --socket /run/veil.sock "$@"; }

# packets NS: the sum of "lifetime current" packet counters of NS's ESP SAs
packets() { ip -n $1 -s xfrm state | awk '/lifetime current/{getline; sub(/\(packets\)/, "", $2); s += $2} END{print s + 0}'; }
traffic() { # LABEL
  local pa pb
  pa=$(packets A); pb=$(packets B)
  $B timeout 20 tcpdump -l -n -i vb -w $d/wire.pcap 'esp or icmp or tcp port 5201' 2>/dev/null &
  local tp=$!; sleep 1.5
  $A ping -c 3 -i 0.3 -W 2 10.82.0.2 >/dev/null && ok "$1: ping" || bad "$1: ping"
  $B iperf3 -s -1 -D -p 5201; sleep 0.5
  $A iperf3 -c 10.82.0.2 -p 5201 -n 512K >/dev/null && ok "$1: TCP" || bad "$1: TCP"
  sleep 0.5; kill $tp 2>/dev/null; wait $tp 2>/dev/null
  local esp clear
  esp=$(tcpdump -n -r $d/wire.pcap esp 2>/dev/null | wc -l)
  clear=$(tcpdump -n -r $d/wire.pcap 'icmp or tcp' 2>/dev/null | wc -l)
  [ "$esp" -gt 0 ] && [ "$clear" -eq 0 ] && ok "$1: only ESP on the wire ($esp packets)" || bad "$1: esp=$esp clear=$clear"
  pa=$(( $(packets A) - pa )); pb=$(( $(packets B) - pb ))
  [ $pa -ge 100 ] && [ $pb -ge 100 ] && ok "$1: kernel ESP counters moved (veil $pa, pluto $pb packets)" ||
    bad "$1: ESP counters veil +$pa pluto +$pb"
}
# blocks CMD...: the output of an "ip xfrm" listing, one line per entry
blocks() { "$@" | awk '{gsub(/[ \t]+/, " ")} /^src/{if (b) print b; b = $0; next} {b = b " " $0} END{if (b) print b}'; }
# Keyed SAs only: veil reserves SPIs ahead (XFRM_MSG_ALLOCSPI), which the
# kernel lists as larval states without algorithms until used or expired.
keyed() { blocks ip -n $1 xfrm state | grep -E ' (aead|enc|auth|auth-trunc) '; }
spis() { keyed $1 | awk '{for (i = 1; i < NF; i++) if ($i == "spi") print $(i + 1)}' | sort | tr '\n' ' '; }
nsa() { keyed $1 | wc -l; }
# Policies other than the IKE sockets' bypass and pluto's IPv6 ND bypass;
# pluto's own trap for the connection (template reqid 0, no SA) is left to it.
npol() { blocks ip -n $1 xfrm policy | grep -v ' socket \(in\|out\) ' | grep -v ipv6-icmp | grep -vc 'reqid 0 mode'; }
ikespi() { ctl sas --json | grep -o '"spi_i":"[0-9a-f]*"' | head -1; }
plutostates() { wh --showstates | grep -c "$1"; }
# pinger: a ping that runs across a rekey; lost LABEL checks it lost nothing
pinger() { $A ping -i 0.1 -c 60 -W 1 10.82.0.2 > $d/ping.log 2>&1 & PP=$!; sleep 0.5; }
lost() {
  wait $PP
  local rx; rx=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' $d/ping.log)
  [ "${rx:-0}" -ge 57 ] && ok "$1: ping kept flowing ($rx/60)" || bad "$1: ping got ${rx:-0}/60 across the rekey"
}
clean() { # LABEL: no SA or policy left on either side
  sleep 1
  [ "$(nsa A)$(npol A)" = 00 ] && [ "$(blocks ip -n A xfrm policy | grep -vc ' socket ')" -eq 0 ] && ok "$1: no SA or policy left in veil's namespace" || { bad "$1: veil's kernel keeps $(nsa A) SAs $(npol A) policies"; ip -n A xfrm state; ip -n A xfrm policy; }
  [ "$(nsa B)$(npol B)" = 00 ] && ok "$1: no SA or policy left in pluto's namespace" || { bad "$1: pluto's kernel keeps $(nsa B) SAs $(npol B) policies"; ip -n B xfrm state; ip -n B xfrm policy; }
  [ "$(ctl sas --json | grep -c INSTALLED)" -eq 0 ] && ok "$1: veil lists no child" || bad "$1: veil keeps a child"
  [ "$(plutostates ESTABLISHED)" -eq 0 ] && ok "$1: pluto lists no SA" || { bad "$1: pluto keeps states"; wh --showstates; }
}

# 1. veil initiates.
ctl initiate ls/host >/dev/null && ok "veil initiate" || bad "veil initiate"
[ "$(plutostates ESTABLISHED_IKE_SA)" -eq 1 ] && [ "$(plutostates ESTABLISHED_CHILD_SA)" -eq 1 ] &&
  ok "pluto lists the IKE and the Child SA" || { bad "pluto states"; wh --showstates; }
[ "$(ip -n B xfrm state | grep -c 'mode transport')" -eq 2 ] && ok "pluto installed 2 transport SAs" || bad "pluto SAs"
traffic "veil->pluto"
pinger
old=$(spis A); ctl rekey ls/host >/dev/null && ok "veil rekeys the child" || bad "veil rekey child"
sleep 1; [ "$(spis A)" != "$old" ] && [ "$(nsa A)" -eq 2 ] && ok "new SPIs after veil's rekey, old SAs gone" || bad "veil's child rekey: SPIs $old -> $(spis A)"
old=$(spis A); wh --name veil --rekey-ipsec >/dev/null && ok "pluto rekeys the child" || bad "pluto rekey child"
sleep 2; [ "$(spis A)" != "$old" ] && [ "$(nsa A)" -eq 2 ] && ok "new SPIs after pluto's rekey, old SAs gone" || bad "pluto's child rekey: SPIs $old -> $(spis A)"
lost "child rekeys"
pinger
old=$(ikespi); ctl rekey ls >/dev/null && ok "veil rekeys the IKE SA" || bad "veil IKE rekey"
sleep 1; [ "$(ikespi)" != "$old" ] && ok "veil's IKE SA has new SPIs" || bad "veil's IKE SPIs unchanged"
[ "$(plutostates ESTABLISHED_IKE_SA)" -eq 1 ] && ok "pluto follows veil's IKE rekey" || { bad "pluto IKE states"; wh --showstates; }
old=$(ikespi); wh --name veil --rekey-ike >/dev/null && ok "pluto rekeys the IKE SA" || bad "pluto IKE rekey"
sleep 2; [ "$(ikespi)" != "$old" ] && ok "veil follows pluto's IKE rekey" || bad "veil's IKE SPIs unchanged after pluto's rekey"
lost "IKE rekeys"
traffic "after rekeys"
ctl rekey ls/host >/dev/null && sleep 1 && $A ping -c 2 -W 2 10.82.0.2 >/dev/null && ok "child rekey on the rekeyed IKE SA" || bad "child rekey after IKE rekeys"
ctl terminate ls >/dev/null && ok "veil terminate" || bad "veil terminate"
clean "veil's delete"

# 2. pluto initiates.
wh --name veil --initiate > $d/init.log 2>&1 && ok "pluto initiate" || { bad "pluto initiate"; cat $d/init.log; }
ctl sas --json | grep -q '"state":"INSTALLED"' && ok "veil installed pluto's child" || bad "veil has no child"
traffic "pluto->veil"
pinger
old=$(ikespi); wh --name veil --rekey-ike >/dev/null && ok "pluto rekeys the IKE SA" || bad "pluto IKE rekey"
sleep 2; [ "$(ikespi)" != "$old" ] && ok "veil follows pluto's IKE rekey" || bad "veil's IKE SPIs unchanged"
old=$(spis A); wh --name veil --rekey-ipsec >/dev/null && ok "pluto rekeys the child" || bad "pluto rekey child"
sleep 2; [ "$(spis A)" != "$old" ] && [ "$(nsa A)" -eq 2 ] && ok "new SPIs after pluto's rekey" || bad "pluto's child rekey: SPIs $old -> $(spis A)"
lost "pluto's rekeys"
wh --name veil --terminate >/dev/null && ok "pluto terminate" || bad "pluto terminate"
clean "pluto's delete"

cp $d/pluto.log "$OUT/pluto.log"
if [ $fails -ne 0 ]; then tail -80 "$OUT/veild.log"; grep -v '^.\{17\}:   ' $d/pluto.log | tail -80; fi
echo "RESULT: fails=$fails"
[ $fails -eq 0 ]
`

// TestLibreswanCertInKernelLab: the same pair authenticating with ECDSA
// P-256 certificates from one CA (RFC 7427 signatures; pluto's certificate
// and key in its NSS database), each side initiating once, with ping over
// kernel ESP and a delete that leaves no SA.
func TestLibreswanCertInKernelLab(t *testing.T) {
	kernellab.Require(t)
	if err := kernellab.Ensure(); err != nil {
		t.Fatal(err)
	}
	ls := libreswanDir()
	if _, err := os.Stat(filepath.Join(ls, "usr/libexec/ipsec/pluto")); err != nil {
		t.Fatalf("klab.sh prepare left no pluto: %v", err)
	}
	for _, tool := range []string{"/usr/bin/certutil", "/usr/bin/pk12util"} {
		if _, err := os.Stat(tool); err != nil {
			t.Skipf("needs %s (libnss3-tools) for pluto's NSS database", tool)
		}
	}
	dir := t.TempDir()
	ca := newTestCA(t, dir)
	vc, vk := ca.issue(t, dir, "veil", "veil.test", "ecdsa-p256")
	pc, pk := ca.issue(t, dir, "pluto", "pluto.test", "ecdsa-p256")
	os.WriteFile(filepath.Join(dir, "veil.hcl"), []byte(`
daemon {
  control_socket = "/run/veil.sock"
  listen         = ["10.83.0.1"]
  log_level      = "debug"
}
connection "lsc" {
  local_addrs   = ["10.83.0.1"]
  remote_addrs  = ["10.83.0.2"]
  ike_proposals = ["aes256gcm16-prfsha384-ecp256"]
  local {
    auth        = "pubkey"
    id          = "veil.test"
    certificate = "`+vc+`"
    key         = "file:`+vk+`"
  }
  remote {
    auth       = "pubkey"
    id         = "pluto.test"
    cacerts    = ["`+ca.path+`"]
    revocation = "off"
  }
  child "host" {
    mode          = "transport"
    esp_proposals = ["aes256gcm16-ecp256"]
  }
}
`), 0o600)
	script := filepath.Join(dir, "lsc.sh")
	os.WriteFile(script, []byte(guestLibreswanCertScript), 0o755)
	t.Setenv("KLAB_TIMEOUT", "180")
	code, out := kernellab.Run(t, script, veild, veilctl, dir, ls, ca.path, pc, pk)
	if code != 0 || !strings.Contains(out, "RESULT: fails=0") {
		t.Fatalf("guest exit %d:\n%s", code, out)
	}
	logPasses(t, out)
}

// guestLibreswanCertScript runs in the lab's guest: A is veil, B is pluto.
const guestLibreswanCertScript = `#!/bin/bash
set -u
VEILD=$1 VEILCTL=$2 DIR=$3 LS=$4 CA=$5 PCERT=$6 PKEY=$7 OUT=${KLAB_OUT:-/tmp}
[ "${KLAB_GUEST:-}" = 1 ] || { echo "runs only inside the kernel lab"; exit 3; }
fails=0
ok()  { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
A="ip netns exec A"; B="ip netns exec B"
ip netns add A; ip netns add B
ip link add va netns A type veth peer name vb netns B
$A ip link set lo up; $B ip link set lo up
$A ip addr add 10.83.0.1/24 dev va; $B ip addr add 10.83.0.2/24 dev vb
$A ip link set va up; $B ip link set vb up

cp -a $LS/usr/libexec/ipsec /usr/libexec/ && cp $LS/usr/sbin/ipsec /usr/sbin/ipsec || bad "install libreswan"
X=/usr/libexec/ipsec
d=/run/ls; mkdir -p $d/nss $d/run
certutil -N -d sql:$d/nss --empty-password || bad "certutil -N"
certutil -A -d sql:$d/nss -n veilca -t 'CT,,' -a -i "$CA" || bad "import the CA"
# pluto's certificate and key go into NSS as PKCS#12 (a transient password).
openssl pkcs12 -export -in "$PCERT" -inkey "$PKEY" -name pluto -out $d/pluto.p12 -passout pass:lab || bad "pkcs12"
pk12util -i $d/pluto.p12 -d sql:$d/nss -W lab >/dev/null || bad "pk12util"
rm -f $d/pluto.p12
cat > $d/ipsec.conf <<CONF
config setup
	dnssec-enable=no
conn veil
	ikev2=insist
	type=transport
	authby=ecdsa
	left=10.83.0.2
	leftid=@pluto.test
	leftcert=pluto
	leftsendcert=always
	right=10.83.0.1
	rightid=@veil.test
	rightca=%any
	ike=aes_gcm256-sha2_384-dh19
	esp=aes_gcm256
	leftupdown=%disabled
	auto=add
CONF
: > $d/ipsec.secrets
$B $X/pluto --nofork --config $d/ipsec.conf --secretsfile $d/ipsec.secrets --ipsecdir $d \
  --nssdir $d/nss --rundir $d/run --logfile $d/pluto.log > $d/stdout.log 2>&1 &
for i in $(seq 100); do [ -S $d/run/pluto.ctl ] && break; sleep 0.2; done
wh() { $B timeout 30 $X/whack --ctlsocket $d/run/pluto.ctl "$@"; }
$B $X/addconn --config $d/ipsec.conf --ctlsocket $d/run/pluto.ctl veil >/dev/null || bad "addconn"
wh --listen >/dev/null
$A "$VEILD" --config "$DIR/veil.hcl" > "$OUT/veild.log" 2>&1 &
for i in $(seq 100); do [ -S /run/veil.sock ] && break; sleep 0.2; done
ctl() { "$VEILCTL" --socket /run/veil.sock "$@"; }
nsa() { ip -n $1 xfrm state | grep -c 'aead'; }
espping() { # LABEL: ping, and the kernel's ESP SAs counted it
  $A ping -c 3 -i 0.3 -W 2 10.83.0.2 >/dev/null && ok "$1: ping" || bad "$1: ping"
  local p; p=$(ip -n B -s xfrm state | awk '/lifetime current/{getline; sub(/\(packets\)/, "", $2); s += $2} END{print s + 0}')
  [ "$p" -ge 6 ] && ok "$1: pluto's ESP SAs carried $p packets" || bad "$1: pluto's ESP counters $p"
}

ctl initiate lsc/host >/dev/null && ok "veil initiates with its certificate" || bad "veil initiate"
grep -q "authenticated peer 'P-256 ECDSA with SHA2_[0-9]*' digital signature using peer certificate" $d/pluto.log && ok "pluto verified veil's ECDSA signature" || bad "pluto auth log"
[ "$(nsa B)" -eq 2 ] && ok "pluto installed 2 SAs" || bad "pluto SAs $(nsa B)"
espping "veil->pluto"
ctl terminate lsc >/dev/null && ok "veil terminate" || bad "veil terminate"
sleep 1
[ "$(nsa A)$(nsa B)" = 00 ] && ok "no SA left after veil's delete" || bad "SAs left: veil $(nsa A) pluto $(nsa B)"

wh --name veil --initiate > $d/init.log 2>&1 && ok "pluto initiates with its certificate" || { bad "pluto initiate"; cat $d/init.log; }
ctl sas --json | grep -q '"state":"INSTALLED"' && ok "veil verified pluto's certificate and installed the child" || bad "veil has no child"
espping "pluto->veil"
wh --name veil --terminate >/dev/null && ok "pluto terminate" || bad "pluto terminate"
sleep 1
[ "$(nsa A)$(nsa B)" = 00 ] && ok "no SA left after pluto's delete" || bad "SAs left: veil $(nsa A) pluto $(nsa B)"
[ "$(ctl sas --json | grep -c INSTALLED)" -eq 0 ] && ok "veil lists no child" || bad "veil keeps a child"

if [ $fails -ne 0 ]; then tail -60 "$OUT/veild.log"; grep -v '^.\{17\}:   ' $d/pluto.log | tail -60; fi
echo "RESULT: fails=$fails"
[ $fails -eq 0 ]
`
