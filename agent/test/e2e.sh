#!/usr/bin/env bash
# agent/test/e2e.sh [KVER]: the agent end to end in a real kernel. Boots the kernel under qemu with the
# kmod harness (kmod/test/lib.sh); inside, the static agent loads the freshly built module, reads it
# every second and ships to the static log service on the guest's loopback while a busy loop and a
# 64 MiB memory holder run in their own cgroups. The log service's database comes back over the
# serial console and check-e2e.py asserts the stored readings match the loads.
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
	"$bin/stressmix-agent" "$bin/stressmix-logsvc" "$bin/stressmix-stress"
log=$out/$kver.log
kmod_boot "$kver" "$out/e2e.cpio.gz" "$log" 900 || true
tr -d '\r' <"$log" | grep -aE '^(KMODTEST|E2E-)' | grep -v '^KMODTEST-FILE' || true
kmod_check_log "$log"
kmod_extract_files "$log" "$out/files"
python3 "$here/check-e2e.py" "$out/files" "$log"
