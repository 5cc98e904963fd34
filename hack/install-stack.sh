#!/usr/bin/env bash
# Install the whole stressmix stack on the cluster kubectl points at (shared by the kind quick start,
# hack/kind-up.sh, and the lab node's hack/e2e/run.sh): the CRDs, the release namespace labelled for
# the agent's Pod Security level, the chart (helm upgrade --install --wait) with the given values, then
# the example Workload. The images must already be on the node (kind load, or the lab's imports).
#   hack/install-stack.sh TAG MODULE_MODE [HELM ARGS...]
# Environment: STRESSMIX_NAMESPACE (default stressmix-system), STRESSMIX_EXAMPLE (default
# examples/workload.yaml; empty: no Workload), STRESSMIX_VALUES (default charts/stressmix/ci/kind-values.yaml),
# STRESSMIX_HELM_TIMEOUT (default 10m).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

log() { printf '[install-stack] %s\n' "$*" >&2; }
[[ $# -ge 2 ]] || { log "usage: $0 TAG MODULE_MODE [HELM ARGS...]"; exit 2; }
tag=$1 mode=$2
shift 2
namespace=${STRESSMIX_NAMESPACE:-stressmix-system}
example=${STRESSMIX_EXAMPLE-examples/workload.yaml}
values=${STRESSMIX_VALUES:-charts/stressmix/ci/kind-values.yaml}

log "applying the CRDs"
kubectl apply --server-side -f crds/
kubectl wait --for=condition=Established --timeout=60s crd/workloads.stressmix.dev

# The agent needs hostPID, host paths and capabilities: Pod Security level "privileged" in its namespace.
kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl label namespace "$namespace" --overwrite pod-security.kubernetes.io/enforce=privileged >/dev/null

log "installing the chart (image tag $tag, module mode $mode)"
helm upgrade --install stressmix charts/stressmix \
	--namespace "$namespace" \
	--values "$values" \
	--set "image.tag=$tag" --set "agent.module.builderImage.tag=$tag" \
	--set "agent.module.mode=$mode" \
	--wait --timeout "${STRESSMIX_HELM_TIMEOUT:-10m}" "$@"

if [[ -n $example ]]; then
	log "applying the example Workload $example"
	kubectl apply -f "$example"
fi
