# shellcheck shell=bash
# Start, stop and inspect the test control plane. Sourced by hack/testenv after common.sh.
# Every process runs on 127.0.0.1; its pid goes to $STATE_DIR/pids/<name>.pid and `down` stops only those.

PIDS_DIR=$STATE_DIR/pids
LOGS_DIR=$STATE_DIR/logs
PKI_DIR=$STATE_DIR/pki
KUBECONFIG_ADMIN=$STATE_DIR/admin.kubeconfig
# Knobs for an instance that serves a real node (hack/lab) instead of kwok's fake one:
#   STRESSMIX_TESTENV_KWOK=0                  no kwok and no fake node
#   STRESSMIX_TESTENV_ADVERTISE_ADDRESS=IP    the address in the `kubernetes` Service's Endpoints (kept
#                                             there by the lease reconciler) and in the serving certificate;
#                                             the API server still listens on 127.0.0.1 only
#   STRESSMIX_TESTENV_EXTRA_CONTROLLERS=a,b   controllers run besides the default list
#   STRESSMIX_TESTENV_NODE_PROXY_SOCKET=PATH  the API server reaches nodes (kubelet: logs, exec,
#                                             port-forward) through an HTTP CONNECT proxy on this Unix
#                                             socket (its egress selector), with a kubelet client certificate
TESTENV_KWOK=${STRESSMIX_TESTENV_KWOK:-1}
ADVERTISE_ADDRESS=${STRESSMIX_TESTENV_ADVERTISE_ADDRESS:-127.0.0.1}
EXTRA_CONTROLLERS=${STRESSMIX_TESTENV_EXTRA_CONTROLLERS:-}
NODE_PROXY_SOCKET=${STRESSMIX_TESTENV_NODE_PROXY_SOCKET:-}
# Start order; `down` stops in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler)
[ "$TESTENV_KWOK" = 0 ] || COMPONENTS+=(kwok)

_component_bin() {
  case $1 in
    etcd) echo "$ETCD_DIR/etcd" ;;
    kwok) echo "$KWOK_DIR/kwok" ;;
    *) echo "$K8S_DIR/bin/$1" ;;
  esac
}

