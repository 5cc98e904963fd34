#!/usr/bin/env bash
# kmod/test/run.sh [--bench] [--fixtures DIR] [KVER...]
# Builds the module (W=1, sparse, warnings fail) and boots each kernel (default: Debian bookworm 6.1
# and bookworm-backports 6.12) under qemu with the guest checks (guest-suite.sh), or with the
# benchmark (guest-bench.sh) when --bench is given. Exits non-zero when any check fails.
# --fixtures DIR: copy the documents the guest read into DIR (api/tests/fixtures/kmod).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

mode=suite
fixtures=
kvers=()
while [[ $# -gt 0 ]]; do
	case $1 in
	--bench) mode=bench ;;
	--fixtures) fixtures=$2; shift ;;
	-*) echo "usage: $0 [--bench] [--fixtures DIR] [KVER...]" >&2; exit 2 ;;
	*) kvers+=("$1") ;;
	esac
	shift
done
[[ ${#kvers[@]} -gt 0 ]] || read -r -a kvers <<<"$(kmod_default_kvers)"

out=$KMOD_CACHE/runs/$(date +%Y%m%d-%H%M%S)-$mode
mkdir -p "$out"
t0=$(date +%s)
checker=$(kmod_static_bin stressmix-kmod-check stressmix-kmod-check)
kmod_log "static checker built in $(($(date +%s) - t0)) s"
failed=()
for kver in "${kvers[@]}"; do
	kmod_log "=== $kver ($mode)"
	t0=$(date +%s)
	if ! kmod_ensure "$kver" >/dev/null; then
		if [[ ${CI:-} == true ]]; then
			kmod_log "FAIL: cannot install the kernel $kver, its headers or the tools (CI=true)"
			exit 1
		fi
		kmod_log "SKIP: cannot install the kernel $kver, its headers or the tools (not root, or no apt?); CI would fail here"
		exit 0
	fi
	t1=$(date +%s)
	KMOD_STRICT=1 kmod_build "$kver" >/dev/null || { failed+=("$kver:build"); continue; }
	kmod_log "$kver: module builds warning-free with W=1 and sparse (C=1) ($((t1 - t0)) s deps check, $(($(date +%s) - t1)) s build)"
	kmod_initramfs "$out/$kver.cpio.gz" "$kver" "$here/guest-$mode.sh" "$checker"
	log=$out/$kver.log
	kmod_boot "$kver" "$out/$kver.cpio.gz" "$log" 1500 || true
	tr -d '\r' <"$log" | grep -aE '^(KMODTEST|KMODBENCH|  )' | grep -v '^KMODTEST-FILE' | grep -av '^[A-Za-z0-9+/=]*$' || true
	if kmod_check_log "$log"; then
		kmod_log "$kver: PASS ($(tr -d '\r' <"$log" | grep -ac '^KMODTEST PASS') checks; log $log)"
	else
		failed+=("$kver")
		kmod_log "$kver: FAIL (log $log)"
	fi
	if [[ $mode == bench ]]; then
		echo "| kernel | cgroups | module read (us) | module read + parse (us) | userspace reader (us) | module / userspace |"
		echo "|---|---:|---:|---:|---:|---:|"
		tr -d '\r' <"$log" | awk -v k="$kver" '$1 == "KMODBENCH" && $2 != "header" {
			printf "| %s | %s (%s listed) | %s | %s | %s | %s |\n", k, $2, $3, $4, $5, $6, $7 }'
	fi
	if [[ $mode == suite ]]; then
		kmod_extract_files "$log" "$out/files"
		if [[ -n $fixtures ]]; then
			for f in "$out/files/$kver"-{all,containers,escapes}; do
				[[ -f $f ]] && cp "$f" "$fixtures/$(basename "$f" | sed 's/^\([0-9]*\.[0-9]*\)[^-]*-.*-\(all\|containers\|escapes\)$/linux-\1-real-\2/').json"
			done
		fi
	fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
	kmod_log "FAILED: ${failed[*]}"
	exit 1
fi
kmod_log "all passed: ${kvers[*]}"
