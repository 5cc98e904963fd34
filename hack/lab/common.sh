# shellcheck shell=bash
# shellcheck disable=SC2034 # the settings are used by the files that source this one
# Shared settings of hack/lab: cache layout, the lab's own control plane instance, guest addresses.
# Sourced, never executed.

LAB_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STRESSMIX_CACHE=${STRESSMIX_CACHE:-$HOME/.cache/stressmix}
LAB_CACHE=$STRESSMIX_CACHE/lab
# Everything a running lab owns (qemu pid, disk overlay, console log, the share); `down` removes it.
LAB_STATE=${STRESSMIX_LAB_STATE:-$LAB_CACHE/run}

# Cluster DNS, built from its Go module (no replace directives: `go install` works).
COREDNS_VERSION=v1.14.7
# STRESSMIX_LAB_IMAGES="a.tar b.tar": more image archives (docker-archive or OCI) on the payload disk,
# imported at boot before `up` returns (much faster than `load` through the 9p share).
LAB_EXTRA_IMAGES=${STRESSMIX_LAB_IMAGES:-}
# STRESSMIX_LAB_DNS=0: no CoreDNS (no cold CoreDNS build; pods resolve no cluster names).
LAB_DNS=${STRESSMIX_LAB_DNS:-1}
# Bump when the root file system's recipe (packages, hooks) changes: it is part of the cache key.
LAB_ROOTFS_RECIPE=1
# The guest's node name (Kubernetes wants it lowercase) and qemu's user-network addresses.
LAB_NODE=${STRESSMIX_LAB_NODE:-stressmix-lab}
LAB_GUEST_IP=10.0.2.15
LAB_GATEWAY=10.0.2.2
# The guest reaches the API server on the host at this address through qemu's guestfwd (socat to
# 127.0.0.1); it is also the API server's advertised address, so the `kubernetes` Service leads there.
LAB_APISERVER_ADDR=10.0.2.100
LAB_MEM_MB=${STRESSMIX_LAB_MEM_MB:-3072}
LAB_DISK_GB=${STRESSMIX_LAB_DISK_GB:-8}
# More kernel command line for the guest (debugging; a test breaks the boot with rdinit=/nonexistent).
LAB_KERNEL_ARGS=${STRESSMIX_LAB_KERNEL_ARGS:-}
# Bounded waits (seconds); software emulation is slow, and slower while anything builds on the host.
LAB_BOOT_TIMEOUT=${STRESSMIX_LAB_BOOT_TIMEOUT:-300}

# The lab's own hack/testenv instance: own state and ports (the test control plane and the testenv
# selftest use others), no kwok (the node is real), the Endpoints of `kubernetes` kept at the forward,
# and the controllers a real node's Services and volumes need.
export STRESSMIX_TESTENV_STATE=$LAB_STATE/testenv
export STRESSMIX_TESTENV_ETCD_PORT=${STRESSMIX_LAB_ETCD_PORT:-23990}
export STRESSMIX_TESTENV_APISERVER_PORT=${STRESSMIX_LAB_APISERVER_PORT:-26643}
export STRESSMIX_TESTENV_KCM_PORT=${STRESSMIX_LAB_KCM_PORT:-20457}
export STRESSMIX_TESTENV_SCHED_PORT=${STRESSMIX_LAB_SCHED_PORT:-20459}
export STRESSMIX_TESTENV_KWOK=0
export STRESSMIX_TESTENV_ADVERTISE_ADDRESS=$LAB_APISERVER_ADDR
# kubectl logs/exec/port-forward: the API server's egress goes through hack/lab/node-proxy-connect
# (socat on this socket) to qemu's forward of the kubelet port on 127.0.0.1.
export STRESSMIX_TESTENV_NODE_PROXY_SOCKET=$LAB_STATE/node-proxy.sock
LAB_KUBELET_FWD_PORT=${STRESSMIX_LAB_KUBELET_PORT:-20450}
# The log service for the host: 127.0.0.1:<this> is forwarded to the node's NodePort 30800 (the
# chart's logsvc.service.nodePort, as kind maps its host port 8000 to it).
LAB_LOGSVC_PORT=${STRESSMIX_LAB_LOGSVC_PORT:-28000}
LAB_LOGSVC_NODEPORT=30800
export STRESSMIX_TESTENV_EXTRA_CONTROLLERS=endpoints-controller,endpointslice-controller,endpointslice-mirroring-controller,persistentvolume-binder-controller,ttl-after-finished-controller,pod-garbage-collector-controller

# shellcheck source=hack/testenv.d/common.sh
. "$LAB_REPO/hack/testenv.d/common.sh"

lab_log() { printf '[lab %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
lab_die() { lab_log "error: $*"; exit 1; }

# kubelet lowercases the name it registers, and then its certificate (system:node:<name>) no longer matches.
[[ $LAB_NODE =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || lab_die "STRESSMIX_LAB_NODE=$LAB_NODE: a node name is lowercase letters, digits and '-'"
