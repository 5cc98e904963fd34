# shellcheck shell=bash
# kmod/test/lib.sh: the qemu harness of the stressmix kernel module, as functions other tests reuse
# (the agent's end-to-end test boots its binaries with these). Source it from bash:
#
#   source kmod/test/lib.sh
#   kmod_ensure KVER                  install tools, headers and the guest kernel for KVER (idempotent)
#   kmod_default_kvers                print the default releases: Debian bookworm 6.1 and bookworm-backports 6.12
#   kmod_build KVER                   build stressmix.ko for KVER out of tree; print the .ko path.
#                                     KMOD_STRICT=1: W=1 C=1 (sparse) and any warning fails the build
#   kmod_static_bin PACKAGE BIN       build a workspace binary static (crt-static, release) in
#                                     $KMOD_CACHE/cargo-target; print its path
#   kmod_initramfs OUT KVER GUEST_SH [FILE...]
#                                     write a gzip'ed cpio to OUT: busybox, /stressmix.ko (not loaded),
#                                     FILE... in /bin, GUEST_SH as /guest.sh. Its /init mounts proc, sys,
#                                     devtmpfs, cgroup2 (/sys/fs/cgroup), a tmpfs /tmp, an ext4 file system
#                                     on a 128 MiB RAM disk at /mnt/disk, brings up loopback, runs
#                                     `sh /guest.sh`, prints "KMODTEST DONE rc=<its exit code>", then the
#                                     kernel log lines that look like Oops/BUG/WARNING, and powers off.
#   kmod_boot KVER INITRAMFS LOG [TIMEOUT_S]
#                                     boot under qemu (software emulation, 2 vCPUs, 1.5 GiB) under timeout
#                                     (default 900 s); the serial console goes to LOG. Prints the boot
#                                     time. Returns qemu's/timeout's status.
#   kmod_check_log LOG                fail (and say why) unless LOG has "KMODTEST DONE rc=0", no
#                                     "KMODTEST FAIL" line and no kernel Oops, BUG or WARNING
#   kmod_extract_files LOG DIR        write the files the guest sent with `kmod_send_file` (guest side:
#                                     /bin/kmod-send-file NAME PATH) into DIR
#
# Guest scripts get these helpers in /bin: `kmod-step NAME CMD...` (runs CMD, prints
# "KMODTEST PASS NAME" or "KMODTEST FAIL NAME: exit N"), `kmod-send-file NAME PATH` and `kmod-dmesg`
# (dmesg with the stack trace of each OOM report marked as expected: the suite OOM-kills on purpose).
# Cache: ${STRESSMIX_CACHE:-~/.cache/stressmix}/kmod/.

KMOD_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KMOD_CACHE=${STRESSMIX_CACHE:-$HOME/.cache/stressmix}/kmod
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${STRESSMIX_CACHE:-$HOME/.cache/stressmix}/cargo-target}

kmod_log() { echo "kmod-harness: $*" >&2; }

kmod_default_kvers() {
	"$KMOD_REPO/kmod/test/deps.sh" default-kvers
}

kmod_ensure() {
	local kver=$1
	"$KMOD_REPO/kmod/test/deps.sh" tools
	"$KMOD_REPO/kmod/test/deps.sh" kernel "$kver"
}

kmod_build() {
	local kver=$1 out=$KMOD_CACHE/build/$1
	mkdir -p "$out"
	# Several tests may build the same KVER at once (the agent's e2e test uses this too): one at a time.
	(
		flock 9
		_kmod_build_locked "$kver" "$out"
	) 9>"$out.lock"
}

