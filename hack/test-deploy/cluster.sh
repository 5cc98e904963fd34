# shellcheck shell=bash
# The chart installed into the test control plane (hack/testenv): `helm install --wait` with the plain
# defaults and with the kind values, every object accepted, pods scheduled and Running on the kwok
# node, the agent admitted only under Pod Security "privileged", the operator and the log service run
# on this host exactly as the chart configures them (args, env, the ServiceAccount's token, the
# ingest token from the chart's Secret). kwok runs no containers and there is no CNI: NetworkPolicies
# are accepted objects here, never enforced. Sourced by run.sh (needs lib.sh and chart.sh).

RELEASE=stressmix
NS=stressmix-system
WL_NS=stress
DRYRUN_NS=stressmix-dryrun

CLAIM=$RELEASE-logsvc-data
PV=stressmix-test-logsvc-data

# The claim and its volume, whose protection finalizers no controller here would ever lift.
delete_claim() {
	local obj
	for obj in "pvc/$CLAIM -n $NS" "pv/$PV"; do
		# shellcheck disable=SC2086 # obj is "kind/name [-n namespace]" on purpose
		kubectl patch $obj --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
		# shellcheck disable=SC2086
		kubectl delete $obj --ignore-not-found --wait=false >/dev/null 2>&1 || true
	done
}

# Remove what an earlier (maybe aborted) run left behind.
cluster_cleanup() {
	kubectl delete workloads.stressmix.dev --all -n "$WL_NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
	helm uninstall "$RELEASE" -n "$NS" --wait --timeout 120s >/dev/null 2>&1 || true
	delete_claim
	kubectl delete namespace "$WL_NS" --ignore-not-found --timeout=120s >/dev/null 2>&1 || true
}

# The test control plane runs no PersistentVolume controller, so nothing would bind the log service's
# claim and `helm install --wait` (which waits for claims to be Bound) would time out. This does the
# controller's work in the background while helm waits: once the claim exists, a PersistentVolume of
# its size reserved for it, the claim's volumeName, both phases Bound.
bind_claim() {
	local deadline=$((SECONDS + 120)) uid size
	until uid=$(kubectl get pvc -n "$NS" "$CLAIM" -o jsonpath='{.metadata.uid}' 2>/dev/null) && [[ -n $uid ]]; do
		((SECONDS < deadline)) || return 1
		sleep 0.5
	done
	size=$(kubectl get pvc -n "$NS" "$CLAIM" -o jsonpath='{.spec.resources.requests.storage}')
	kubectl apply -f - >/dev/null <<PVEOF || return 1
apiVersion: v1
kind: PersistentVolume
metadata: {name: $PV}
spec:
  capacity: {storage: $size}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: /var/lib/stressmix-test/$PV}
  claimRef: {namespace: $NS, name: $CLAIM, uid: $uid}
PVEOF
	# The scheduler counts a claim as bound by its volumeName plus the controller's bind-completed
	# annotation, so that patch comes last: its event requeues the pending pod with everything in place.
	kubectl patch pv "$PV" --subresource status --type merge -p '{"status":{"phase":"Bound"}}' >/dev/null &&
		kubectl patch pvc -n "$NS" "$CLAIM" --subresource status --type merge \
			-p "{\"status\":{\"phase\":\"Bound\",\"accessModes\":[\"ReadWriteOnce\"],\"capacity\":{\"storage\":\"$size\"}}}" >/dev/null &&
		kubectl patch pvc -n "$NS" "$CLAIM" --type merge \
			-p "{\"metadata\":{\"annotations\":{\"pv.kubernetes.io/bind-completed\":\"yes\"}},\"spec\":{\"volumeName\":\"$PV\"}}" >/dev/null
}

