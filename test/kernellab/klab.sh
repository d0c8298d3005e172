#!/bin/bash
# klab.sh - Veil's kernel lab: boot Debian's stock kernel (ESP, XFRM, veth as
# modules) under qemu (TCG) and run a script in it, as root, against this
# machine's own userland (ip, tcpdump, charon, `go test -c` binaries).
#
#   klab.sh prepare               install qemu/busybox, fetch the Debian kernel,
#                                 build vmlinux + initramfs (idempotent; `run` calls it)
#   klab.sh run SCRIPT [ARGS...]  boot, run SCRIPT ARGS in the guest (cwd = host cwd),
#                                 power off. Exit status = SCRIPT's; 124 = timeout,
#                                 125 = the guest never reported a status
#   klab.sh sh 'CMD...'           same for an inline /bin/sh command
#   klab.sh info                  show the cached kernel and paths
#   (prepare also extracts libreswan's pluto into $KLAB_HOME/libreswan)
#
# How: the host's / is exported read-only over virtio-9p and used as the lower
# layer of an overlay with a tmpfs upper; the guest switch_roots into it, so
# host binaries run unchanged and guest writes stay in guest RAM. /proc /sys
# /dev /run are fresh. The kernel's modules (depmod'ed with busybox) are bound
# on /lib/modules/$KVER and busybox modprobe is kernel.modprobe, so algorithm
# auto-loading works. $KLAB_OUT (a per-run host directory, 2nd 9p mount, same
# path in the guest, read-write) receives console.log, exit_code and whatever
# the script writes there. Inside, KLAB_GUEST=1 is set.
#
# Why these choices (each measured): the uncompressed vmlinux boots ~5 s faster
# than xz under TCG; cryptomgr.notests=1 saves ~4.5 s; insmod'ing the needed
# modules from the initramfs in dependency order beats modprobe one by one; one
# vCPU is faster than two under TCG on a 2-core host; KVM here is kvm-pvm and
# does not boot stock kernels; Debian's cloud flavour has no 9p.
#
# Environment:
#   KLAB_HOME     cache (default $TMPDIR/veil-klab-cache, else /tmp/veil-klab-cache)
#   KLAB_KPKG     kernel package (default: what linux-image-amd64 depends on; pinned
#                 at first prepare)
#   KLAB_MEM      guest MiB (default 384)    KLAB_SMP  vCPUs (default 1)
#   KLAB_TIMEOUT  seconds before qemu is killed (default 600)
#   KLAB_OUT      per-run output dir (default $KLAB_HOME/runs/<stamp>)
#   KLAB_QUIET=1  don't copy the guest console to stdout (still in console.log)
#   KLAB_DEBUG=1  kernel messages on the console
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
KLAB_HOME=${KLAB_HOME:-${TMPDIR:-/tmp}/veil-klab-cache}
KLAB_MEM=${KLAB_MEM:-384}
KLAB_SMP=${KLAB_SMP:-1}
KLAB_TIMEOUT=${KLAB_TIMEOUT:-600}
# insmod'ed by the initramfs, dependencies first; anything else auto-loads.
BOOT_MODULES="virtio_pci 9pnet_virtio 9p overlay veth tun dummy xfrm_user xfrm_algo
 esp4 esp6 xfrm_interface aesni_intel gcm ghash_generic ghash_clmulni_intel
 chacha20poly1305 chacha_x86_64 poly1305_x86_64 chacha_generic poly1305_generic
 seqiv echainiv authenc authencesn cbc ctr hmac sha256_generic sha512_generic
 sha256_ssse3 sha512_ssse3"

log() { echo "klab: $*" >&2; }
die() { log "ERROR: $*"; exit 2; }

apt_install() { # installs only the missing packages
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
    { apt-get update -qq >&2 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; }
}

kernel_vars() {
  KPKG=$(cat "$KLAB_HOME/kpkg" 2>/dev/null || true)
  KROOT=$KLAB_HOME/kernel
  KVER=$(ls "$KROOT/lib/modules" 2>/dev/null | head -n1 || true)
  VMLINUX=$KLAB_HOME/vmlinux-$KVER
  INITRD=$KLAB_HOME/initramfs.cpio
}

resolve_kpkg() {
  local p
  p=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  if [ -z "$p" ]; then
    apt-get update -qq >&2
    p=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  fi
  [ -n "$p" ] || die "cannot resolve linux-image-amd64"
  echo "$p"
}

