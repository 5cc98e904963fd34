#!/usr/bin/env bash
# Entry point of the stressmix kmod-builder image, run as the agent DaemonSet's init container.
#
#   kmod-build-and-load build            build /opt/stressmix/kmod against the running kernel, then load it
#   kmod-build-and-load prebuilt DIR     load DIR/stressmix.ko (built elsewhere for this exact kernel)
#
# Environment: PROC_NAME (module parameter proc_name, default stressmix), KMOD_SRC (default
# /opt/stressmix/kmod), HOST_USR_LIB (where the node's /usr/lib is mounted, default /host/usr/lib);
# for tests: KVER (default uname -r), MODULES_DIR (default /lib/modules), LOCKDOWN_FILE.
#
# The module is never unloaded here: every kind node shares the host kernel, so unloading from one
# node's pod would pull it from under all of them. A module already loaded is success.
set -euo pipefail

PROC_NAME="${PROC_NAME:-stressmix}"
KMOD_SRC="${KMOD_SRC:-/opt/stressmix/kmod}"
HOST_USR_LIB="${HOST_USR_LIB:-/host/usr/lib}"
KVER="${KVER:-$(uname -r)}"
MODULES_DIR="${MODULES_DIR:-/lib/modules}"
LOCKDOWN_FILE="${LOCKDOWN_FILE:-/sys/kernel/security/lockdown}"

log() { printf 'kmod-loader: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
	sed -n '2,10p' "$0" >&2
	exit 2
}

# Secure Boot / lockdown rejects unsigned modules; say so instead of a bare EPERM.
check_lockdown() {
	local f=$LOCKDOWN_FILE
	if [[ -r $f ]] && grep -qE '\[(integrity|confidentiality)\]' "$f"; then
		die "kernel lockdown is active ($(cat "$f")): unsigned modules cannot be loaded; run the agent with agent.module.mode=none (cgroupfs fallback)"
	fi
}

# Debian's linux-headers-* link scripts/ and tools/ into /usr/lib/linux-kbuild-<ver>; the node's
# /usr/lib is mounted aside, so link just those directories into place.
link_kbuild_dirs() {
	local d
	[[ -d $HOST_USR_LIB ]] || return 0
	for d in "$HOST_USR_LIB"/linux-kbuild-*; do
		[[ -d $d ]] || continue
		if [[ ! -e /usr/lib/$(basename "$d") ]]; then
			ln -s "$d" "/usr/lib/$(basename "$d")"
		fi
	done
}

build_module() {
	local build_dir="$MODULES_DIR/$KVER/build" work
	[[ -e $build_dir ]] || die "no kernel headers for $KVER at $build_dir: mount the node's /lib/modules and /usr/src (kind-config.yaml does) or install linux-headers-$KVER on the node"
	[[ -e $build_dir/Makefile ]] || die "$build_dir exists but is not a kernel build tree (a dangling link into /usr/src?): mount the node's /usr/src"
	link_kbuild_dirs
	# The root filesystem is read-only: build in a scratch copy under /tmp (an emptyDir).
	work="$(mktemp -d /tmp/stressmix-kmod.XXXXXX)"
	cp -a "$KMOD_SRC/." "$work/"
	log "building stressmix.ko for $KVER"
	make -C "$work" KVER="$KVER" KDIR="$build_dir" >&2 || die "module build failed for $KVER (see the compiler output above)"
	[[ -f $work/stressmix.ko ]] || die "build finished but $work/stressmix.ko is missing"
	printf '%s\n' "$work/stressmix.ko"
}

load_module() {
	local ko="$1" out
	if [[ -e /proc/$PROC_NAME ]]; then
		log "/proc/$PROC_NAME already exists: module already loaded, nothing to do"
		return 0
	fi
	[[ -f $ko ]] || die "module file $ko not found"
	check_lockdown
	log "loading $ko (proc_name=$PROC_NAME)"
	if ! out="$(insmod "$ko" "proc_name=$PROC_NAME" 2>&1)"; then
		# EEXIST: another node's pod loaded it between our check and insmod.
		if grep -q 'File exists' <<<"$out"; then
			log "already loaded by another pod (EEXIST): fine"
			return 0
		fi
		if grep -qi 'invalid module format' <<<"$out"; then
			die "insmod refused $ko: $out (built for another kernel? vermagic must match $KVER)"
		fi
		die "insmod $ko failed: $out"
	fi
	[[ -e /proc/$PROC_NAME ]] || die "module loaded but /proc/$PROC_NAME did not appear"
	log "loaded: /proc/$PROC_NAME is present"
}

main() {
	local mode="${1:-build}" ko
	case "$mode" in
	build)
		if [[ -e /proc/$PROC_NAME ]]; then
			log "/proc/$PROC_NAME already exists: module already loaded, skipping the build"
			return 0
		fi
		ko="$(build_module)"
		load_module "$ko"
		;;
	prebuilt)
		[[ $# -eq 2 ]] || usage
		load_module "$2/stressmix.ko"
		;;
	*) usage ;;
	esac
}

main "$@"
