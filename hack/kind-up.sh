#!/usr/bin/env bash
# The whole stressmix stack on a local kind cluster (`make up`):
#   1. preflight, before anything is created: docker with BuildKit (buildx), kind, kubectl, helm; whether
#      the kernel module can be built and loaded here (headers, lockdown, Secure Boot) — if not, the
#      install goes on with agent.module.mode=none and says why;
#   2. a one-node kind cluster from kind-config.yaml;
#   3. both images built by hack/images/build.sh under a content-derived tag (a code change gives a new
#      tag, so a second `make up` rolls every pod onto the new images), saved as single-platform archives
#      and loaded with `kind load image-archive` (kind#3795: `kind load docker-image` fails with
#      "content digest ... not found" under Docker 29's containerd image store);
#   4. the CRDs applied, the release namespace labelled for the agent's Pod Security level, the chart
#      installed with charts/stressmix/ci/kind-values.yaml;
#   5. the example Workload applied, and the URLs printed.
# Idempotent: an existing cluster is reused, the release upgraded, the Workload re-applied.
# Environment knobs:
#   STRESSMIX_KIND_CLUSTER (default stressmix), STRESSMIX_EXAMPLE (default examples/workload.yaml),
#   STRESSMIX_MODULE_MODE (auto|build|none, default auto: build when the preflight allows it),
#   STRESSMIX_HELM_ARGS (extra helm arguments).
# Without a tool (for tests):
#   hack/kind-up.sh --print-config   the generated kind config
#   hack/kind-up.sh --print-module   the module decision: "build", or "none: <reason>"
# (STRESSMIX_HOST_ROOT prefixes the host paths the module decision reads, STRESSMIX_KERNEL_RELEASE
# replaces `uname -r`; both for tests.)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

cluster=${STRESSMIX_KIND_CLUSTER:-stressmix}
example=${STRESSMIX_EXAMPLE:-examples/workload.yaml}
namespace=stressmix-system
host_root=${STRESSMIX_HOST_ROOT:-}
kernel_release=${STRESSMIX_KERNEL_RELEASE:-$(uname -r)}

log() { printf '[kind-up] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

kind_config() {
	cat kind-config.yaml
}

# Why the module cannot be built and loaded on this host, or nothing when it can. Every kind node shares
# the host's kernel, so the host decides.
module_blocker() {
	local lockdown=$host_root/sys/kernel/security/lockdown
	local secureboot=$host_root/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c
	local build=$host_root/lib/modules/$kernel_release/build
	if [[ $(uname -s) != Linux ]]; then
		echo "the kind node runs in Docker's Linux VM, whose kernel headers this host does not have"
	elif [[ -r $lockdown ]] && grep -qE '\[(integrity|confidentiality)\]' "$lockdown"; then
		echo "kernel lockdown is active ($(<"$lockdown")): unsigned modules are refused"
	# The variable's last byte is 1 when Secure Boot is on; the first four are its attributes.
	elif [[ -r $secureboot ]] && [[ $(od -An -tu1 -j4 -N1 "$secureboot" | tr -d ' ') == 1 ]]; then
		echo "Secure Boot is on: the kernel refuses unsigned modules"
	elif [[ ! -e $build/Makefile ]]; then
		echo "no kernel headers for $kernel_release at /lib/modules/$kernel_release/build (Debian/Ubuntu: apt install linux-headers-$kernel_release)"
	fi
}

# "build", or "none: <reason>".
module_mode() {
	local reason
	case ${STRESSMIX_MODULE_MODE:-auto} in
	build) echo build ;;
	none) echo "none: STRESSMIX_MODULE_MODE=none" ;;
	auto)
		reason=$(module_blocker)
		if [[ -n $reason ]]; then echo "none: $reason"; else echo build; fi
		;;
	*) die "STRESSMIX_MODULE_MODE must be auto, build or none, not '${STRESSMIX_MODULE_MODE}'" ;;
	esac
}

case ${1:-} in
--print-config) kind_config; exit 0 ;;
--print-module) module_mode; exit 0 ;;
"") ;;
*) die "usage: $0 [--print-config | --print-module]" ;;
esac

for tool in docker kind kubectl helm; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is not on PATH (the quick start needs docker, kind, kubectl and helm)"
done
docker info >/dev/null 2>&1 || die "docker does not answer (is the daemon running, may this user use it?)"
docker buildx version >/dev/null 2>&1 ||
	die "docker has no BuildKit (buildx): images/Dockerfile uses RUN --mount, which the legacy builder refuses; install the buildx plugin (Debian: docker-buildx, Docker's packages: docker-buildx-plugin)"
[[ -f $example ]] || die "example Workload $example not found (set STRESSMIX_EXAMPLE)"

mode=$(module_mode)
if [[ $mode == build ]]; then
	log "kernel module: built on the node against the headers of $kernel_release"
else
	log "kernel module off (${mode#none: }); the agent reads cgroupfs and says so in every batch"
fi

config=$(mktemp)
archives=$(mktemp -d)
trap 'rm -rf "$config" "$archives"' EXIT
kind_config >"$config"

if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
	log "kind cluster $cluster exists: reusing it"
else
	log "creating kind cluster $cluster"
	kind create cluster --name "$cluster" --config "$config" --wait 120s
fi
kubectl config use-context "kind-$cluster" >/dev/null

tag=$(hack/images/build.sh --print-tag)
log "building the images, tag $tag"
hack/images/build.sh --tool docker --tag "$tag" --out "$archives"
log "loading the images into the node"
for archive in "$archives"/*.tar; do
	kind load image-archive --name "$cluster" "$archive"
done

# shellcheck disable=SC2086 # STRESSMIX_HELM_ARGS is a list of words on purpose
STRESSMIX_EXAMPLE=$example STRESSMIX_NAMESPACE=$namespace hack/install-stack.sh "$tag" "${mode%%:*}" ${STRESSMIX_HELM_ARGS:-}

cat <<MSG

stressmix is up (kernel module: ${mode}).
  Grafana:      http://localhost:3000   (anonymous viewer; admin password:
                kubectl -n $namespace get secret stressmix-grafana -o jsonpath='{.data.admin-password}' | base64 -d)
  Log service:  http://localhost:8000
  Workloads:    kubectl get workloads -A
  Stop:         make down
MSG