# install_release DESCRIPTION [helm args...]: `helm install --wait`, the claim bound meanwhile.
install_release() {
	local desc=$1 out binder rc=0
	shift
	bind_claim &
	binder=$!
	out=$(helm install "$RELEASE" "$CHART" -n "$NS" "$@" --wait --timeout 180s 2>&1) || rc=$?
	wait "$binder" || fail "$desc: could not bind the log service's claim"
	if ((rc == 0)); then
		pass "helm install --wait ($desc): every workload ready, the claim bound"
	else
		kubectl get pods,pvc -n "$NS" -o wide >&2 || true
		kubectl get events -n "$NS" --sort-by=.lastTimestamp 2>&1 | tail -n 15 >&2 || true
		abort "helm install ($desc): $(grep -v 'found symbolic link' <<<"$out")"
	fi
}

# expect_notes DESCRIPTION STRING...: the release's NOTES.txt holds every string.
expect_notes() {
	local desc=$1 notes p
	shift
	notes=$(helm get notes "$RELEASE" -n "$NS" 2>&1)
	for p in "$@"; do
		if ! grep -qF -- "$p" <<<"$notes"; then
			fail "NOTES.txt ($desc) lacks '$p': $notes"
			return
		fi
	done
	pass "NOTES.txt ($desc) says: $*"
}

# The release namespace is prepared as README.md tells users: the agent needs Pod Security
# "privileged", which a namespace made by `helm install --create-namespace` would not carry.
cluster_install() {
	local out
	td_log "installing the chart into the test control plane"
	cluster_cleanup
	out=$(kubectl apply --server-side -f crds/ 2>&1) || abort "kubectl apply -f crds/: $out"
	kubectl wait --for=condition=Established --timeout=60s crd/workloads.stressmix.dev >/dev/null ||
		abort "CRD workloads.stressmix.dev not Established"
	kubectl get namespace "$NS" >/dev/null 2>&1 || kubectl create namespace "$NS" >/dev/null
	kubectl label namespace "$NS" --overwrite pod-security.kubernetes.io/enforce=privileged >/dev/null

	install_release "plain defaults"
	expect_notes "defaults" "cgroup v2" "pod-security.kubernetes.io/enforce=privileged" \
		"port-forward svc/$RELEASE-grafana 3000:3000" "http://$RELEASE-logsvc.$NS.svc:8000" \
		"Secret $RELEASE-ingest-token, key token" "Kernel module: mode none"
	out=$(helm uninstall "$RELEASE" -n "$NS" --wait --timeout 120s 2>&1) || abort "helm uninstall: $out"
	delete_claim

	# The rest of the cluster tests run against this release (module mode build: the init chain).
	install_release "ci/kind-values.yaml" --values "$CHART/ci/kind-values.yaml"
	expect_notes "kind values" "http://<node-address>:30000" "http://localhost:3000" \
		"http://$RELEASE-logsvc.$NS.svc:8000" "kind quick start: http://localhost:8000" "Kernel module: mode build"
	# Every object of the release exists on the server, as rendered.
	if out=$(helm get manifest "$RELEASE" -n "$NS" | kubectl get -f - -o name 2>&1); then
		pass "every object of the release exists on the API server ($(wc -l <<<"$out") objects)"
	else
		fail "objects of the release missing: $out"
	fi
	# The default values once more, as a second release in its own namespace (nothing merges with the
	# installed objects): every object, the NetworkPolicies included, passes the server's validation.
	kubectl create namespace "$DRYRUN_NS" >/dev/null 2>&1 || true
	if out=$(helm template "$DRYRUN_NS" "$CHART" -n "$DRYRUN_NS" 2>/dev/null |
		kubectl apply --server-side --force-conflicts --field-manager=test-deploy --dry-run=server -f - 2>&1); then
		pass "default values: all $(wc -l <<<"$out") objects accepted by a server-side dry run ($(grep -c networkpolicy <<<"$out") NetworkPolicies)"
	else
		fail "default values refused by the API server: $out"
	fi
	kubectl delete namespace "$DRYRUN_NS" --wait=false >/dev/null 2>&1 || true
}

