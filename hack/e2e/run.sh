#!/usr/bin/env bash
# `make test-e2e` (issue 12): the whole stressmix stack on the lab node (hack/lab: a qemu guest that
# is a real Kubernetes node, its control plane on the host), checked end to end:
#   lab up with both images imported -> CRDs, chart with the kind values (Grafana off: no Grafana image
#   can be built here, nothing is pulled) -> examples/workload.yaml -> hack/e2e/check.py:
#     pods      every stress pod Running under runc with the operator's args; one exits 0 and is
#               replaced; the Workload Ready with the right counts
#     module    kmod-build built kmod/ against the node's headers, kmod-load loaded it, the batches
#               in the log service's database say source=module
#     attribution, numbers, dashboard   readings per stress pod with every label; cpu/memory/disk/
#               node figures against the load; every dashboard query answers one series per pod
#     metrics   the agent's /metrics as a Prometheus scrapes it: usage, pressure and throttling per pod
#     faults    the agent's pod and the log service's pod deleted: no batch lost, no sequence gap
#     oom       a memory pod past its limit: its kills attributed to Workload, kind and slot
#   -> the chart again with agent.module.mode=none (module unloaded): batches say source=cgroupfs with a
#   source_reason, attribution and /metrics unchanged -> teardown of exactly what this script started.
# On failure the guest's console, the cluster's state and the logs go to a kept directory under
# $STRESSMIX_CACHE/e2e/runs/ (printed). Bounded: every wait has a timeout and a message.
# Environment: STRESSMIX_E2E_KEEP=1 leaves the lab up (and reuses one already up);
# STRESSMIX_E2E_REUSE_ARCHIVES=1 skips the image build when both archives exist.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
here=$root/hack/e2e
cache=${STRESSMIX_CACHE:-$HOME/.cache/stressmix}
run_dir=$cache/e2e/runs/$(date -u +%Y%m%dT%H%M%SZ)
namespace=stressmix-system
started_lab=0
ok=0
t0=$SECONDS

