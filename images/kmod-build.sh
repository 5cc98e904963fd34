#!/usr/bin/env bash
# Entry point of the stressmix kmod-builder image (the agent DaemonSet's kmod-build init container):
#
#   kmod-build OUTDIR    build KMOD_SRC against the node's headers for KVER, with the compiler the
#                        kernel was built with; leave OUTDIR/stressmix.ko or OUTDIR/build-failure
#
# Environment: KVER (default uname -r), MODULES_DIR (default /lib/modules), KMOD_SRC (default
# /opt/stressmix/kmod), HOST_USR_LIB (the node's /usr/lib, default /host/usr/lib).
#
# Never blocks the agent: a failed build still exits 0 after writing OUTDIR/build-failure (one line
# `<cause>: <explanation>`, cause no-headers, compiler-mismatch or build-failed) for kmod-load to
# report; exit 2 only for a usage error. Loading is not done here (stressmix-agent load-module).
set -euo pipefail

KVER=${KVER:-$(uname -r)}
MODULES_DIR=${MODULES_DIR:-/lib/modules}
KMOD_SRC=${KMOD_SRC:-/opt/stressmix/kmod}
HOST_USR_LIB=${HOST_USR_LIB:-/host/usr/lib}

usage() {
	sed -n '2,9p' "$0" >&2
	exit 2
}