cluster_pods_running() {
	local node=${STRESSMIX_TESTENV_NODE:?} report
	td_log "pods scheduled and Running on $node"
	report=$(kubectl get pods -n "$NS" -o json | python3 -c '
import json, sys
node = sys.argv[1]
pods = json.load(sys.stdin)["items"]
want = {"operator": 1, "agent": 1, "logsvc": 1, "grafana": 1}
seen = {}
bad = []
for p in pods:
    comp = p["metadata"]["labels"].get("app.kubernetes.io/component", "?")
    seen[comp] = seen.get(comp, 0) + 1
    phase = p["status"].get("phase")
    where = p["spec"].get("nodeName")
    if phase != "Running" or where != node:
        name = p["metadata"]["name"]
        bad.append(f"{name}: phase {phase} on {where}")
for comp, n in want.items():
    if seen.get(comp, 0) != n:
        bad.append(f"component {comp}: {seen.get(comp, 0)} pods, want {n}")
print("; ".join(bad) if bad else "ok " + ", ".join(f"{c}={n}" for c, n in sorted(seen.items())))
' "$node")
	if [[ $report == ok* ]]; then pass "pods Running on $node: ${report#ok }"; else fail "pods: $report"; fi
	local ds
	ds=$(kubectl get daemonset -n "$NS" "$RELEASE-agent" -o jsonpath='{.status.desiredNumberScheduled}/{.status.numberReady}')
	if [[ $ds == 1/1 ]]; then pass "agent DaemonSet: 1 desired, 1 ready"; else fail "agent DaemonSet desired/ready = $ds"; fi
}

# kubeconfig of the operator's ServiceAccount: the API server's address and CA, a bound token.
operator_kubeconfig() {
	local file=$1 server ca token
	server=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')
	ca=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
	if [[ -z $ca ]]; then
		ca=$(base64 -w0 <"$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority}')")
	fi
	token=$(kubectl create token "$RELEASE-operator" -n "$NS" --duration=30m) || return 1
	cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: testenv
    cluster: {server: "$server", certificate-authority-data: "$ca"}
users:
  - name: operator
    user: {token: "$token"}
contexts:
  - name: operator
    context: {cluster: testenv, user: operator}
current-context: operator
EOF
}

# container_launch KIND NAME CONTAINER PORT DIR: how the kubelet would start one container of the
# installed release on this host: its env (values, fieldRefs with this test's pod name, secretKeyRefs
# read from the Secrets) as NAME=VALUE lines, a "--" line, then its args with $(VAR) expanded, any
# listen address 0.0.0.0:N moved to 127.0.0.1:PORT, and paths under its volume mounts moved under DIR.
container_launch() {
	{
		kubectl get "$1" -n "$NS" "$2" -o json
		kubectl get secrets -n "$NS" -o json
	} | python3 -c '
import base64, json, os, re, sys
container, port, root, ns = sys.argv[1:5]
dec = json.JSONDecoder()
text = sys.stdin.read()
obj, end = dec.raw_decode(text)
secrets = {s["metadata"]["name"]: s.get("data", {}) for s in dec.raw_decode(text[end:].lstrip())[0]["items"]}
spec = obj["spec"]["template"]["spec"]
c = next(c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == container)
fields = {"metadata.namespace": ns, "metadata.name": "stressmix-" + container + "-test", "spec.nodeName": os.environ.get("STRESSMIX_TESTENV_NODE", "node")}
env = {}
for e in c.get("env", []):
    ref = e.get("valueFrom", {})
    if "value" in e:
        env[e["name"]] = e["value"]
    elif "fieldRef" in ref:
        env[e["name"]] = fields[ref["fieldRef"]["fieldPath"]]
    elif "secretKeyRef" in ref:
        k = ref["secretKeyRef"]
        env[e["name"]] = base64.b64decode(secrets[k["name"]][k["key"]]).decode()
mounts = [m["mountPath"] for m in c.get("volumeMounts", [])]
for k, v in env.items():
    print(f"{k}={v}")
print("--")
for a in c.get("args", []):
    a = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), a)
    a = re.sub(r"=0\.0\.0\.0:\d+$", "=127.0.0.1:" + port, a)
    for m in mounts:
        a = re.sub("=" + re.escape(m) + "(/|$)", "=" + root + m + r"\1", a)
    print(a)
