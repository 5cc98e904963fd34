#!/usr/bin/env bash
# `make up` on a host without Docker: the lab node (hack/lab) with the whole stack on it, the way
# `make test-e2e` installs it: both images built here with buildah and imported at boot, the CRDs,
# the chart with the kind values (module built on the node; Grafana off: its image cannot be built
# here and nothing is pulled), the example Workload. Prints the log service's URL on 127.0.0.1.
# Idempotent: a lab that is up is reused, the release upgraded. `make down` (hack/lab/lab down) stops it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
log() { printf '[up] %s\n' "$*" >&2; }

log "docker does not answer: using the lab node (a qemu guest; first run builds it, which takes a while)"
archives=$(hack/e2e/images.sh)
tag=$(hack/e2e/images.sh --tag)
STRESSMIX_LAB_IMAGES=$archives hack/lab/lab up
eval "$(hack/lab/lab env)"
log "Grafana is off: no Grafana image can be built here"
STRESSMIX_HELM_TIMEOUT=12m hack/install-stack.sh "$tag" build \
	--set grafana.enabled=false --set agent.module.hostUsrLib=/usr/lib
# helm --wait lets a one-node DaemonSet through with its pod unavailable; the agent compiles the
# module under emulation first (about 2 min).
kubectl -n stressmix-system rollout status daemonset/stressmix-agent --timeout=600s

cat <<MSG

stressmix is up on the lab node $STRESSMIX_LAB_NODE (kernel module built on the node).
  Log service:  $STRESSMIX_LAB_LOGSVC_URL   (e.g. $STRESSMIX_LAB_LOGSVC_URL/api/v1/snapshot)
  kubectl:      eval "\$(hack/lab/lab env)"; kubectl get workloads -A
  Grafana:      off (no Grafana image can be built without a registry)
  Stop:         make down
MSG
