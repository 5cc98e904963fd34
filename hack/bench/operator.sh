#!/usr/bin/env bash
# Operator benchmark on the test control plane: stressmix vs the built-in ReplicaSet controller
# (apply -> Running, reaction latency at 100 and 1,000 pods) and the operator's memory at 1,000 and
# 10,000 pods. Needs `hack/testenv up` and its env (`make bench-operator` does both).
# Prints a Markdown table and keeps a copy under $STRESSMIX_CACHE/bench/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out_dir=${STRESSMIX_CACHE:-$HOME/.cache/stressmix}/bench
mkdir -p "$out_dir"
out=$out_dir/operator-$(date -u +%Y%m%dT%H%M%SZ).md
# Release build: the operator is measured as it ships. First the framework's own share of the
# reaction latency (no cluster needed), then the cluster benchmark.
cargo bench --locked -p stressmix-operator --bench scheduler_hop | tee "$out"
cargo test --release --locked -p stressmix-operator --features cluster-tests --test cluster_bench | tee -a "$out"
echo "table saved to $out" >&2
