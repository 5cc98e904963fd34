# shellcheck shell=bash
# The chart installed into the test control plane (hack/testenv): every object accepted, pods
# scheduled and Running on the kwok node, the operator run exactly as the chart configures it
# (its ServiceAccount's token, the Deployment's args) reconciling the example Workload in the
# Pod-Security-restricted namespace. Sourced by run.sh (needs lib.sh and chart.sh).

RELEASE=stressmix
NS=stressmix-system
WL_NS=stress
DRYRUN_NS=stressmix-dryrun

# Remove what an earlier (maybe aborted) run left behind.
cluster_cleanup() {
	kubectl delete workloads.stressmix.dev --all -n "$WL_NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
	helm uninstall "$RELEASE" -n "$NS" --wait --timeout 120s >/dev/null 2>&1 || true
	kubectl delete namespace "$WL_NS" --ignore-not-found --timeout=120s >/dev/null 2>&1 || true
}

# The test control plane runs no volume controllers (no PV binder, no PVC protection), so a claim
# never binds there. The install therefore uses an emptyDir for the log service, and the default
# values' objects, the PersistentVolumeClaim included, are proven acceptable by a server-side dry run.
cluster_install() {
	local out
	td_log "installing the chart into the test control plane"
	cluster_cleanup
	out=$(kubectl apply --server-side -f crds/ 2>&1) || abort "kubectl apply -f crds/: $out"
	kubectl wait --for=condition=Established --timeout=60s crd/workloads.stressmix.dev >/dev/null ||
		abort "CRD workloads.stressmix.dev not Established"
	kubectl get namespace "$NS" >/dev/null 2>&1 || kubectl create namespace "$NS" >/dev/null
	if out=$(helm install "$RELEASE" "$CHART" -n "$NS" --set logsvc.persistence.enabled=false \
		--wait --timeout 180s 2>&1); then
		pass "helm install accepted, every workload ready (--wait)"
	else
		kubectl get pods,pvc -n "$NS" -o wide >&2 || true
		kubectl get events -n "$NS" --sort-by=.lastTimestamp 2>&1 | tail -n 15 >&2 || true
		abort "helm install: $(grep -v 'found symbolic link' <<<"$out")"
	fi
	out=$(helm get notes "$RELEASE" -n "$NS" 2>&1)
	if grep -q 'http://<node-address>:30000' <<<"$out" && grep -q 'http://localhost:3000' <<<"$out" &&
		grep -q "http://$RELEASE-logsvc.$NS.svc:8000" <<<"$out"; then
		pass "NOTES.txt gives the Grafana NodePort, the kind URL and the log service URL"
	else
		fail "NOTES.txt lacks the URLs: $out"
	fi
	# Every object of the release exists on the server, as rendered.
	if out=$(helm get manifest "$RELEASE" -n "$NS" | kubectl get -f - -o name 2>&1); then
		pass "every object of the release exists on the API server ($(wc -l <<<"$out") objects)"
	else
		fail "objects of the release missing: $out"
	fi
	# The default values (log service on a PersistentVolumeClaim) against the real API server: a
	# second release name in its own namespace, so nothing merges with the installed objects (Grafana on
	# another NodePort: 30000 belongs to the installed release).
	kubectl create namespace "$DRYRUN_NS" >/dev/null 2>&1 || true
	if out=$(helm template "$DRYRUN_NS" "$CHART" -n "$DRYRUN_NS" --kube-version 1.36.0 \
		--set grafana.service.nodePort=30001 2>/dev/null |
		kubectl apply --server-side --force-conflicts --field-manager=test-deploy --dry-run=server -f - 2>&1); then
		pass "default values: all $(wc -l <<<"$out") objects accepted by a server-side dry run (PVC included)"
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

# The Deployment's args as the kubelet would pass them: $(VAR) expanded from the container env
# (fieldRefs resolved to this test's values), metrics bound to a free loopback port.
operator_args() {
	local metrics_port=$1
	kubectl get deployment -n "$NS" "$RELEASE-operator" -o json | python3 -c '
import json, re, sys
port = sys.argv[1]
c = json.load(sys.stdin)["spec"]["template"]["spec"]["containers"][0]
env = {"POD_NAMESPACE": "'"$NS"'", "POD_NAME": "stressmix-operator-test"}
for e in c.get("env", []):
    if "value" in e:
        env[e["name"]] = e["value"]
for a in c["args"]:
    a = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), a)
    if a.startswith("--metrics-addr="):
        a = "--metrics-addr=127.0.0.1:" + port
    print(a)
' "$metrics_port"
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
	local work=$1 bin=$2 example=$3 kc port args=() whoami wl desired got
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
	mapfile -t args < <(operator_args "$port")
	td_log "stressmix-operator ${args[*]}"
	POD_NAMESPACE=$NS POD_NAME=stressmix-operator-test RUST_LOG=info KUBECONFIG=$kc \
		"$bin" "${args[@]}" >"$work/operator.log" 2>&1 &
	OPERATOR_PID=$!
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
	if grep -qiE '403|forbidden' "$work/operator.log"; then
		fail "operator log shows permission errors: $(grep -iE -m3 '403|forbidden' "$work/operator.log" | cut -c1-300)"
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