# mod_closure MODULES.DEP NAME... prints module files, dependencies first;
# built-in modules are skipped.
mod_closure() {
  local dep=$1; shift
  awk -v want="$*" -v builtin="$(dirname "$dep")/modules.builtin" '
    function norm(s) { gsub(/-/, "_", s); return s }
    function base(p,  a, n) { n = split(p, a, "/"); sub(/\.ko(\.[a-z]+)?$/, "", a[n]); return norm(a[n]) }
    { f = $1; sub(/:$/, "", f); name[base(f)] = f; d[f] = ""; for (i = 2; i <= NF; i++) d[f] = d[f] " " $i }
    function add(f,  k, n, x) { if (f in seen) return; seen[f] = 1
      n = split(d[f], x, " "); for (k = 1; k <= n; k++) add(x[k]); print f }
    END { while ((getline l < builtin) > 0) bi[base(l)] = 1
      n = split(want, w, " ")
      for (i = 1; i <= n; i++) { m = norm(w[i]); if (m in bi) continue
        if (!(m in name)) { print "klab: no module " w[i] > "/dev/stderr"; continue }
        add(name[m]) } }' "$dep"
}

prepare() {
  command -v apt-get >/dev/null || die "needs a Debian (apt) host"
  mkdir -p "$KLAB_HOME"
  # Parallel test packages may prepare at the same time: one at a time.
  { flock 9; prepare_locked; } 9>"$KLAB_HOME/prepare.lock"
}

prepare_locked() {
  apt_install qemu-system-x86 busybox-static xz-utils
  kernel_vars
  local want=${KLAB_KPKG:-$KPKG}
  [ -n "$want" ] || want=$(resolve_kpkg)
  if [ "$want" != "$KPKG" ] || [ ! -f "$KROOT/.done" ]; then
    log "fetching $want"
    rm -rf "$KROOT" "$KLAB_HOME/debs" "$KLAB_HOME"/vmlinux-* "$KLAB_HOME/initramfs.cpio"
    mkdir -p "$KLAB_HOME/debs" "$KROOT"
    chmod 777 "$KLAB_HOME/debs" # apt's _apt user writes there
    ( cd "$KLAB_HOME/debs" && apt-get download "$want" >&2 ) ||
      { apt-get update -qq >&2 && ( cd "$KLAB_HOME/debs" && apt-get download "$want" >&2 ); }
    dpkg-deb -x "$KLAB_HOME"/debs/"$want"_*.deb "$KROOT"
    KVER=$(ls "$KROOT/lib/modules" | head -n1)
    [ -n "$KVER" ] && [ -s "$KROOT/boot/config-$KVER" ] ||
      die "incomplete kernel package: $(ls -l "$KLAB_HOME"/debs/ 2>&1 | tr '\n' ' ')"
    grep -q '^CONFIG_INET_ESP=[ym]' "$KROOT/boot/config-$KVER" || die "$want lacks CONFIG_INET_ESP"
    grep -q '^CONFIG_NET_9P_VIRTIO=[ym]' "$KROOT/boot/config-$KVER" || die "$want lacks 9p (cloud flavour?)"
    busybox depmod -b "$KROOT" "$KVER"
    echo "$want" > "$KLAB_HOME/kpkg"
    rm -rf "$KLAB_HOME/debs"
    touch "$KROOT/.done"
  fi
  kernel_vars
  if [ ! -s "$VMLINUX" ]; then
    local vmlinuz=$KROOT/boot/vmlinuz-$KVER off
    off=$(perl -0777 -ne 'print index($_, "\xfd7zXZ\x00")' "$vmlinuz")
    [ "$off" -ge 0 ] || die "no xz payload in $vmlinuz"
    # xz complains about the trailing size word; the output is complete
    tail -c +$((off + 1)) "$vmlinuz" | xz -dc > "$VMLINUX.tmp" 2>/dev/null || true
    [ "$(head -c4 "$VMLINUX.tmp" | od -An -c | tr -d ' ')" = '177ELF' ] || die "vmlinux extraction failed"
    mv "$VMLINUX.tmp" "$VMLINUX"
  fi
  if [ ! -s "$INITRD" ] || [ "$SELF" -nt "$INITRD" ]; then build_initrd; fi
  prepare_libreswan
}