' "$3" "$4" "$5" "$NS"
}

# run_container KIND NAME CONTAINER PORT DIR BINARY LOG [NAME=VALUE...]: starts BINARY as
# container_launch describes it (plus the extra env), in the background; its pid in LAUNCHED_PID.
run_container() {
	local lines=() envs=() args=() seen=false l
	mapfile -t lines < <(container_launch "$1" "$2" "$3" "$4" "$5")
	((${#lines[@]})) || return 1
	for l in "${lines[@]}"; do
		if [[ $l == -- ]] && ! $seen; then seen=true; elif $seen; then args+=("$l"); else envs+=("$l"); fi
	done
	td_log "$(basename "$6") ${args[*]}"
	env "${envs[@]}" "${@:8}" "$6" "${args[@]}" >"$7" 2>&1 &
	LAUNCHED_PID=$!
}

# Running pods of Workload $1 that it controls (owner reference), not being deleted.
live_pods() {
	kubectl get pods -n "$WL_NS" -l "stressmix.dev/workload=$1" -o json | python3 -c '
import json, sys
n = 0
for p in json.load(sys.stdin)["items"]:
    owners = [o for o in p["metadata"].get("ownerReferences", []) if o.get("controller") and o["kind"] == "Workload"]
    if owners and p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp"):
        n += 1
print(n)'
}

pods_match() { [[ $(live_pods "$1") == "$2" ]]; }

status_observed() {
	local gen observed
	gen=$(kubectl get -n "$WL_NS" workload "$1" -o jsonpath='{.metadata.generation}')
	observed=$(kubectl get -n "$WL_NS" workload "$1" -o jsonpath='{.status.observedGeneration}')
	[[ -n $observed && $observed == "$gen" ]]
}

cluster_operator_reconciles() {
	local work=$1 bin=$2 example=$3 kc port whoami wl desired got
	td_log "operator with the chart's args and its ServiceAccount's token"
	kc=$work/operator.kubeconfig
	operator_kubeconfig "$kc" || abort "cannot create a token for ServiceAccount $RELEASE-operator"
	whoami=$(kubectl --kubeconfig "$kc" auth whoami -o jsonpath='{.status.userInfo.username}' 2>&1)
	if [[ $whoami == "system:serviceaccount:$NS:$RELEASE-operator" ]]; then
		pass "operator kubeconfig authenticates as $whoami"
	else
		fail "operator kubeconfig authenticates as '$whoami'"
	fi
	port=$(free_port)
	run_container deployment "$RELEASE-operator" operator "$port" "$work/operator-root" "$bin" \
		"$work/operator.log" "KUBECONFIG=$kc" || abort "cannot read the operator's Deployment"
	OPERATOR_PID=$LAUNCHED_PID
	if wait_for 60 "operator /readyz" curl -fsS "http://127.0.0.1:$port/readyz"; then
		pass "operator /readyz answers 200"
	else
		fail "operator /readyz did not answer within 60 s (log: $work/operator.log)"
	fi

	kubectl apply -n "$WL_NS" -f "$example" >/dev/null || abort "kubectl apply $example"
	wl=$(kubectl get -n "$WL_NS" -f "$example" -o jsonpath='{.metadata.name}')
	desired=$(kubectl get -n "$WL_NS" workload "$wl" -o json |
		python3 -c 'import json,sys; print(sum(m.get("replicas", 0) for m in json.load(sys.stdin)["spec"]["mix"]))')
	if wait_for 60 "Workload $wl pods" pods_match "$wl" "$desired"; then
		pass "operator (ServiceAccount credentials) created the $desired Running pods of Workload $wl in namespace $WL_NS (Pod Security: restricted)"
	else
		got=$(live_pods "$wl")
		fail "Workload $wl: $got Running owned pods, want $desired (operator log: $work/operator.log)"
		tail -n 20 "$work/operator.log" >&2
	fi
	# Status is written through the workloads/status subresource: the Role must allow it.
	if wait_for 30 "Workload $wl status" status_observed "$wl"; then
		pass "operator wrote the Workload's status (observedGeneration = generation)"
	else
		fail "Workload $wl status never caught up with its generation: $(kubectl get -n "$WL_NS" workload "$wl" -o jsonpath='{.status}')"
	fi
	# kube-rs prints an API refusal as "... is forbidden: ... reason: \"Forbidden\", code: 403 }";
	# a bare '403' also matches ports and timestamps (a listen port 51403 failed CI once).
	local denied='forbidden|code: 403([^0-9]|$)'
	if grep -qiE "$denied" "$work/operator.log"; then
		fail "operator log shows permission errors: $(grep -iE -m3 "$denied" "$work/operator.log" | cut -c1-300)"
	else
		pass "operator log has no 403/Forbidden"
	fi
	WORKLOAD_NAME=$wl
}

cluster_operator_stop() {
	local rc=0
	[[ -n ${OPERATOR_PID:-} ]] || return 0
	kill -TERM "$OPERATOR_PID" 2>/dev/null || true
	wait "$OPERATOR_PID" || rc=$?
	OPERATOR_PID=
	if ((rc == 0)); then pass "operator exits 0 on SIGTERM"; else fail "operator exit status $rc on SIGTERM"; fi
}

# Pod Security: the namespace enforces restricted; a copy of an operator-made pod is admitted, a
# privileged pod is refused (so admission really is on).
cluster_pod_security() {
	local labels pod out
	td_log "Pod Security admission in namespace $WL_NS"
	labels=$(kubectl get namespace "$WL_NS" -o jsonpath='{.metadata.labels.pod-security\.kubernetes\.io/enforce}')
	if [[ $labels == restricted ]]; then pass "namespace $WL_NS labelled pod-security.kubernetes.io/enforce=restricted"; else fail "namespace $WL_NS enforce label = '$labels'"; fi
	pod=$(kubectl get pods -n "$WL_NS" -l "stressmix.dev/workload=${WORKLOAD_NAME:-}" -o json | python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
if not items:
    sys.exit("no operator-made pod to copy")
p = items[0]
spec = p["spec"]
for k in ("nodeName",):
    spec.pop(k, None)
print(json.dumps({"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": "psa-copy-" + p["metadata"]["name"], "namespace": p["metadata"]["namespace"],
                               "labels": p["metadata"].get("labels", {})},
                  "spec": spec}))') || { fail "Pod Security: no operator-made pod to copy"; return; }
	if out=$(kubectl create --dry-run=server -f - <<<"$pod" 2>&1); then
		pass "the operator's pod spec is admitted under restricted (server-side dry run)"
	else
		fail "the operator's pod spec refused under restricted: $out"
	fi
	expect_refused "a privileged pod is refused in $WL_NS" 'violates PodSecurity "restricted' \
		kubectl create --dry-run=server -f - <<EOF
apiVersion: v1
kind: Pod
metadata: {name: psa-privileged-probe, namespace: $WL_NS}
spec:
  containers:
    - name: c
      image: stressmix/stressmix:0.1.0
      securityContext: {privileged: true}
EOF
}

# The ingest token end to end: the real stressmix-logsvc started with exactly the Deployment's args and
# env (STRESSMIX_TOKEN from the chart's Secret) refuses a write without the token or with a wrong one
# (401), stores one sent with the token the agent's DaemonSet gives the agent, and answers queries
# without any token.
cluster_logsvc_token() {
	local work=$1 bin=$2 port url token body code lines=()
	td_log "log service with the chart's args and env: the ingest token"
	port=$(free_port)
	url=http://127.0.0.1:$port
	mkdir -p "$work/logsvc-root/data"
	run_container deployment "$RELEASE-logsvc" logsvc "$port" "$work/logsvc-root" "$bin" "$work/logsvc-chart.log" ||
		abort "cannot read the log service's Deployment"
	LOGSVC_PID=$LAUNCHED_PID
	if ! wait_for 30 "logsvc /readyz" curl -fsS "$url/readyz"; then
		fail "stressmix-logsvc (chart args) did not answer /readyz within 30 s: $(tail -n 5 "$work/logsvc-chart.log")"
		return
	fi
	mapfile -t lines < <(container_launch daemonset "$RELEASE-agent" agent 0 "$work")
	token=$(printf '%s\n' "${lines[@]}" | sed -n 's/^STRESSMIX_LOGSVC_TOKEN=//p')
	if [[ ${#token} -ge 32 ]]; then
		pass "the agent's DaemonSet gives it a ${#token}-character token from Secret $RELEASE-ingest-token"
	else
		fail "the agent gets no ingest token (STRESSMIX_LOGSVC_TOKEN='$token')"
	fi
	body=$work/token-batch.json
	python3 -c '
import json, sys, time
b = json.load(open(sys.argv[1]))
b["node_name"] = "token-test-node"
b["timestamp_ms"] = int(time.time() * 1000)
json.dump(b, open(sys.argv[2], "w"))' examples/readings-batch.json "$body"
	code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "@$body" "$url/api/v1/readings")
	if [[ $code == 401 ]]; then pass "POST /api/v1/readings without a token: 401"; else fail "POST without a token: $code, want 401"; fi
	code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -H 'Authorization: Bearer not-the-token' \
		--data-binary "@$body" "$url/api/v1/readings")
	if [[ $code == 401 ]]; then pass "POST /api/v1/readings with a wrong token: 401"; else fail "POST with a wrong token: $code, want 401"; fi
	if curl -fsS "$url/api/v1/labels/nodes" | grep -q token-test-node; then
		fail "a refused batch was stored"
	fi
	code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -H "Authorization: Bearer $token" \
		--data-binary "@$body" "$url/api/v1/readings")
	if [[ $code == 2?? ]]; then pass "POST /api/v1/readings with the agent's token: $code"; else fail "POST with the agent's token: $code, want 2xx"; fi
	if wait_for 10 "batch stored" eval "curl -fsS '$url/api/v1/labels/nodes' | grep -q token-test-node"; then
		pass "the batch sent with the token is stored (node token-test-node listed, query without a token)"
	else
		fail "the batch sent with the token is not listed by /api/v1/labels/nodes: $(curl -sS "$url/api/v1/labels/nodes" | cut -c1-300)"
	fi
	kill -TERM "$LOGSVC_PID" 2>/dev/null || true
	wait "$LOGSVC_PID" 2>/dev/null || true
	LOGSVC_PID=
}

# The agent's pod needs Pod Security "privileged": a pod made from the installed DaemonSet's template
# (module mode build, the most demanding) is refused in the release namespace under "restricted" and
# "baseline" and admitted under "privileged"; the chart itself refuses to install into a namespace that
# enforces another level, naming the fix. The label is put back to privileged whatever happens.
cluster_agent_pod_security() {
	local pod level out
	td_log "Pod Security admission of the agent in namespace $NS"
	pod=$(kubectl get daemonset -n "$NS" "$RELEASE-agent" -o json | python3 -c '
import json, sys
t = json.load(sys.stdin)["spec"]["template"]
print(json.dumps({"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": "psa-agent-probe", "labels": t["metadata"]["labels"]},
                  "spec": t["spec"]}))')
	for level in restricted baseline; do
		kubectl label namespace "$NS" --overwrite "pod-security.kubernetes.io/enforce=$level" >/dev/null
		expect_refused "the agent's pod is refused under Pod Security $level" "violates PodSecurity \"$level" \
			kubectl create -n "$NS" --dry-run=server -f - <<<"$pod"
	done
	expect_refused "helm refuses to install into a namespace enforcing baseline, naming the fix" \
		"enforce=privileged" helm install psa-probe "$CHART" -n "$NS" --dry-run=server
	kubectl label namespace "$NS" --overwrite pod-security.kubernetes.io/enforce=privileged >/dev/null
	if out=$(kubectl create -n "$NS" --dry-run=server -f - <<<"$pod" 2>&1); then
		pass "the agent's pod is admitted under Pod Security privileged"
	else
		fail "the agent's pod is refused under privileged: $out"
	fi
}
