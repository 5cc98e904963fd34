# shellcheck shell=bash
# shellcheck disable=SC2034 # the settings are used by the files that source this one
# Shared settings for hack/testenv: pinned versions, cache layout, logging helpers.
# Sourced, never executed.

# One pinned version each. Kubernetes matches the k8s-openapi feature (v1_36) pinned in Cargo.toml.
K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0
HELM_VERSION=v3.22.0

STRESSMIX_CACHE=${STRESSMIX_CACHE:-$HOME/.cache/stressmix}
TESTENV_CACHE=$STRESSMIX_CACHE/testenv
K8S_DIR=$TESTENV_CACHE/kubernetes-$K8S_VERSION
ETCD_DIR=$TESTENV_CACHE/etcd-$ETCD_VERSION
KWOK_DIR=$TESTENV_CACHE/kwok-$KWOK_VERSION
HELM_DIR=$TESTENV_CACHE/helm-$HELM_VERSION
# Everything a running control plane owns: certificates, etcd data, logs, pids. `down` removes it.
STATE_DIR=${STRESSMIX_TESTENV_STATE:-$TESTENV_CACHE/run}

# Ports on 127.0.0.1 (overridable so two checkouts can coexist).
ETCD_PORT=${STRESSMIX_TESTENV_ETCD_PORT:-23790}
ETCD_PEER_PORT=$((ETCD_PORT + 1))
APISERVER_PORT=${STRESSMIX_TESTENV_APISERVER_PORT:-26443}
KCM_PORT=${STRESSMIX_TESTENV_KCM_PORT:-20257}
SCHED_PORT=${STRESSMIX_TESTENV_SCHED_PORT:-20259}
KWOK_PORT=${STRESSMIX_TESTENV_KWOK_PORT:-20247}
NODE_NAME=${STRESSMIX_TESTENV_NODE:-kwok-node-0}

log() { printf '[testenv %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Go builds keep their module and build caches under the project cache, never in ~/go.
go_env() {
  export GOPATH=$TESTENV_CACHE/go
  export GOMODCACHE=$TESTENV_CACHE/go/pkg/mod
  export GOCACHE=$TESTENV_CACHE/go/cache
  export GOFLAGS="-mod=mod -buildvcs=false -trimpath"
  # Go 1.26 is installed; never let a module's `toolchain` line trigger a download.
  export GOTOOLCHAIN=local
  export CGO_ENABLED=0
}