# libreswan (pluto) for the interop tests: Debian's package conflicts with
# charon-systemd, so it is extracted, not installed; its libraries don't
# conflict and come from apt. Tests find it under $KLAB_HOME/libreswan.
LIBRESWAN_LIBS="libnss3-tools libevent-core-2.1-7 libevent-pthreads-2.1-7 libldns3
 libunbound8 libcurl3-nss libcap-ng0 dns-root-data"
prepare_libreswan() {
  local d=$KLAB_HOME/libreswan
  # shellcheck disable=SC2086
  apt_install $LIBRESWAN_LIBS
  [ -f "$d/.done" ] && return 0
  log "fetching libreswan"
  rm -rf "$d" "$KLAB_HOME/lsdebs"
  mkdir -p "$d" "$KLAB_HOME/lsdebs"
  chmod 777 "$KLAB_HOME/lsdebs"
  ( cd "$KLAB_HOME/lsdebs" && apt-get download libreswan >&2 ) ||
    { apt-get update -qq >&2 && ( cd "$KLAB_HOME/lsdebs" && apt-get download libreswan >&2 ); }
  dpkg-deb -x "$KLAB_HOME"/lsdebs/libreswan_*.deb "$d"
  [ -x "$d/usr/libexec/ipsec/pluto" ] || die "libreswan package has no pluto"
  rm -rf "$KLAB_HOME/lsdebs"
  touch "$d/.done"
}

build_initrd() {
  local d=$KLAB_HOME/initramfs.d f
  rm -rf "$d"
  mkdir -p "$d"/{bin,dev,proc,sys,lower,rw,newroot,lib/modules/"$KVER"}
  cp "$(command -v busybox)" "$d/bin/busybox"
  for f in $(mod_closure "$KROOT/lib/modules/$KVER/modules.dep" $BOOT_MODULES); do
    mkdir -p "$d/lib/modules/$KVER/$(dirname "$f")"
    cp "$KROOT/lib/modules/$KVER/$f" "$d/lib/modules/$KVER/$f"
    echo "$f" >> "$d/lib/modules/$KVER/load.list"
  done
  write_init > "$d/init"
  chmod 755 "$d/init"
  ( cd "$d" && find . | busybox cpio -o -H newc 2>/dev/null ) > "$INITRD.tmp"
  mv "$INITRD.tmp" "$INITRD"
  rm -rf "$d"
  log "initramfs $INITRD ($(du -h "$INITRD" | cut -f1))"
}

write_init() { cat <<'EOF'
#!/bin/busybox sh
# stage 1 (initramfs): host / over 9p (ro) + tmpfs overlay, then switch_root
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
fail() { echo "KLAB_STAGE1_FAIL: $*"; echo "KLAB_EXIT=125"; poweroff -f; sleep 5; }
for a in $(cat /proc/cmdline); do
  case "$a" in klab.*=*) k=${a%%=*}; k=${k#klab.}; eval "KLAB_$k=\${a#*=}";; esac
done
KV=$(uname -r)
for f in $(cat /lib/modules/$KV/load.list); do
  insmod /lib/modules/$KV/$f 2>/dev/null || echo "klab: insmod $f failed"
done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /lower || fail "9p hostroot"
mount -t tmpfs -o mode=755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot || fail overlay
for m in proc sys dev; do mount --move /$m /newroot/$m; done
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /newroot/run
mkdir -p /newroot/dev/pts /newroot/dev/shm /newroot/run/lock /newroot/run/netns /newroot/run/klab/bin
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /newroot/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /newroot/dev/shm
mount -t cgroup2 cgroup2 /newroot/sys/fs/cgroup 2>/dev/null || true
mkdir -p "/newroot$KLAB_out"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 klabout "/newroot$KLAB_out" || fail "9p klabout"
mkdir -p /newroot/lib/modules/$KV
mount --bind "/newroot$KLAB_home/kernel/lib/modules/$KV" /newroot/lib/modules/$KV || fail "modules bind"
cp /bin/busybox /newroot/run/klab/bin/busybox
for t in modprobe insmod rmmod lsmod depmod; do ln -s busybox /newroot/run/klab/bin/$t; done
echo /run/klab/bin/modprobe > /newroot/proc/sys/kernel/modprobe
cat > /newroot/run/klab/stage2 <<EOS
KLAB_OUT='$KLAB_out'
KLAB_CMD='$KLAB_cmd'
EOS
cat >> /newroot/run/klab/stage2 <<'EOS'
# stage 2: PID 1 (busybox sh) inside the host-root overlay
export PATH=/run/klab/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=linux KLAB_OUT KLAB_GUEST=1 TMPDIR=/tmp
hostname klab
ip link set lo up
echo "KLAB_READY uptime=$(cut -d' ' -f1 /proc/uptime) kernel=$(uname -r) cpus=$(nproc)"
/bin/sh "$KLAB_CMD" </dev/null
rc=$?
echo "$rc" > "$KLAB_OUT/exit_code"
echo "KLAB_EXIT=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
poweroff -f
EOS
exec switch_root /newroot /run/klab/bin/busybox sh /run/klab/stage2
EOF
}