_kmod_build_locked() {
	local kver=$1 out=$2 log=$2/build.log
	cp "$KMOD_REPO"/kmod/{Kbuild,Makefile,*.c,*.h} "$out/"
	local args=()
	[[ ${KMOD_STRICT:-0} == 1 ]] && args=(W=1 C=1)
	# Clean first so every file is compiled (and checked) again.
	make -s -C "$out" KVER="$kver" clean >/dev/null 2>&1 || true
	if ! nice make -C "$out" KVER="$kver" "${args[@]}" >"$log" 2>&1; then
		cat "$log" >&2
		kmod_log "build for $kver failed"
		return 1
	fi
	if [[ ${KMOD_STRICT:-0} == 1 ]] && grep -Ei 'warning|error:' "$log" >&2; then
		kmod_log "build for $kver has warnings (W=1 C=1): see above"
		return 1
	fi
	if [[ ${KMOD_STRICT:-0} == 1 ]] && ! grep -q 'CHECK .*snapshot.c' "$log"; then
		kmod_log "sparse did not run for $kver (no CHECK lines)"
		return 1
	fi
	echo "$out/stressmix.ko"
}

kmod_static_bin() {
	local pkg=$1 bin=$2
	# A target directory of its own: in the shared one, release builds of the same crate from other
	# checkouts or with other flags replaced this binary between our build and our use.
	local target=${KMOD_CARGO_TARGET_DIR:-$KMOD_CACHE/cargo-target}
	(cd "$KMOD_REPO" && CARGO_TARGET_DIR=$target RUSTFLAGS="-C target-feature=+crt-static" \
		nice cargo build -q --release --locked --target x86_64-unknown-linux-gnu -p "$pkg" \
		--bin "$bin" >&2) || return 1
	echo "$target/x86_64-unknown-linux-gnu/release/$bin"
}

# Kernel modules the guest needs for its RAM disk and file system, in load order.
_kmod_guest_modules() {
	local kver=$1 root=$2 line ko base n=0
	mkdir -p "$root/lib/modules"
	: >"$root/lib/modules/load-order"
	while read -r line; do
		[[ $line == insmod\ * ]] || continue
		ko=$(awk '{print $2}' <<<"$line")
		base=$(basename "$ko")
		base=${base%.xz}
		base=${base%.zst}
		case $ko in
		*.xz) xz -dc "$ko" >"$root/lib/modules/$base" ;;
		*.zst) zstd -qdc "$ko" >"$root/lib/modules/$base" ;;
		*) cp "$ko" "$root/lib/modules/$base" ;;
		esac
		grep -qx "$base" "$root/lib/modules/load-order" || echo "$base" >>"$root/lib/modules/load-order"
		n=$((n + 1))
	done < <(modprobe -S "$kver" --show-depends brd 2>/dev/null; modprobe -S "$kver" --show-depends ext4 2>/dev/null)
	[[ $n -gt 0 ]] || { kmod_log "no guest modules resolved for $kver"; return 1; }
}

kmod_initramfs() {
	local out=$1 kver=$2 guest=$3
	shift 3
	local root f
	root=$(mktemp -d "${TMPDIR:-/tmp}/kmod-initramfs.XXXXXX")
	chmod 755 "$root"
	mkdir -p "$root"/{bin,dev,proc,sys,tmp,mnt/disk,etc,root}
	cp /bin/busybox "$root/bin/busybox"
	for f in $(/bin/busybox --list); do
		[[ $f == busybox ]] || ln -sf busybox "$root/bin/$f"
	done
	ln -s bin "$root/sbin"
	cp "$KMOD_CACHE/build/$kver/stressmix.ko" "$root/stressmix.ko"
	_kmod_guest_modules "$kver" "$root" || { rm -rf "$root"; return 1; }
	for f in "$@"; do cp "$f" "$root/bin/"; done
	cp "$guest" "$root/guest.sh"
	echo "$kver" >"$root/etc/kver"
	cat >"$root/bin/kmod-step" <<'STEP'
#!/bin/sh
# kmod-step NAME CMD...: run CMD and report it the way the host script reads.
name=$1; shift
if "$@"; then echo "KMODTEST PASS $name"; else rc=$?; echo "KMODTEST FAIL $name: exit $rc"; exit $rc; fi
STEP
	cat >"$root/bin/kmod-dmesg" <<'DMESG'
#!/bin/sh
# kmod-dmesg: the kernel log, with the stack trace that every OOM report prints (dump_header) marked
# as expected, so the checks for Oops/BUG/WARNING/Call Trace do not take a deliberate OOM kill for a bug.
dmesg | awk '/invoked oom-killer/ { oom = 1 } oom && /Call Trace:/ { sub(/Call Trace:/, "(stack of the OOM report)"); oom = 0 } { print }'
DMESG
	cat >"$root/bin/kmod-send-file" <<'SEND'
#!/bin/sh
# kmod-send-file NAME PATH: send a file to the host over the console (base64 between markers).
echo "KMODTEST-FILE-BEGIN $1"
base64 "$2"
echo "KMODTEST-FILE-END $1"
SEND
	cat >"$root/init" <<'INIT'
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t cgroup2 none /sys/fs/cgroup
while read -r m; do
	case $m in
	brd.ko) insmod /lib/modules/$m rd_nr=1 rd_size=131072 ;;
	*) insmod /lib/modules/$m ;;
	esac || echo "kmod-harness: insmod $m failed"
