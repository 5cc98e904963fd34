# shellcheck shell=bash
# The kmod-builder image's entry point (images/kmod-build.sh) outside a container: its decisions and
# one-line outcomes against fake header trees (an auto.conf or .config and a stub Makefile, stub
# compilers on PATH: no root, no real compiler), then one real build against Debian's 6.1 headers.
# Sourced by run.sh (needs lib.sh and run.sh's `missing`).

KB_SCRIPT=images/kmod-build.sh

# kb_expect DESC WANT OUTDIR REGEX [VAR=VALUE...]: runs the script with those variables. WANT=built
# expects OUTDIR/stressmix.ko holding REGEX; WANT=<cause> expects OUTDIR/build-failure to be one line
# `<cause>: ...` matching REGEX. Either way: exit 0, exactly one stdout line, the other file absent.
kb_expect() {
	local desc="kmod-build: $1" want=$2 out=$3 re=$4 stdout rc=0 line
	shift 4
	stdout=$(env "$@" "$KB_SCRIPT" "$out" 2>"$out.stderr") || rc=$?
	if ((rc != 0)); then
		fail "$desc: exit $rc, want 0 (never block the agent): $stdout $(tail -n 3 "$out.stderr")"
		return
	fi
	if [[ -z $stdout || $stdout == *$'\n'* ]]; then
		fail "$desc: want one stdout line, got: $stdout"
		return
	fi
	if [[ $want == built ]]; then
		if [[ -f $out/stressmix.ko && ! -e $out/build-failure && $stdout == "kmod-build: built stressmix.ko for "* ]] &&
			grep -aqE -- "$re" "$out/stressmix.ko"; then
			pass "$desc ($stdout)"
		else
			fail "$desc: want $out/stressmix.ko matching '$re': $stdout $(cat "$out/build-failure" 2>/dev/null) $(tail -n 3 "$out.stderr")"
		fi
		return
	fi
	line=$(cat "$out/build-failure" 2>/dev/null || true)
	if [[ ! -e $out/stressmix.ko && $(wc -l <"$out/build-failure") -eq 1 && $line == "$want: "* &&
		$stdout == "kmod-build: cannot build: $line" ]] && grep -qE -- "$re" <<<"$line"; then
		pass "$desc ($line)"
	else
		fail "$desc: want '$want: ' matching '$re' in $out/build-failure and on stdout; got '$line', stdout '$stdout', .ko $([[ -e $out/stressmix.ko ]] && echo present || echo absent)"
	fi
}

# kb_tree DIR FILE CONFIG RECIPE: a fake kernel build tree: DIR/FILE (include/config/auto.conf or
# .config) holding CONFIG, a Makefile whose `modules` target runs RECIPE (M= is the scratch copy).
kb_tree() {
	mkdir -p "$1/$(dirname "$2")"
	printf '%s\n' "$3" >"$1/$2"
	printf 'modules:\n\t%s\n' "$4" >"$1/Makefile"
}

# kb_stub_cc NAME VERSION: a compiler on the test PATH that only answers -dumpversion.
kb_stub_cc() {
	printf '#!/bin/sh\necho %s\n' "$2" >"$KB_TMP/bin/$1"
	chmod +x "$KB_TMP/bin/$1"
}