[[ $# -eq 1 && -n $1 ]] || usage
OUTDIR=$1
if ! mkdir -p "$OUTDIR" || ! rm -f "$OUTDIR/stressmix.ko" "$OUTDIR/build-failure" || [[ ! -w $OUTDIR ]]; then
	echo "kmod-build: OUTDIR $OUTDIR is not a writable directory" >&2
	usage
fi

# fail CAUSE EXPLANATION: the one-line outcome for kmod-load, then exit 0.
fail() {
	local line
	line="$1: $(tr '\n' ' ' <<<"$2" | sed 's/ *$//')"
	printf '%s\n' "$line" >"$OUTDIR/build-failure"
	printf 'kmod-build: cannot build: %s\n' "$line"
	exit 0
}
WORK=
# Anything unforeseen (cp, mktemp, ...) still ends in a build-failure line, not a crash loop.
on_exit() {
	local rc=$?
	[[ -z $WORK ]] || rm -rf "$WORK"
	if ((rc != 0)); then
		trap - EXIT
		fail build-failed "kmod-build stopped unexpectedly (exit $rc); see the messages above"
	fi
}
trap on_exit EXIT

check_headers() {
	local build=$1 target
	if [[ -L $build && ! -e $build ]]; then
		target=$(readlink "$build")
		if [[ $target == /usr/src/* ]]; then
			fail no-headers "the headers of $KVER link to $target, absent here: mount the node's /usr/src at /usr/src"
		fi
		fail no-headers "the headers of $KVER link to $target, absent here"
	fi
	[[ -e $build ]] ||
		fail no-headers "no kernel headers for $KVER at $build: install linux-headers-$KVER on the node and mount its /lib/modules and /usr/src"
	[[ -f $build/Makefile ]] ||
		fail no-headers "$build has no Makefile: not a kernel build tree"
}

# Debian's headers link scripts/ and tools/ to /usr/lib/linux-kbuild-<ver>; the node's /usr/lib is
# mounted aside at HOST_USR_LIB, so link those directories into the image's /usr/lib.
link_kbuild_dirs() {
	local build=$1 d name
	if [[ -d $HOST_USR_LIB ]]; then
		for d in "$HOST_USR_LIB"/linux-kbuild-*; do
			[[ -d $d ]] || continue
			name=/usr/lib/$(basename "$d")
			[[ -e $name ]] || ln -sfn "$d" "$name" ||
				fail build-failed "cannot link $d to $name (is the root filesystem read-only?)"
		done
	fi
	if [[ -L $build/scripts && ! -e $build/scripts ]]; then
		fail no-headers "$build/scripts links to $(readlink "$build/scripts"), absent here: mount the node's /usr/lib at $HOST_USR_LIB (Debian's linux-kbuild-* live there)"
	fi
}

# config_value BUILD NAME: the value of CONFIG_NAME the kernel was built with, unquoted.
config_value() {
	local f
	for f in "$1/include/config/auto.conf" "$1/.config"; do
		if [[ -f $f ]]; then
			sed -n "s/^CONFIG_$2=//p" "$f" | sed 's/^"\(.*\)"$/\1/' | head -n1
			return 0
		fi
	done
}

# major COMMAND: the major version COMMAND reports, empty when it does not run.
major() {
	local v
	v=$("$1" -dumpversion 2>/dev/null) || return 0
	printf '%s\n' "${v%%.*}"
}

# The compilers on PATH, for the mismatch message: "gcc-12, gcc-13, gcc (14)"; a name is not
# trusted for its version.
compilers_here() {
	local c m list=""
	while read -r c; do
		m=$(major "$c")
		[[ $c == *-"$m" ]] || c="$c (${m:-?})"
		list+="${list:+, }$c"
	done < <({ compgen -c | grep -xE '(gcc|clang)(-[0-9]+)?' || true; } | sort -uV)
	printf '%s\n' "${list:-no C compiler}"
}

# pick_compiler BUILD: sets CC_PICKED to the compiler of the same family and major version as the kernel's
# (CONFIG_CC_VERSION_TEXT, e.g. "x86_64-linux-gnu-gcc-13 (Ubuntu 13.3.0-6ubuntu2~24.04) 13.3.0").
pick_compiler() {
	local build=$1 text family ver want c
	text=$(config_value "$build" CC_VERSION_TEXT)
	if [[ $(config_value "$build" CC_IS_CLANG) == y ]]; then
		family=clang
		ver=$(config_value "$build" CLANG_VERSION)
	else
		family=gcc
		ver=$(config_value "$build" GCC_VERSION)
	fi
	# CONFIG_GCC_VERSION=120200 means 12.2.0; older kernels only have the text.
	if [[ $ver =~ ^[0-9]+$ && $ver -gt 0 ]]; then
		want=$((ver / 10000))
	else
		want=$({ grep -oE '[0-9]+\.[0-9]+\.[0-9]+' <<<"$text" || true; } | tail -n1 | cut -d. -f1)
	fi
	[[ -n $want ]] ||
		fail compiler-mismatch "cannot tell which compiler $KVER was built with (no CONFIG_CC_VERSION_TEXT in $build/include/config/auto.conf or .config)"
	for c in "${text%% *}" "$family-$want" "$(uname -m)-linux-gnu-$family-$want" "$family"; do
		if [[ -n $c ]] && command -v "$c" >/dev/null && [[ $(major "$c") == "$want" ]]; then
			CC_PICKED=$c
			return 0
		fi
	done
	fail compiler-mismatch "$KVER was built with $family $want ($text); this image has $(compilers_here)"
}

main() {
	local build=$MODULES_DIR/$KVER/build cc first
	check_headers "$build"
	link_kbuild_dirs "$build"
	pick_compiler "$build"
	cc=$CC_PICKED
	# KMOD_SRC lies in the image: build a scratch copy under /tmp (an emptyDir), leaving no objects behind.
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/kmod-build.XXXXXX")
	mkdir "$WORK/src"
	cp -a "$KMOD_SRC/." "$WORK/src/"
	echo "kmod-build: building $KMOD_SRC for $KVER with $cc" >&2
	if ! make -C "$WORK/src" KVER="$KVER" KDIR="$build" CC="$cc" HOSTCC="$cc" 2>&1 | tee "$WORK/build.log" >&2; then
		first=$(grep -m1 -E 'error|not found|No such file|[Ee]rror [0-9]' "$WORK/build.log" | cut -c1-240 || true)
		fail build-failed "make failed for $KVER with $cc${first:+: $first} (compiler output above)"
	fi
	[[ -f $WORK/src/stressmix.ko ]] ||
		fail build-failed "make succeeded for $KVER with $cc but wrote no stressmix.ko"
	cp "$WORK/src/stressmix.ko" "$OUTDIR/.stressmix.ko.tmp"
	mv "$OUTDIR/.stressmix.ko.tmp" "$OUTDIR/stressmix.ko"
	echo "kmod-build: built stressmix.ko for $KVER with $cc"
}

main