done < /lib/modules/load-order
mke2fs -q /dev/ram0 && mount -t ext4 /dev/ram0 /mnt/disk || echo "kmod-harness: no disk at /mnt/disk"
ip link set lo up 2>/dev/null
echo "KMODTEST BOOTED $(cat /etc/kver) $(cut -d' ' -f1 /proc/uptime)s"
cd /root
sh /guest.sh
echo "KMODTEST DONE rc=$?"
kmod-dmesg | grep -E 'Oops|BUG:|WARNING:|Call Trace|general protection|stressmix|oom-kill|Killed process' | sed 's/^/KMODTEST-DMESG /'
sync
poweroff -f
INIT
	chmod +x "$root/init" "$root/guest.sh" "$root/bin/kmod-step" "$root/bin/kmod-send-file" "$root/bin/kmod-dmesg"
	(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
	rm -rf "$root"
}

kmod_boot() {
	local kver=$1 initrd=$2 log=$3 limit=${4:-900} start rc
	start=$(date +%s)
	# Software emulation on purpose: KVM boots printed nothing here (see DESIGN.md).
	timeout -k 10 "$limit" qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 1536 \
		-display none -monitor none -serial stdio -no-reboot \
		-kernel "/boot/vmlinuz-$kver" -initrd "$initrd" \
		-append "console=ttyS0 panic=-1 loglevel=4 rdinit=/init" </dev/null >"$log" 2>&1
	rc=$?
	kmod_log "$kver: qemu exited $rc after $(($(date +%s) - start)) s ($(grep -ao 'KMODTEST BOOTED.*' "$log" | tr -d '\r'))"
	[[ $rc -eq 124 ]] && kmod_log "$kver: timed out after $limit s"
	return $rc
}

kmod_check_log() {
	local log=$1 bad=0
	if grep -a 'KMODTEST FAIL' "$log" >&2; then bad=1; fi
	if grep -aE 'KMODTEST-DMESG .*(Oops|BUG:|WARNING:|Call Trace|general protection)' "$log" >&2; then
		kmod_log "kernel log has an Oops/BUG/WARNING"; bad=1
	fi
	if grep -aE '^\[ *[0-9.]+\] .*(Oops|BUG:|WARNING:|Call Trace)' "$log" >&2; then
		kmod_log "console shows an Oops/BUG/WARNING"; bad=1
	fi
	if ! grep -aq 'KMODTEST DONE rc=0' "$log"; then
		kmod_log "guest did not finish with rc=0: $(grep -a 'KMODTEST DONE' "$log" | tr -d '\r' || echo 'no DONE line')"
		bad=1
	fi
	return $bad
}

kmod_extract_files() {
	local log=$1 dir=$2
	mkdir -p "$dir"
	tr -d '\r' <"$log" | awk -v dir="$dir" '
		/^KMODTEST-FILE-BEGIN / { name = $2; file = dir "/" name ".b64"; printf "" > file; next }
		/^KMODTEST-FILE-END / { close(file); name = ""; next }
		name != "" { print >> file }'
	local f
	for f in "$dir"/*.b64; do
		[[ -e $f ]] || continue
		base64 -d "$f" >"${f%.b64}" || { kmod_log "corrupt file from guest: $f"; return 1; }
		rm -f "$f"
	done
}
