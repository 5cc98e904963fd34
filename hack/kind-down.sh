#!/usr/bin/env bash
# Delete the kind cluster that hack/kind-up.sh (`make up`) created, and everything in it.
# The kernel module stays loaded in the host kernel (kind nodes share it); remove it with
# `sudo rmmod stressmix` if you want it gone.
set -euo pipefail
cluster=${STRESSMIX_KIND_CLUSTER:-stressmix}
command -v kind >/dev/null 2>&1 || { echo "[kind-down] error: kind is not on PATH" >&2; exit 1; }
if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
	kind delete cluster --name "$cluster"
else
	echo "[kind-down] no kind cluster named $cluster: nothing to do" >&2
fi