kmod_build_checks() {
	local m ok rc log k61
	td_log "kmod-build script"
	KB_TMP=$(mktemp -d)
	m=$KB_TMP/modules
	mkdir -p "$KB_TMP/bin" "$m" "$KB_TMP/host-usr-lib"
	# shellcheck disable=SC2016 # make expands these, in the stub Makefile
	ok='@echo "CC=$(CC) HOSTCC=$(HOSTCC)" >$(M)/stressmix.ko'
	set -- MODULES_DIR="$m" KMOD_SRC=kmod HOST_USR_LIB="$KB_TMP/host-usr-lib" PATH="$KB_TMP/bin:$PATH"

	rc=0
	"$KB_SCRIPT" >/dev/null 2>&1 || rc=$?
	if ((rc == 2)); then pass "kmod-build: no OUTDIR exits 2 (usage)"; else fail "kmod-build: no OUTDIR: exit $rc, want 2"; fi

	# Headers: absent, a link into an unmounted /usr/src, no build tree, Debian's kbuild not mounted.
	kb_expect "headers absent" no-headers "$KB_TMP/o1" "no kernel headers for absent at $m/absent/build" "$@" KVER=absent
	mkdir -p "$m/dangling" && ln -s /usr/src/linux-headers-stressmix-test-absent "$m/dangling/build"
	kb_expect "headers a dangling link into /usr/src" no-headers "$KB_TMP/o2" "mount the node's /usr/src" "$@" KVER=dangling
	mkdir -p "$m/empty/build"
	kb_expect "headers without a Makefile" no-headers "$KB_TMP/o3" "has no Makefile" "$@" KVER=empty
	kb_tree "$m/debian-nokbuild/build" include/config/auto.conf 'CONFIG_CC_VERSION_TEXT=gcc-42 (Debian 42.2.0-1) 42.2.0' "$ok"
	ln -s ../../lib/linux-kbuild-stressmix-test/scripts "$m/debian-nokbuild/build/scripts"
	kb_expect "Debian kbuild link with the node's /usr/lib not mounted" no-headers "$KB_TMP/o4" \
		"links to ../../lib/linux-kbuild-stressmix-test/scripts.*mount the node's /usr/lib at $KB_TMP/host-usr-lib" "$@" KVER=debian-nokbuild

	# The compiler: same family and major version as CONFIG_CC_VERSION_TEXT / CONFIG_*_VERSION say.
	kb_stub_cc gcc-42 42.1.0
	kb_stub_cc x86_64-linux-gnu-gcc-43 43.1.0
	kb_stub_cc gcc-44 45.1.0
	kb_stub_cc clang-77 77.1.0
	kb_tree "$m/debian/build" include/config/auto.conf $'CONFIG_CC_VERSION_TEXT=gcc-42 (Debian 42.2.0-14+deb12u1) 42.2.0\nCONFIG_CC_IS_GCC=y\nCONFIG_GCC_VERSION=420200' "$ok"
	kb_expect "Debian kernel built with gcc-42: gcc-42 picked, for CC and HOSTCC" built "$KB_TMP/o5" '^CC=gcc-42 HOSTCC=gcc-42$' "$@" KVER=debian
	kb_tree "$m/ubuntu/build" include/config/auto.conf $'CONFIG_CC_VERSION_TEXT=x86_64-linux-gnu-gcc-43 (Ubuntu 43.3.0-6ubuntu2~24.04) 43.3.0\nCONFIG_CC_IS_GCC=y\nCONFIG_GCC_VERSION=430300' "$ok"
	kb_expect "Ubuntu kernel built with x86_64-linux-gnu-gcc-43: that compiler picked" built "$KB_TMP/o6" '^CC=x86_64-linux-gnu-gcc-43 ' "$@" KVER=ubuntu
	kb_tree "$m/dotconfig/build" .config $'CONFIG_CC_VERSION_TEXT="gcc (GCC) 42.0.1 20240912 (Red Hat 42.0.1-3)"\nCONFIG_CC_IS_GCC=y' "$ok"
	kb_expect "only a quoted .config, no CONFIG_GCC_VERSION: major read from the text" built "$KB_TMP/o7" '^CC=gcc-42 ' "$@" KVER=dotconfig
	kb_tree "$m/clang/build" include/config/auto.conf $'CONFIG_CC_VERSION_TEXT=Debian clang version 77.1.0 (3+b1)\nCONFIG_CC_IS_CLANG=y\nCONFIG_CLANG_VERSION=770100' "$ok"
	kb_expect "clang-built kernel: clang-77 picked" built "$KB_TMP/o8" '^CC=clang-77 ' "$@" KVER=clang
	kb_tree "$m/gcc99/build" include/config/auto.conf $'CONFIG_CC_VERSION_TEXT=gcc-99 (Debian 99.1.0-1) 99.1.0\nCONFIG_CC_IS_GCC=y\nCONFIG_GCC_VERSION=990100' "$ok"
	kb_expect "kernel wants an absent gcc: which one and what the image has" compiler-mismatch "$KB_TMP/o9" \
		'^compiler-mismatch: gcc99 was built with gcc 99 \(gcc-99 \(Debian 99.1.0-1\) 99.1.0\); this image has .*gcc-42' "$@" KVER=gcc99
	kb_tree "$m/gcc44/build" include/config/auto.conf $'CONFIG_CC_VERSION_TEXT=gcc-44 (Debian 44.1.0-1) 44.1.0\nCONFIG_CC_IS_GCC=y\nCONFIG_GCC_VERSION=440100' "$ok"
	kb_expect "a gcc-44 that reports 45 is not taken for 44" compiler-mismatch "$KB_TMP/o10" 'built with gcc 44 ' "$@" KVER=gcc44
	kb_tree "$m/clang88/build" include/config/auto.conf $'CONFIG_CC_VERSION_TEXT=clang version 88.0.0\nCONFIG_CC_IS_CLANG=y\nCONFIG_CLANG_VERSION=880000' "$ok"
	kb_expect "kernel wants an absent clang" compiler-mismatch "$KB_TMP/o11" 'built with clang 88 .*this image has .*clang-77' "$@" KVER=clang88
	mkdir -p "$m/noconfig/build" && printf 'modules:\n' >"$m/noconfig/build/Makefile"
	kb_expect "headers without auto.conf or .config" compiler-mismatch "$KB_TMP/o12" 'cannot tell which compiler noconfig was built with' "$@" KVER=noconfig

	# The build: make's first error in the line; stale outputs of an earlier run removed first.
	kb_tree "$m/broken/build" include/config/auto.conf $'CONFIG_CC_VERSION_TEXT=gcc-42 (Debian 42.2.0-1) 42.2.0\nCONFIG_GCC_VERSION=420200' \
		'@echo "stub.c:1:1: error: stub compiler failure" >&2; exit 1'
	mkdir -p "$KB_TMP/o13" && echo stale >"$KB_TMP/o13/stressmix.ko"
	kb_expect "make fails: first error quoted, stale stressmix.ko removed" build-failed "$KB_TMP/o13" \
		'make failed for broken with gcc-42: stub.c:1:1: error: stub compiler failure' "$@" KVER=broken
	kb_tree "$m/noko/build" include/config/auto.conf $'CONFIG_CC_VERSION_TEXT=gcc-42 (Debian 42.2.0-1) 42.2.0\nCONFIG_GCC_VERSION=420200' '@true'
	kb_expect "make succeeds without a module" build-failed "$KB_TMP/o14" 'wrote no stressmix.ko' "$@" KVER=noko
	echo "build-failed: stale" >"$KB_TMP/o5/build-failure"
	kb_expect "a later success removes a stale build-failure" built "$KB_TMP/o5" '^CC=gcc-42 ' "$@" KVER=debian

	# One real build: kmod/ against Debian's 6.1 headers (installed as the kmod tests do).
	log=$KB_TMP/deps.log
	if k61=$(kmod/test/deps.sh default-kvers 2>"$log" | cut -d' ' -f1) && [[ -n $k61 ]] &&
		kmod/test/deps.sh kernel "$k61" >>"$log" 2>&1; then
		kb_expect "real build against Debian's $k61 headers" built "$KB_TMP/real" "vermagic=$k61 " KVER="$k61" KMOD_SRC=kmod
	else
		missing "Debian 6.1 headers for a real kmod-build (kmod/test/deps.sh kernel): $(tail -n 3 "$log")"
	fi
	rm -rf "$KB_TMP"
}