run() {
  [ $# -ge 1 ] || die "usage: klab.sh run SCRIPT [ARGS...]"
  local script; script=$(readlink -f "$1"); shift
  [ -f "$script" ] || die "no such script: $1"
  prepare
  local out=${KLAB_OUT:-$KLAB_HOME/runs/$(date +%Y%m%d-%H%M%S)-$$}
  mkdir -p "$out"; out=$(readlink -f "$out")
  case "$out$KLAB_HOME" in *[[:space:]]*) die "KLAB_OUT/KLAB_HOME must not contain spaces";; esac
  rm -f "$out/exit_code"
  { echo "#!/bin/sh"
    printf 'cd %q 2>/dev/null || cd /\n' "$PWD"
    if [ -x "$script" ]; then printf 'exec %q' "$script"; else printf 'exec /bin/sh %q' "$script"; fi
    [ $# -gt 0 ] && printf ' %q' "$@"
    echo
  } > "$out/cmd.sh"
  local append="console=ttyS0 panic=-1 oops=panic mitigations=off i8042.noaux i8042.nokbd i8042.nopnp"
  append+=" cryptomgr.notests=1"
  [ "${KLAB_DEBUG:-0}" = 1 ] && append+=" loglevel=7" || append+=" quiet loglevel=3"
  append+=" klab.out=$out klab.cmd=$out/cmd.sh klab.home=$KLAB_HOME"
  local qemu=(qemu-system-x86_64 -nodefaults -no-user-config -machine q35 -accel tcg -cpu max
    -smp "$KLAB_SMP" -m "$KLAB_MEM" -display none -no-reboot
    -kernel "$VMLINUX" -initrd "$INITRD" -append "$append"
    -chardev stdio,id=con,signal=off -serial chardev:con
    -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap
    -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot
    -fsdev local,id=klabout,path="$out",security_model=none,multidevs=remap
    -device virtio-9p-pci,fsdev=klabout,mount_tag=klabout
    -device virtio-rng-pci)
  log "run $script (mem=${KLAB_MEM}M smp=$KLAB_SMP out=$out)"
  local t0 qrc rc
  t0=$(date +%s.%N)
  set +e
  timeout -k 10 "$KLAB_TIMEOUT" "${qemu[@]}" </dev/null 2>&1 |
    awk -v lf="$out/console.log" -v quiet="${KLAB_QUIET:-0}" '
      { sub(/\r$/, ""); print > lf; fflush(lf); if (quiet != 1) { print; fflush() } }'
  qrc=${PIPESTATUS[0]}
  set -e
  if [ -s "$out/exit_code" ]; then rc=$(cat "$out/exit_code")
  elif [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then rc=124
  else rc=$(sed -n 's/^KLAB_EXIT=\([0-9]*\).*/\1/p' "$out/console.log" | tail -n1); rc=${rc:-125}; fi
  log "exit=$rc qemu=$qrc wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1fs", b-a}') out=$out"
  return "$rc"
}

cmd=${1:-}; shift || true
case "$cmd" in
  prepare) prepare; kernel_vars; log "ready: $KPKG ($KVER) $VMLINUX $INITRD" ;;
  run) run "$@" ;;
  sh)
    tmp=$(mktemp "${TMPDIR:-/tmp}/klab-cmd.XXXXXX"); printf '#!/bin/sh\n%s\n' "$*" > "$tmp"; chmod +x "$tmp"
    set +e; run "$tmp"; rc=$?; rm -f "$tmp"; exit $rc ;;
  info) kernel_vars; echo "KLAB_HOME=$KLAB_HOME KPKG=$KPKG KVER=$KVER VMLINUX=$VMLINUX INITRD=$INITRD LIBRESWAN=$KLAB_HOME/libreswan" ;;
  *) sed -n '2,13p' "$SELF"; exit 2 ;;
esac