# A pid counts as ours only when it is alive and still runs the binary we started (pids get reused).
_running_pid() {
  local name=$1 pidfile=$PIDS_DIR/$1.pid pid exe
  [ -s "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [ "$exe" = "$(_component_bin "$name")" ] || return 1
  echo "$pid"
}

_kubectl() { "$K8S_DIR/bin/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

_api_ready() {
  curl -sf --max-time 2 --cacert "$PKI_DIR/ca.crt" --cert "$PKI_DIR/admin.crt" --key "$PKI_DIR/admin.key" \
    "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null 2>&1
}

# wait_for <what> <seconds> <command...>: polls every 0.2 s; on timeout shows the logs of what failed.
_wait_for() {
  local what=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    if [ $SECONDS -ge $deadline ]; then
      log "timed out after ${timeout}s waiting for $what"
      local c
      for c in "${COMPONENTS[@]}"; do
        [ -f "$LOGS_DIR/$c.log" ] && { echo "--- tail $LOGS_DIR/$c.log" >&2; tail -n 15 "$LOGS_DIR/$c.log" >&2; }
      done
      die "$what not ready"
    fi
    sleep 0.2
  done
}

_ensure_openssl() {
  command -v openssl >/dev/null && return 0
  # shellcheck source=hack/lib/apt.sh
  . "$(dirname "${BASH_SOURCE[0]}")/../lib/apt.sh"
  apt_install openssl
}

# _cert <name> <subject> [<subjectAltName>]: a key and a certificate signed by the test CA.
_cert() {
  local name=$1 subj=$2 san=${3:-}
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI_DIR/$name.key" -subj "$subj" -out "$PKI_DIR/$name.csr" 2>/dev/null
  local ext=$PKI_DIR/$name.ext
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$san" ]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$san"; else echo "extendedKeyUsage=clientAuth"; fi
  } >"$ext"
  openssl x509 -req -in "$PKI_DIR/$name.csr" -CA "$PKI_DIR/ca.crt" -CAkey "$PKI_DIR/ca.key" -CAcreateserial \
    -days 3650 -extfile "$ext" -out "$PKI_DIR/$name.crt" 2>/dev/null
  rm -f "$PKI_DIR/$name.csr" "$ext"
}

# _kubeconfig <name> <out> [<server>]: the server defaults to the API server on 127.0.0.1.
_kubeconfig() {
  local name=$1 out=$2 server=${3:-https://127.0.0.1:$APISERVER_PORT}
  cat >"$out" <<KC
apiVersion: v1
kind: Config
clusters:
- name: stressmix-testenv
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 "$PKI_DIR/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 "$PKI_DIR/$name.crt")
    client-key-data: $(base64 -w0 "$PKI_DIR/$name.key")
contexts:
- name: stressmix-testenv
  context: { cluster: stressmix-testenv, user: $name }
current-context: stressmix-testenv
KC
}

_make_pki() {
  [ -s "$KUBECONFIG_ADMIN" ] && return 0
  _ensure_openssl
  mkdir -p "$PKI_DIR"
  openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$PKI_DIR/ca.key" -subj "/CN=stressmix-testenv-ca" \
    -days 3650 -out "$PKI_DIR/ca.crt" 2>/dev/null
  local advertise_san=
  [ "$ADVERTISE_ADDRESS" = 127.0.0.1 ] || advertise_san="IP:$ADVERTISE_ADDRESS,"
  _cert apiserver "/CN=kube-apiserver" \
    "${advertise_san}IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  _cert admin "/O=system:masters/CN=stressmix-testenv-admin"
  _cert kube-controller-manager "/CN=system:kube-controller-manager"
  _cert kube-scheduler "/CN=system:kube-scheduler"
  [ -z "$NODE_PROXY_SOCKET" ] || _cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  openssl genrsa -out "$PKI_DIR/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI_DIR/sa.key" -pubout -out "$PKI_DIR/sa.pub" 2>/dev/null
  _kubeconfig kube-controller-manager "$STATE_DIR/kube-controller-manager.kubeconfig"
  _kubeconfig kube-scheduler "$STATE_DIR/kube-scheduler.kubeconfig"
  _kubeconfig admin "$KUBECONFIG_ADMIN.tmp"
  mv "$KUBECONFIG_ADMIN.tmp" "$KUBECONFIG_ADMIN"
}

_start() {
  local name=$1; shift
  local bin
  bin=$(_component_bin "$name")
  setsid "$bin" "$@" >>"$LOGS_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$PIDS_DIR/$name.pid"
}

_all_running() {
  local c
  for c in "${COMPONENTS[@]}"; do _running_pid "$c" >/dev/null || return 1; done
}

_node_ready() {
  [ "$(_kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

_default_sa() { _kubectl -n default get serviceaccount default >/dev/null 2>&1; }

_start_kwok_node() {
  # One fake node, big enough for 10,000 pods, no taint so every pod may land on it. kwok writes
  # fake pod IPs from a /14 (no traffic ever goes to them; the default /24 would run out at 254 pods).
  _kubectl apply -f - >/dev/null <<NODE
apiVersion: v1
kind: Node
metadata:
  name: $NODE_NAME
  annotations:
    node.alpha.kubernetes.io/ttl: "0"
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/hostname: $NODE_NAME
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
status:
  capacity: { cpu: "4000", memory: 16Ti, pods: "20000", ephemeral-storage: 100Ti }
  allocatable: { cpu: "4000", memory: 16Ti, pods: "20000", ephemeral-storage: 100Ti }
NODE
  _start kwok --kubeconfig "$KUBECONFIG_ADMIN" --config "$KWOK_DIR/stages.yaml" \
    --manage-single-node "$NODE_NAME" --server-address "127.0.0.1:$KWOK_PORT" \
    --node-lease-duration-seconds 40 --cidr 10.128.0.0/14
  _wait_for "node $NODE_NAME Ready" 60 _node_ready
}

cmd_up() {
  local start=$SECONDS
  if _all_running && _api_ready; then
    log "already up ($STATE_DIR)"
    return 0
  fi
  if [ -d "$PIDS_DIR" ]; then
    log "a previous control plane is partly running or dead: cleaning it first"
    cmd_down
  fi
  mkdir -p "$PIDS_DIR" "$LOGS_DIR"
  mkdir -p "$STATE_DIR/etcd" && chmod 700 "$STATE_DIR/etcd"
  _make_pki

  _start etcd --name stressmix-testenv --data-dir "$STATE_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "stressmix-testenv=http://127.0.0.1:$ETCD_PEER_PORT" \
    --listen-metrics-urls "" --unsafe-no-fsync --log-level warn
  _wait_for etcd 30 curl -sf --max-time 1 "http://127.0.0.1:$ETCD_PORT/health" -o /dev/null

  # No default route here, so the advertise address is explicit; no endpoint reconciler for a loopback IP
  # (Endpoints at 127.0.0.1 are refused), the lease reconciler for an advertised address a node reaches.
  local reconciler=none
  [ "$ADVERTISE_ADDRESS" = 127.0.0.1 ] || reconciler=lease
  local node_proxy=()
  if [ -n "$NODE_PROXY_SOCKET" ]; then
    cat >"$STATE_DIR/egress-selector.yaml" <<EGRESS
apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport: { uds: { udsName: $NODE_PROXY_SOCKET } }
EGRESS
    node_proxy=(--egress-selector-config-file "$STATE_DIR/egress-selector.yaml"
      --kubelet-client-certificate "$PKI_DIR/apiserver-kubelet-client.crt"
      --kubelet-client-key "$PKI_DIR/apiserver-kubelet-client.key")
  fi
  # TaintNodesByCondition is off: it taints a new node not-ready, and only the node-lifecycle
  # controller (not run here: kwok's node never misses a heartbeat) would lift the taint.
  _start kube-apiserver --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address "$ADVERTISE_ADDRESS" --secure-port "$APISERVER_PORT" \
    --endpoint-reconciler-type "$reconciler" --service-cluster-ip-range 10.0.0.0/24 \
    --tls-cert-file "$PKI_DIR/apiserver.crt" --tls-private-key-file "$PKI_DIR/apiserver.key" \
    --client-ca-file "$PKI_DIR/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI_DIR/sa.pub" --service-account-signing-key-file "$PKI_DIR/sa.key" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --disable-admission-plugins TaintNodesByCondition \
    --allow-privileged=true --profiling=false "${node_proxy[@]}"
  _wait_for kube-apiserver 90 _api_ready

  # Controllers the tests rely on: garbage collector, ReplicaSet, Deployment, DaemonSet, ServiceAccounts
  # and their tokens, namespace deletion, the root CA ConfigMap, Jobs and StatefulSets for the chart.
  # QPS is raised above the default 20 so the ReplicaSet controller is not throttled client-side in the
  # benchmarks (kube-rs has no client-side limiter).
  _start kube-controller-manager --kubeconfig "$STATE_DIR/kube-controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --leader-elect=false \
    --use-service-account-credentials=true \
    --service-account-private-key-file "$PKI_DIR/sa.key" --root-ca-file "$PKI_DIR/ca.crt" \
    --controllers garbage-collector-controller,replicaset-controller,deployment-controller,daemonset-controller,serviceaccount-controller,serviceaccount-token-controller,namespace-controller,root-ca-certificate-publisher-controller,job-controller,statefulset-controller,clusterrole-aggregation-controller${EXTRA_CONTROLLERS:+,$EXTRA_CONTROLLERS} \
    --kube-api-qps 500 --kube-api-burst 1000 --profiling=false

  cat >"$STATE_DIR/kube-scheduler.yaml" <<CFG
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: $STATE_DIR/kube-scheduler.kubeconfig
  qps: 500
  burst: 1000
leaderElection:
  leaderElect: false
CFG
  _start kube-scheduler --config "$STATE_DIR/kube-scheduler.yaml" --bind-address 127.0.0.1 --secure-port "$SCHED_PORT"

  [ "$TESTENV_KWOK" = 0 ] || _start_kwok_node
  _wait_for "ServiceAccount default/default" 60 _default_sa
  _wait_for kube-controller-manager 30 curl -sfk --max-time 1 "https://127.0.0.1:$KCM_PORT/healthz" -o /dev/null
  _wait_for kube-scheduler 30 curl -sfk --max-time 1 "https://127.0.0.1:$SCHED_PORT/healthz" -o /dev/null
  _all_running || die "a component exited during start; logs in $LOGS_DIR"
  log "up in $((SECONDS - start)) s: $(_kubectl version 2>/dev/null | tr '\n' ' ')"
  log "use: eval \"\$(hack/testenv env)\""
}

cmd_down() {
  local i c pid
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    c=${COMPONENTS[i]}
    if pid=$(_running_pid "$c"); then
      kill -TERM "$pid" 2>/dev/null || true
      local deadline=$((SECONDS + 10))
      while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
      log "stopped $c (pid $pid)"
    fi
  done
  rm -rf "$STATE_DIR"
  log "down: state removed"
}

cmd_status() {
  local c pid ok=0
  for c in "${COMPONENTS[@]}"; do
    if pid=$(_running_pid "$c"); then echo "$c: running (pid $pid)"; else echo "$c: not running"; ok=1; fi
  done
  if [ -s "$KUBECONFIG_ADMIN" ] && _api_ready; then
    echo "api: ready at https://127.0.0.1:$APISERVER_PORT"
    [ "$TESTENV_KWOK" = 0 ] || echo "node $NODE_NAME: $(_node_ready && echo Ready || echo NotReady)"
  else
    echo "api: not ready"; ok=1
  fi
  return $ok
}

cmd_env() {
  echo "export KUBECONFIG=$KUBECONFIG_ADMIN"
  echo "export PATH=$K8S_DIR/bin:$KWOK_DIR:$HELM_DIR:\$PATH"
  echo "export STRESSMIX_TESTENV_NODE=$NODE_NAME"
}
