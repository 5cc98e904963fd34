#!/usr/bin/env bash
# hack/bench/agent.sh [--containers N] [--seconds S]: agent overhead, module source vs cgroupfs
# fallback, side by side on one synthetic node (see agent-bench.py). Release builds.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${STRESSMIX_CACHE:-$HOME/.cache/stressmix}/cargo-target}
(cd "$repo" && nice cargo build -q --release --locked -p stressmix-agent -p stressmix-logsvc)
exec python3 "$repo/hack/bench/agent-bench.py" "$CARGO_TARGET_DIR/release/stressmix-agent" \
	"$CARGO_TARGET_DIR/release/stressmix-logsvc" "$@"
