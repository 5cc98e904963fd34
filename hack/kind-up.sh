#!/usr/bin/env bash
# The whole stressmix stack on a local kind cluster (`make up`):
#   1. a one-node kind cluster from kind-config.yaml (plus mounts for /usr/lib/linux-kbuild-*),
#   2. the runtime and kmod-builder images built with docker and loaded into the node,
#   3. the CRDs applied, the chart installed into stressmix-system,
#   4. the example Workload applied, and the Grafana URL printed.
# Idempotent: an existing cluster is reused, the release upgraded, the Workload re-applied.
# Needs: docker, kind, kubectl, helm on PATH. Environment knobs:
#   STRESSMIX_KIND_CLUSTER (default stressmix), STRESSMIX_EXAMPLE (default examples/workload.yaml),
#   STRESSMIX_HELM_ARGS (extra helm arguments, e.g. "--set agent.module.mode=none").
# `hack/kind-up.sh --print-config` prints the generated kind config and exits (needs no tool).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

cluster=${STRESSMIX_KIND_CLUSTER:-stressmix}
example=${STRESSMIX_EXAMPLE:-examples/workload.yaml}
namespace=stressmix-system
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
[[ -n $version ]] || { echo "kind-up: cannot read the workspace version from Cargo.toml" >&2; exit 1; }
runtime_image=stressmix/stressmix:$version
builder_image=stressmix/kmod-builder:$version

log() { printf '[kind-up] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# kind-config.yaml ends with the node's extraMounts list; Debian/Ubuntu kernel headers link into
# /usr/lib/linux-kbuild-<ver>, whose names vary by host, so append one mount per directory found.
# (STRESSMIX_KBUILD_ROOT replaces /usr/lib, for tests.)
kind_config() {
	local dir
	cat kind-config.yaml
	for dir in "${STRESSMIX_KBUILD_ROOT:-/usr/lib}"/linux-kbuild-*; do
		[[ -d $dir ]] || continue
		printf '      - hostPath: %s\n        containerPath: %s\n        readOnly: true\n' "$dir" "$dir"
	done
}

if [[ ${1:-} == --print-config ]]; then
	kind_config
	exit 0
fi

for tool in docker kind kubectl helm; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is not on PATH (the quick start needs docker, kind, kubectl and helm)"
done
docker info >/dev/null 2>&1 || die "docker does not answer (is the daemon running, may this user use it?)"
[[ -f $example ]] || die "example Workload $example not found (set STRESSMIX_EXAMPLE)"

config=$(mktemp)
trap 'rm -f "$config"' EXIT
kind_config >"$config"
if [[ ! -e /lib/modules/$(uname -r)/build ]]; then
	log "warning: no kernel headers at /lib/modules/$(uname -r)/build; the agent's module build will fail."
	log "         install them (Debian: apt install linux-headers-$(uname -r)) or use STRESSMIX_HELM_ARGS='--set agent.module.mode=none'"
fi

if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
	log "kind cluster $cluster exists: reusing it"
else
	log "creating kind cluster $cluster"
	kind create cluster --name "$cluster" --config "$config" --wait 120s
fi
kubectl config use-context "kind-$cluster" >/dev/null

log "building $runtime_image and $builder_image"
docker build -f images/Dockerfile -t "$runtime_image" .
docker build -f images/kmod-builder.Dockerfile -t "$builder_image" .
log "loading images into the node"
kind load docker-image --name "$cluster" "$runtime_image" "$builder_image"

log "applying the CRDs"
kubectl apply --server-side -f crds/
kubectl wait --for=condition=Established --timeout=60s crd/workloads.stressmix.dev

log "installing the chart (Grafana downloads its Infinity plugin on first start: allow a few minutes)"
# shellcheck disable=SC2086 # STRESSMIX_HELM_ARGS is a list of words on purpose
helm upgrade --install stressmix charts/stressmix \
	--namespace "$namespace" --create-namespace \
	--values charts/stressmix/ci/kind-values.yaml \
	--wait --timeout 10m ${STRESSMIX_HELM_ARGS:-}

log "applying the example Workload $example"
kubectl apply -f "$example"

cat <<MSG

stressmix is up.
  Grafana:      http://localhost:3000   (anonymous viewer; admin password:
                kubectl -n $namespace get secret stressmix-grafana -o jsonpath='{.data.admin-password}' | base64 -d)
  Log service:  http://localhost:8000
  Workloads:    kubectl get workloads -A
  Stop:         make down
MSG
