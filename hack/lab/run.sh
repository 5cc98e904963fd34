# shellcheck shell=bash
# Start, stop and inspect the lab: its control plane (a hack/testenv instance on the host) and the
# qemu guest that is its one node. Sourced by hack/lab/lab after common.sh, the build files and
# hack/testenv.d/run.sh. qemu's pid goes to $LAB_STATE/qemu.pid and `down` stops only that pid.

# shellcheck disable=SC2153 # LAB_STATE comes from common.sh
LAB_SHARE=$LAB_STATE/share
LAB_OUT=$LAB_STATE/out
LAB_CONSOLE=$LAB_STATE/console.log
LAB_QEMU=qemu-system-x86_64

_lab_qemu_pid() { _lab_pid qemu "$LAB_QEMU"; }

# _lab_pid NAME BINARY: the recorded pid of a process lab started, when it still runs that binary.
_lab_pid() {
  local pid exe
  [ -s "$LAB_STATE/$1.pid" ] || return 1
  pid=$(cat "$LAB_STATE/$1.pid")
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [ "$exe" = "$(command -v "$2")" ] || return 1
  echo "$pid"
}

_lab_node_ready() {
  [ "$(_kubectl get node "$LAB_NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

# The node's credentials (kubelet as system:node:<name>, kube-proxy) against the lab's CA, and the
# files the guest reads from its read-only share.
# The node's credentials (kubelet as system:node:<name>, kube-proxy) against the lab's CA, and what
# the guest reads: the payload disk (binaries, configuration, images: a virtio disk, because the 9p
# share reads at about 5 MB/s under emulation, 40 s for kubelet and the images) and the 9p share
# for what comes later (`run` scripts, `load`ed images).
_lab_share() {
  local kver=$1 rootfs payload=$LAB_STATE/payload
  rootfs=$(lab_rootfs_dir "$kver")
  local server=https://$LAB_APISERVER_ADDR:$APISERVER_PORT
  if [ ! -s "$PKI_DIR/kubelet.crt" ]; then
    _cert kubelet "/O=system:nodes/CN=system:node:$LAB_NODE"
    _cert kube-proxy "/CN=system:kube-proxy"
  fi
  rm -rf "$LAB_SHARE" "$payload"
  mkdir -p "$LAB_SHARE"/{cmd,images} "$payload"/{bin,guest,config,images}
  cp "$K8S_DIR/bin/kubelet" "$K8S_DIR/bin/kube-proxy" "$payload/bin/"
  cp "$LAB_REPO"/hack/lab/guest/{node-init,containerd.toml,cni.conflist,kubelet.yaml,kube-proxy.yaml} "$payload/guest/"
  cp "$LAB_IMAGES_DIR"/*.tar "$payload/images/"
  [ "$LAB_DNS" = 0 ] || cp "$COREDNS_DIR/coredns.tar" "$payload/images/"
  local f
  for f in $LAB_EXTRA_IMAGES; do
    [ -s "$f" ] || lab_die "STRESSMIX_LAB_IMAGES: no image archive $f"
    cp "$f" "$payload/images/extra-$(basename "$f")"
  done
  cp "$PKI_DIR/ca.crt" "$payload/config/"
  _kubeconfig kubelet "$payload/config/kubelet.kubeconfig" "$server"
  _kubeconfig kube-proxy "$payload/config/kube-proxy.kubeconfig" "$server"
  printf 'LAB_NODE=%s\nLAB_GUEST_IP=%s\nLAB_GATEWAY=%s\n' "$LAB_NODE" "$LAB_GUEST_IP" "$LAB_GATEWAY" \
    >"$payload/config/node.env"
  local mb
  mb=$(du -sm "$payload" | cut -f1)
  rm -f "$LAB_STATE/payload.ext4"
  mke2fs -q -t ext4 -L lab-payload -d "$payload" "$LAB_STATE/payload.ext4" "$((mb + mb / 4 + 16))M" ||
    lab_die "cannot make the payload disk"
  rm -rf "$payload"
}

# A fresh root disk (a qcow2 overlay on the cached image) and output share for one boot.
_lab_fresh_disk() {
  local rootfs
  rootfs=$(lab_rootfs_dir "$1")
  rm -rf "$LAB_OUT" "$LAB_STATE/disk.qcow2"
  mkdir -p "$LAB_OUT/cmd"
  qemu-img create -q -f qcow2 -F raw -b "$rootfs/root.ext4" "$LAB_STATE/disk.qcow2" ||
    lab_die "cannot create the disk overlay"
}

_lab_boot() {
  local kver=$1 rootfs
  rootfs=$(lab_rootfs_dir "$kver")
  # KVM is unusable here (its emulator stops on the Debian kernel): software emulation, 2 vCPUs.
  # The only network is qemu's user network, restricted (no way out), with one forward from the
  # guest to the API server on 127.0.0.1 (socat per connection); from 127.0.0.1 to the kubelet
  # (for the API server's node proxy) and to the log service's NodePort.
  setsid nice -n 10 "$LAB_QEMU" -accel tcg,thread=multi -cpu max -smp 2 -m "$LAB_MEM_MB" \
    -nodefaults -no-user-config -display none -no-reboot \
    -serial "file:$LAB_CONSOLE" \
    -kernel "$rootfs/vmlinuz" -initrd "$LAB_INITRAMFS" \
    -append "console=ttyS0 panic=-1 loglevel=4 $LAB_KERNEL_ARGS" \
    -drive "file=$LAB_STATE/disk.qcow2,if=virtio,format=qcow2,cache=unsafe" \
    -drive "file=$LAB_STATE/payload.ext4,if=virtio,format=raw,readonly=on" \
    -netdev "user,id=n0,restrict=on,guestfwd=tcp:$LAB_APISERVER_ADDR:$APISERVER_PORT-cmd:socat - TCP:127.0.0.1:$APISERVER_PORT,hostfwd=tcp:127.0.0.1:$LAB_KUBELET_FWD_PORT-$LAB_GUEST_IP:10250,hostfwd=tcp:127.0.0.1:$LAB_LOGSVC_PORT-$LAB_GUEST_IP:$LAB_LOGSVC_NODEPORT" \
    -device virtio-net-pci,netdev=n0 \
    -virtfs "local,path=$LAB_SHARE,mount_tag=lab,security_model=none,readonly=on" \
    -virtfs "local,path=$LAB_OUT,mount_tag=labout,security_model=none" \
    </dev/null >"$LAB_STATE/qemu.log" 2>&1 &
  echo $! >"$LAB_STATE/qemu.pid"
}

# Shows what a failed boot left: the console's and the node's own logs.
_lab_diagnose() {
  local f
  for f in "$LAB_STATE/qemu.log" "$LAB_CONSOLE" "$LAB_OUT/containerd.log" "$LAB_OUT/kubelet.log"; do
    if [ -s "$f" ]; then echo "--- tail $f" >&2; tail -n 25 "$f" >&2; fi
  done
}

# _lab_wait WHAT TIMEOUT CMD...: polls every second while qemu lives.
_lab_wait() {
  _lab_poll "$@" || { _lab_diagnose; lab_die "the guest stopped while waiting for $1"; }
}

# _lab_poll WHAT TIMEOUT CMD...: like _lab_wait, but returns 1 when the guest stops.
_lab_poll() {
  local what=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    _lab_qemu_pid >/dev/null || return 1
    if [ $SECONDS -ge $deadline ]; then
      _lab_diagnose
      lab_die "timed out after ${timeout}s waiting for $what (console: $LAB_CONSOLE)"
    fi
    sleep 1
  done
}

_lab_coredns_available() {
  [ "$(_kubectl -n kube-system get deployment coredns -o jsonpath='{.status.availableReplicas}' 2>/dev/null)" = 1 ]
}

lab_up() {
  local kver start
  if _lab_qemu_pid >/dev/null && _lab_pid node-proxy socat >/dev/null && _api_ready && _lab_node_ready; then
    lab_log "already up ($LAB_STATE)"
    return 0
  fi
  lab_build
  kver=$(lab_kver)
  "$LAB_REPO/hack/testenv" up
  if [ -e "$LAB_STATE/qemu.pid" ]; then
    lab_log "a previous guest is partly running or dead: stopping it first"
    _lab_stop_guest
  fi
  _lab_share "$kver"
  _lab_start_node_proxy
  local attempt
  for attempt in 1 2 3; do
    _lab_fresh_disk "$kver"
    start=$SECONDS
    _lab_boot "$kver"
    lab_log "guest booting (attempt $attempt; console: $LAB_CONSOLE)"
    _lab_poll "node $LAB_NODE Ready" "$LAB_BOOT_TIMEOUT" _lab_node_ready && break
    # Only a kernel crash is booted again: qemu's multi-threaded emulation now and then shows one
    # vCPU a stale instruction another has just patched (seen: "Oops: int3" in kernel code, 1.4 s
    # into the boot, about one boot in ten); anything else is a real failure.
    if [ "$attempt" = 3 ] || ! grep -qa 'Kernel panic' "$LAB_CONSOLE"; then
      _lab_diagnose
      lab_die "the guest stopped while waiting for node $LAB_NODE Ready (console: $LAB_CONSOLE)"
    fi
    cp "$LAB_CONSOLE" "$LAB_STATE/console-crash-$attempt.log"
    lab_log "the guest's kernel crashed: $(grep -a -m1 -E 'Oops|BUG|Kernel panic' "$LAB_CONSOLE" | cut -c1-120) (console kept in console-crash-$attempt.log); booting again"
    _lab_stop_guest
  done
  echo "$((SECONDS - start))" >"$LAB_STATE/boot-to-ready.seconds"
  lab_log "node $LAB_NODE Ready $((SECONDS - start)) s after qemu started"
  _kubectl apply --server-side -f "$LAB_REPO/hack/lab/addons/storage.yaml" >/dev/null || lab_die "cannot apply the storage"
  _lab_wait "the guest's image imports" 300 test -e "$LAB_OUT/images.done"
  lab_log "images imported $((SECONDS - start)) s after qemu started"
  if [ "$LAB_DNS" != 0 ]; then
    _kubectl apply --server-side -f "$LAB_REPO/hack/lab/addons/coredns.yaml" >/dev/null || lab_die "cannot apply CoreDNS"
    _lab_wait "CoreDNS available" 180 _lab_coredns_available
    lab_log "cluster DNS available $((SECONDS - start)) s after qemu started"
  fi
  lab_log "use: eval \"\$(hack/lab/lab env)\""
}

_lab_start_node_proxy() {
  _lab_pid node-proxy socat >/dev/null && return 0
  LAB_NODE=$LAB_NODE LAB_GUEST_IP=$LAB_GUEST_IP LAB_KUBELET_FWD_PORT=$LAB_KUBELET_FWD_PORT setsid socat \
    "UNIX-LISTEN:$STRESSMIX_TESTENV_NODE_PROXY_SOCKET,fork,unlink-early,mode=600" \
    "EXEC:$LAB_REPO/hack/lab/node-proxy-connect" </dev/null >>"$LAB_STATE/node-proxy.log" 2>&1 &
  echo $! >"$LAB_STATE/node-proxy.pid"
}

_lab_stop_guest() {
  local pid
  if pid=$(_lab_qemu_pid); then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    lab_log "stopped qemu (pid $pid)"
  fi
  rm -f "$LAB_STATE/qemu.pid" "$LAB_STATE/disk.qcow2"
}

lab_down() {
  _lab_stop_guest
  local pid
  if pid=$(_lab_pid node-proxy socat); then
    kill -TERM "$pid" 2>/dev/null || true
    lab_log "stopped the node proxy (pid $pid)"
  fi
  "$LAB_REPO/hack/testenv" down
  rm -rf "$LAB_STATE"
  lab_log "down: state removed"
}

lab_status() {
  local ok=0 pid
  if pid=$(_lab_qemu_pid); then echo "guest: running (qemu pid $pid)"; else echo "guest: not running"; ok=1; fi
  if pid=$(_lab_pid node-proxy socat); then echo "node proxy: running (pid $pid)"; else echo "node proxy: not running"; ok=1; fi
  "$LAB_REPO/hack/testenv" status || ok=1
  if _lab_node_ready; then echo "node $LAB_NODE: Ready"; else echo "node $LAB_NODE: not Ready"; ok=1; fi
  return $ok
}

lab_env() {
  cmd_env | grep -v STRESSMIX_TESTENV_NODE
  echo "export STRESSMIX_LAB_NODE=$LAB_NODE"
  echo "export STRESSMIX_LAB_LOGSVC_URL=http://127.0.0.1:$LAB_LOGSVC_PORT"
}

# lab_guest_run CMD...: run a shell command in the guest (no network way in: the guest's init polls
# the share for scripts and answers in the output share); prints its output, returns its status.
lab_guest_run() {
  _lab_qemu_pid >/dev/null || lab_die "the guest is not running"
  local id
  id=$(date +%s%N)
  printf '%s\n' "$*" >"$LAB_SHARE/cmd/$id.sh.tmp"
  mv "$LAB_SHARE/cmd/$id.sh.tmp" "$LAB_SHARE/cmd/$id.sh"
  local deadline=$((SECONDS + ${STRESSMIX_LAB_RUN_TIMEOUT:-60}))
  until [ -e "$LAB_OUT/cmd/$id.rc" ]; do
    [ $SECONDS -lt $deadline ] || { rm -f "$LAB_SHARE/cmd/$id.sh"; lab_die "the guest did not run the command in time"; }
    sleep 0.5
  done
  cat "$LAB_OUT/cmd/$id.out"
  rm -f "$LAB_SHARE/cmd/$id.sh"
  return "$(cat "$LAB_OUT/cmd/$id.rc")"
}

# lab_smoke: a pod of the hello image (built here, never pulled) reaches Running under runc on the
# node; prints the pod's cgroup directory as the guest sees it (the path form the agent parses).
lab_smoke() {
  local ns=lab-smoke pod=hello start uid cid
  if ! _lab_qemu_pid >/dev/null || ! _lab_node_ready; then lab_die "the lab is not up (hack/lab/lab up)"; fi
  _kubectl delete namespace "$ns" --ignore-not-found --wait=true >/dev/null
  _kubectl create namespace "$ns" >/dev/null
  start=$SECONDS
  _kubectl -n "$ns" apply -f - >/dev/null <<POD
apiVersion: v1
kind: Pod
metadata: { name: $pod }
spec:
  automountServiceAccountToken: false
  containers:
  - name: hello
    image: $LAB_HELLO_IMAGE
    imagePullPolicy: Never
    resources: { limits: { cpu: 100m, memory: 32Mi } }
POD
  _lab_wait "pod $ns/$pod Running" 180 _lab_pod_running "$ns" "$pod"
  lab_log "pod $ns/$pod Running $((SECONDS - start)) s after it was created"
  uid=$(_kubectl -n "$ns" get pod "$pod" -o jsonpath='{.metadata.uid}')
  cid=$(_kubectl -n "$ns" get pod "$pod" -o jsonpath='{.status.containerStatuses[0].containerID}')
  [[ $cid == containerd://* ]] || lab_die "container id $cid: not containerd's"
  cid=${cid#containerd://}
  # A Guaranteed pod under the cgroupfs driver: /kubepods/pod<uid>/<container id>, its process in it.
  local want=/kubepods/pod$uid/$cid got
  got=$(lab_guest_run "grep -l '^0::$want\$' /proc/[0-9]*/cgroup | head -n1 | xargs -r cat") ||
    lab_die "cannot read the container's cgroup in the guest"
  [ "$got" = "0::$want" ] || lab_die "no process of container $cid in cgroup $want (guest says: '$got')"
  lab_log "container $cid runs in cgroup $want"
  _kubectl delete namespace "$ns" --wait=false >/dev/null
}

_lab_pod_running() {
  [ "$(_kubectl -n "$1" get pod "$2" -o jsonpath='{.status.phase}' 2>/dev/null)" = Running ]
}

# lab_load TAR...: import image archives (docker-archive or OCI) into the node's containerd, the way
# `kind load image-archive` does; the images are then usable with imagePullPolicy Never/IfNotPresent.
lab_load() {
  local f base
  [ $# -gt 0 ] || lab_die "usage: hack/lab/lab load IMAGE.tar..."
  for f in "$@"; do
    [ -s "$f" ] || lab_die "no image archive $f"
    base=load-$(date +%s%N)-$(basename "$f")
    cp "$f" "$LAB_SHARE/images/$base"
    STRESSMIX_LAB_RUN_TIMEOUT=300 lab_guest_run "ctr -n k8s.io images import /mnt/labshare/images/$base" ||
      lab_die "importing $f into the node failed"
    rm -f "$LAB_SHARE/images/$base"
  done
}