log() { printf '[e2e %s +%ss] %s\n' "$(date -u +%H:%M:%S)" "$((SECONDS - t0))" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
is_ci() { [[ ${CI:-} == true ]]; }

if [[ $(id -u) -ne 0 ]]; then
	is_ci && die "test-e2e needs root (the lab's mmdebstrap, buildah, qemu's disks)"
	log "SKIP: test-e2e needs root (the lab's mmdebstrap, buildah, qemu's disks); CI runs it as root"
	exit 0
fi
for tool in python3 curl; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is missing"
done
mkdir -p "$run_dir"
# Keep the newest 10 failed runs' directories.
find "$cache/e2e/runs" -mindepth 1 -maxdepth 1 -type d | sort | head -n -10 | xargs -r rm -rf

# What a failed run leaves for a human: the guest's console and node logs, the cluster's state.
save_state() {
	local lab_state=$cache/lab/run p
	cp "$lab_state"/console*.log "$lab_state"/qemu.log "$run_dir/" 2>/dev/null || true
	cp "$lab_state"/out/*.log "$run_dir/" 2>/dev/null || true
	kubectl get pods -A -o wide >"$run_dir/pods.txt" 2>&1 || true
	kubectl get events -A --sort-by=.lastTimestamp >"$run_dir/events.txt" 2>&1 || true
	kubectl get workloads -A -o yaml >"$run_dir/workloads.yaml" 2>&1 || true
	kubectl -n "$namespace" logs deploy/stressmix-operator --tail=500 >"$run_dir/operator.log" 2>&1 || true
	kubectl -n "$namespace" logs deploy/stressmix-logsvc --tail=500 >"$run_dir/logsvc.log" 2>&1 || true
	for p in $(kubectl -n "$namespace" get pods -l app.kubernetes.io/component=agent -o name 2>/dev/null); do
		kubectl -n "$namespace" logs "$p" --all-containers --prefix --tail=500 >"$run_dir/agent-${p#pod/}.log" 2>&1 || true
	done
}

finish() {
	local rc=$?
	if [[ $ok != 1 ]]; then
		[[ $rc != 0 ]] || rc=1
		log "saving the guest's console and the cluster's state"
		save_state
		log "FAILED after $((SECONDS - t0)) s; kept: $run_dir"
	fi
	if [[ $started_lab == 1 && ${STRESSMIX_E2E_KEEP:-0} != 1 ]]; then
		hack/lab/lab down || log "hack/lab/lab down failed"
	fi
	exit "$rc"
}
trap finish EXIT

# 1. Images (built here with buildah; `make test-images` has usually just built them).
archives=$(hack/e2e/images.sh)
read -r -a image_archives <<<"$archives"
tag=$(hack/e2e/images.sh --tag)
log "images $tag: ${image_archives[*]}"

# 2. The lab node, with both images imported at boot.
if hack/lab/lab status >/dev/null 2>&1; then
	[[ ${STRESSMIX_E2E_KEEP:-0} == 1 ]] ||
		die "a lab is already up; test-e2e starts and stops its own (hack/lab/lab down first, or STRESSMIX_E2E_KEEP=1 to reuse it)"
	log "reusing the lab that is up (STRESSMIX_E2E_KEEP=1)"
else
	started_lab=1
	STRESSMIX_LAB_IMAGES="${image_archives[*]}" timeout 1200 hack/lab/lab up ||
		die "hack/lab/lab up failed or took over 20 min"
fi
eval "$(hack/lab/lab env)"
export STRESSMIX_E2E_RUN_DIR=$run_dir STRESSMIX_E2E_NAMESPACE=$namespace
t_lab=$SECONDS
log "lab up in $((t_lab - t0)) s"

# 3. The stack, module built on the node. kind's /host/usr/lib does not exist here; the guest's
# /usr/lib holds Debian's linux-kbuild-* directly.
log "installing the stack; Grafana off: no Grafana image can be built here (nothing can be pulled)"
helm_args=(--set grafana.enabled=false --set agent.module.hostUsrLib=/usr/lib)
STRESSMIX_HELM_TIMEOUT=12m hack/install-stack.sh "$tag" build "${helm_args[@]}" ||
	die "the stack did not install (helm --wait 12m)"
# helm --wait counts a one-node DaemonSet ready with its one pod unavailable (maxUnavailable 1): wait for
# the agent itself, whose init containers compile the module under emulation (about 2 min).
kubectl -n "$namespace" rollout status daemonset/stressmix-agent --timeout=600s ||
	die "the agent was not Ready within 600 s (kmod-build compiles under emulation)"
log "stack installed in $((SECONDS - t_lab)) s"

check() { python3 "$here/check.py" "$@" || die "check $1 failed"; }
check pods
log "every stress pod Running $((SECONDS - t_lab)) s after the install began"
check module build
check attribution
check metrics
check numbers
check dashboard
check faults
check oom

# 4. The same stack with the module off: the agent reads cgroupfs and says why.
log "reinstalling with agent.module.mode=none (the module unloaded from the node first)"
STRESSMIX_EXAMPLE='' STRESSMIX_HELM_TIMEOUT=5m hack/install-stack.sh "$tag" none "${helm_args[@]}" ||
	die "the stack did not upgrade to module mode none"
# The agent of mode none would still find the module the first install loaded (its own loader sees
# /proc/stressmix): unload it, then start the agent again on a node without it.
hack/lab/lab run "rmmod stressmix" || die "cannot unload the module in the guest"
kubectl -n "$namespace" delete pod -l app.kubernetes.io/component=agent --wait=true --timeout=120s >/dev/null ||
	die "the agent pod was not deleted within 120 s"
kubectl -n "$namespace" rollout status daemonset/stressmix-agent --timeout=180s ||
	die "the agent of module mode none was not Ready within 180 s"
check module none
check attribution
check metrics

ok=1
rm -rf "$run_dir" # the database copies of a green run are of no use
log "PASSED in $((SECONDS - t0)) s (lab up $((t_lab - t0)) s)"
