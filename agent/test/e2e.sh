#!/usr/bin/env bash
# agent/test/e2e.sh [KVER]: the agent end to end in a real kernel. Boots the kernel under qemu with the
# kmod harness (kmod/test/lib.sh); inside, the static agent ships to the static log service on the
# guest's loopback while a busy loop and a 64 MiB memory holder run in their own cgroups. The module
# init chain runs for real: images/kmod-build.sh builds on the host (one release without headers, the
# guest's release, and a stale variant), `stressmix-agent load-module` loads in the guest, and the
# agent reads what it wrote (guest-e2e.sh has the phases). The log service's database comes back
# over the serial console and check-e2e.py asserts the stored batches and readings.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
if [[ ! -f $repo/kmod/test/lib.sh ]]; then
	if [[ ${CI:-} == true ]]; then echo "agent e2e: kmod/test/lib.sh missing" >&2; exit 1; fi
	echo "SKIPPED agent e2e: kmod/test/lib.sh missing"; exit 0
fi
# shellcheck source=../../kmod/test/lib.sh
source "$repo/kmod/test/lib.sh"

kver=${1:-$(kmod_default_kvers | awk '{print $1}')}
out=$KMOD_CACHE/runs/agent-e2e-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
kmod_ensure "$kver" >/dev/null
kmod_build "$kver" >/dev/null

# The init chain's own build script (images/kmod-build.sh, the kmod-build init container) runs here
# on the host: (a) for a release without headers it must leave the one-line build-failure file;
# (b) for the guest's kernel it builds the .ko that load-module then loads in the guest; (c) the
# same sources with another MODULE_VERSION give a .ko of another srcversion, for the stale check.
kb=$out/kmod-build
mkdir -p "$kb/no-modules" "$kb/stale-src" "$out/files"
kmod_build_script() {
	local outdir=$1 kver=$2 modules=$3 src=$4
	KVER=$kver MODULES_DIR=$modules KMOD_SRC=$src HOST_USR_LIB=/usr/lib \
		nice "$repo/images/kmod-build.sh" "$outdir" 2>"$outdir.log"
}
kmod_build_script "$kb/fail" 0.0.0-e2e-no-headers "$kb/no-modules" "$repo/kmod"
kmod_build_script "$kb/ok" "$kver" /lib/modules "$repo/kmod"
cp "$repo"/kmod/{Kbuild,Makefile,*.c,*.h} "$kb/stale-src/"
sed -i 's/^#define SM_MODULE_VERSION "\(.*\)"/#define SM_MODULE_VERSION "\1-e2e-stale"/' "$kb/stale-src/stressmix.h"
kmod_build_script "$kb/stale" "$kver" /lib/modules "$kb/stale-src"
[[ -f $kb/fail/build-failure && ! -e $kb/fail/stressmix.ko ]] ||
	{ echo "agent e2e: kmod-build.sh left no build-failure for a release without headers" >&2; exit 1; }
for d in ok stale; do
	[[ -f $kb/$d/stressmix.ko ]] || { cat "$kb/$d.log" >&2; echo "agent e2e: kmod-build.sh built no $d .ko" >&2; exit 1; }
done
cp "$kb/fail/build-failure" "$kb/e2e-build-failure"
cp "$kb/ok/stressmix.ko" "$kb/e2e-built.ko"
cp "$kb/stale/stressmix.ko" "$kb/e2e-stale.ko"
# What check-e2e.py expects the guest to report.
python3 - "$kb" >"$out/files/expect.json" <<'PY'
import json, subprocess, sys
kb = sys.argv[1]
src = lambda ko: subprocess.check_output(["modinfo", "-F", "srcversion", ko], text=True).strip()
print(json.dumps({
    "build_failure": open(f"{kb}/e2e-build-failure").read().strip(),
    "srcversion_built": src(f"{kb}/e2e-built.ko"),
    "srcversion_stale": src(f"{kb}/e2e-stale.ko"),
}))
PY

static() {
	(cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" nice cargo build -q --release --locked \
		--target x86_64-unknown-linux-gnu "$@" >&2)
}
# No Kubernetes client in the guest: it has no cluster (attribution from paths only).
static -p stressmix-agent --no-default-features --bin stressmix-agent
static -p stressmix-logsvc --bin stressmix-logsvc
static -p stressmix-stress --bin stressmix-stress
bin=$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release

kmod_initramfs "$out/e2e.cpio.gz" "$kver" "$here/guest-e2e.sh" \
	"$bin/stressmix-agent" "$bin/stressmix-logsvc" "$bin/stressmix-stress" \
	"$kb/e2e-build-failure" "$kb/e2e-built.ko" "$kb/e2e-stale.ko"
log=$out/$kver.log
kmod_boot "$kver" "$out/e2e.cpio.gz" "$log" 900 || true
tr -d '\r' <"$log" | grep -aE '^(KMODTEST|E2E-)' | grep -v '^KMODTEST-FILE' || true
kmod_check_log "$log"
kmod_extract_files "$log" "$out/files"
python3 "$here/check-e2e.py" "$out/files" "$log"
