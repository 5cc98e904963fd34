# shellcheck shell=bash
# Chart checks that need helm but no cluster: lint, template for default and non-default values,
# the schema's refusals, the rendered objects' security settings. Sourced by run.sh (needs lib.sh).

CHART=charts/stressmix

# render [helm template args...]: rendered manifests on stdout. No --kube-version: hack/testenv builds
# helm with its release ldflags, so it assumes a current Kubernetes as a released helm does.
render() {
	helm template stressmix "$CHART" --namespace stressmix-system "$@"
}

# query MANIFESTS EXPR: prints the Python expression EXPR evaluated over the rendered objects, with
# obj(kind, name) (one object), objs(kind), pod(kind, name) (its pod template spec),
# ctr(kind, name, container) (a container or init container), env(container, name) (an env entry)
# and mounts(container) ({mountPath: readOnly}).
query() {
	/usr/bin/python3 -c '
import json, sys, yaml
text = sys.stdin.read()
# helm prints warnings (symlinks followed) before the first document.
docs = [d for d in yaml.safe_load_all(text[text.find("---"):]) if d]
def objs(kind):
    return [d for d in docs if d["kind"] == kind]
def obj(kind, name):
    found = [d for d in objs(kind) if d["metadata"]["name"] == name]
    if len(found) != 1:
        raise SystemExit(f"{len(found)} {kind} named {name}")
    return found[0]
def pod(kind, name):
    return obj(kind, name)["spec"]["template"]["spec"]
def ctr(kind, name, container):
    spec = pod(kind, name)
    for c in spec.get("initContainers", []) + spec["containers"]:
        if c["name"] == container:
            return c
    raise SystemExit(f"no container {container} in {kind} {name}")
def env(c, name):
    return next((e for e in c.get("env", []) if e["name"] == name), None)
def mounts(c):
    return {m["mountPath"]: bool(m.get("readOnly")) for m in c.get("volumeMounts", [])}
try:
    v = eval(sys.argv[1])
except Exception as e:
    raise SystemExit(f"{type(e).__name__}: {e}")
print(v if isinstance(v, str) else json.dumps(v, sort_keys=True))
' "$2" <<<"$1"
}

# expect_query DESCRIPTION MANIFESTS EXPR WANT: EXPR (see query) prints exactly WANT.
expect_query() {
	local desc=$1 got
	if got=$(query "$2" "$3" 2>&1) && [[ $got == "$4" ]]; then
		pass "$desc"
	else
		fail "$desc: $3 = $got, want $4"
	fi
}

# count_kind MANIFESTS KIND [NAME]: how many objects of KIND (named NAME) the manifests hold.
count_kind() {
	python3 -c '
import sys
kind, name = sys.argv[1], sys.argv[2]
n = 0
for doc in sys.stdin.read().split("\n---"):
    lines = doc.splitlines()
    if f"kind: {kind}" not in lines:
        continue
    if name:
        # metadata.name: the first "  name:" line inside the top-level "metadata:" block.
        meta = lines.index("metadata:") if "metadata:" in lines else len(lines)
        block = []
        for l in lines[meta + 1:]:
            if not l.startswith("  "):
                break
            block.append(l)
        if f"  name: {name}" not in block:
            continue
    n += 1
print(n)
' "$2" "${3:-}" <<<"$1"
}

expect_count() {
	local manifests=$1 kind=$2 name=$3 want=$4 got
	got=$(count_kind "$manifests" "$kind" "$name")
	if [[ $got == "$want" ]]; then
		pass "$kind ${name:-(any)}: $got rendered"
	else
		fail "$kind ${name:-(any)}: $got rendered, want $want"
	fi
}

expect_contains() {
	local desc=$1 haystack=$2 needle=$3
	if grep -qF -- "$needle" <<<"$haystack"; then pass "$desc"; else fail "$desc: '$needle' not found"; fi
}

expect_absent() {
	local desc=$1 haystack=$2 needle=$3
	if grep -qF -- "$needle" <<<"$haystack"; then fail "$desc: '$needle' found"; else pass "$desc"; fi
}

# charts/stressmix/crds and charts/stressmix/files/grafana are symlinks to the single sources
# (crds/, grafana/); helm follows them and `helm package` stores real files. Check the packaged
# chart holds exactly the sources' bytes.
chart_packaged_files() {
	local work=$1 out pkg
	td_log "packaged chart files vs their sources"
	out=$(helm package "$CHART" --destination "$work/pkg" 2>&1) || abort "helm package: $out"
	pkg=$(ls "$work"/pkg/stressmix-*.tgz)
	mkdir -p "$work/pkg/x" && tar -xzmf "$pkg" -C "$work/pkg/x"
	if out=$(diff -r grafana "$work/pkg/x/stressmix/files/grafana" 2>&1); then
		pass "packaged chart's files/grafana/ identical to grafana/"
	else
		fail "packaged chart's files/grafana/ differs from grafana/: $out"
	fi
	if out=$(diff -r crds "$work/pkg/x/stressmix/crds" 2>&1); then
		pass "packaged chart's crds/ identical to crds/"
	else
		fail "packaged chart's crds/ differs from crds/: $out"
	fi
}

chart_lint_and_template() {
	local out default nondefault kind v
	td_log "helm lint / template"
	for v in "" "$CHART/ci/nondefault-values.yaml" "$CHART/ci/kind-values.yaml"; do
		if out=$(helm lint --strict "$CHART" ${v:+--values "$v"} 2>&1); then
			pass "helm lint --strict ${v:-(default values)}"
		else
			fail "helm lint --strict ${v:-(default values)}: $out"
		fi
	done
	# Exactly what a user types: no release name flags, no --kube-version (helm's own default cluster).
	if out=$(helm template "$CHART" 2>&1); then
		pass "helm template $CHART renders with no --kube-version ($(helm version --template '{{.Version}}'))"
	else
		fail "helm template $CHART (no --kube-version): $(tail -n 3 <<<"$out")"
	fi

	default=$(render 2>&1) || abort "helm template (default values) failed: $default"
	pass "helm template (default values)"
	expect_count "$default" Deployment "" 3
	expect_count "$default" DaemonSet "" 1
	expect_count "$default" ServiceAccount "" 4
	expect_count "$default" Namespace stress 1
	expect_count "$default" PersistentVolumeClaim stressmix-logsvc-data 1
	expect_count "$default" Role stressmix-operator 1
	expect_count "$default" ClusterRole stressmix-operator 0
	expect_count "$default" ClusterRole stressmix-agent 1
	expect_count "$default" NetworkPolicy "" 3
	out=$(render --include-crds 2>&1) || abort "helm template --include-crds failed: $out"
	expect_count "$out" CustomResourceDefinition workloads.stressmix.dev 1
	expect_contains "namespace stress enforces Pod Security restricted" "$default" "pod-security.kubernetes.io/enforce: restricted"
	expect_contains "operator watches the managed namespace" "$default" "--namespace=stress"
	expect_contains "operator leader election on its Lease" "$default" "--lease-name=stressmix-operator"
	expect_contains "operator readiness probe on /readyz" "$default" "path: /readyz"
	expect_contains "agent container adds only SYS_ADMIN" "$default" "add: [SYS_ADMIN]"
	expect_contains "log service mounts no token" "$default" "automountServiceAccountToken: false"
	expect_absent "nothing privileged with default values" "$default" "privileged: true"
	# Safe for any cluster: no module, no NodePort, Linux nodes only.
	expect_query "default module mode none: no init containers" "$default" \
		'"initContainers" in pod("DaemonSet", "stressmix-agent")' false
	expect_query "module mode none: no --module-status-file" "$default" \
		'[a for a in ctr("DaemonSet", "stressmix-agent", "agent")["args"] if "module-status" in a]' '[]'
	expect_count "$default" ServiceMonitor "" 0
	expect_query "agent pods: Prometheus scrape annotations on the metrics port" "$default" \
		'obj("DaemonSet", "stressmix-agent")["spec"]["template"]["metadata"]["annotations"]' \
		'{"prometheus.io/path": "/metrics", "prometheus.io/port": "9100", "prometheus.io/scrape": "true"}'
	expect_query "agent: per-container series bounded at 500 containers" "$default" \
		'[a for a in ctr("DaemonSet", "stressmix-agent", "agent")["args"] if "max-containers" in a]' \
		'["--metrics-max-containers=500"]'
	expect_query "agent pod shares the node's PID namespace (hostPID)" "$default" \
		'pod("DaemonSet", "stressmix-agent")["hostPID"]' true
	expect_query "every workload selects Linux nodes" "$default" \
		'sorted(d["metadata"]["name"] for k in ("Deployment", "DaemonSet") for d in objs(k) if d["spec"]["template"]["spec"].get("nodeSelector", {}).get("kubernetes.io/os") == "linux")' \
		'["stressmix-agent", "stressmix-grafana", "stressmix-logsvc", "stressmix-operator"]'
	expect_query "no NodePort Service by default" "$default" \
		'sorted({d["spec"].get("type", "ClusterIP") for d in objs("Service")})' '["ClusterIP"]'
	expect_query "Infinity plugin pinned, from grafana.com" "$default" \
		'env(ctr("Deployment", "stressmix-grafana", "grafana"), "GF_PLUGINS_PREINSTALL_SYNC")["value"]' \
		'yesoreyeram-infinity-datasource@3.8.0'
	# The ingest token: one generated Secret, given to the log service and to the agent.
	expect_query "ingest token Secret holds a 40-character token" "$default" \
		'len(__import__("base64").b64decode(obj("Secret", "stressmix-ingest-token")["data"]["token"]))' 40
	expect_query "log service requires the token (STRESSMIX_TOKEN from the Secret)" "$default" \
		'env(ctr("Deployment", "stressmix-logsvc", "logsvc"), "STRESSMIX_TOKEN")["valueFrom"]' \
		'{"secretKeyRef": {"key": "token", "name": "stressmix-ingest-token"}}'
	expect_query "agent sends the token (STRESSMIX_LOGSVC_TOKEN from the Secret)" "$default" \
		'env(ctr("DaemonSet", "stressmix-agent", "agent"), "STRESSMIX_LOGSVC_TOKEN")["valueFrom"]' \
		'{"secretKeyRef": {"key": "token", "name": "stressmix-ingest-token"}}'
	# NetworkPolicies: the log service's port from the agents, Grafana and Prometheus only; metrics ports
	# from Prometheus only.
	expect_query "log service policy: port 8000 from agents, Grafana, Prometheus (one rule, ClusterIP)" "$default" \
		'[([p["port"] for p in r["ports"]], [sorted(f["podSelector"]["matchLabels"].values()) + (["any namespace"] if "namespaceSelector" in f else []) for f in r["from"]]) for r in obj("NetworkPolicy", "stressmix-logsvc")["spec"]["ingress"]]' \
		'[[[8000], [["agent", "stressmix", "stressmix"], ["grafana", "stressmix", "stressmix"], ["prometheus", "any namespace"]]]]'
	for kind in operator:8080 agent:9100; do
		expect_query "${kind%%:*} policy: only port ${kind#*:}, from Prometheus pods" "$default" \
			"obj(\"NetworkPolicy\", \"stressmix-${kind%%:*}\")[\"spec\"][\"ingress\"]" \
			"[{\"from\": [{\"namespaceSelector\": {}, \"podSelector\": {\"matchLabels\": {\"app.kubernetes.io/name\": \"prometheus\"}}}], \"ports\": [{\"port\": ${kind#*:}, \"protocol\": \"TCP\"}]}]"
	done
	out=$(render --set networkPolicy.enabled=false 2>&1) || abort "helm template (no NetworkPolicy) failed: $out"
	expect_count "$out" NetworkPolicy "" 0

	kind_values
	nondefault=$(render --values "$CHART/ci/nondefault-values.yaml" 2>&1) || abort "helm template (non-default values) failed: $nondefault"
	pass "helm template (non-default values)"
	expect_count "$nondefault" ClusterRole stressmix-operator 1
	expect_count "$nondefault" ClusterRoleBinding stressmix-operator 1
	expect_count "$nondefault" Namespace "" 0
	expect_count "$nondefault" PersistentVolumeClaim "" 0
	expect_count "$nondefault" Secret stressmix-ingest-token 0
	expect_contains "emptyDir log storage" "$nondefault" "emptyDir: {}"
	expect_query "prebuilt: kmod-load alone, loading the node's file" "$nondefault" \
		'[(c["name"], c["args"][0]) for c in pod("DaemonSet", "stressmix-agent")["initContainers"]]' \
		'[["kmod-load", "--path=/host/prebuilt/stressmix.ko"]]'
	expect_query "prebuilt: no --build-failure" "$nondefault" \
		'[a for a in ctr("DaemonSet", "stressmix-agent", "kmod-load")["args"] if "build-failure" in a]' '[]'
	expect_query "privileged loader by value (kmod-load only)" "$nondefault" \
		'[c["name"] for c in pod("DaemonSet", "stressmix-agent")["initContainers"] + pod("DaemonSet", "stressmix-agent")["containers"] if c["securityContext"].get("privileged")]' \
		'["kmod-load"]'
	expect_contains "custom image" "$nondefault" "image: registry.example/stressmix/stressmix:0.1.0-test"
	expect_contains "anonymous access off" "$(grep -A1 GF_AUTH_ANONYMOUS_ENABLED <<<"$nondefault")" 'value: "false"'
	expect_absent "no --namespace flag when every namespace is managed" "$nondefault" "--namespace="
	expect_query "user-named token Secret and key for both ends" "$nondefault" \
		'[env(ctr(k, n, c), e)["valueFrom"]["secretKeyRef"] for k, n, c, e in (("Deployment", "stressmix-logsvc", "logsvc", "STRESSMIX_TOKEN"), ("DaemonSet", "stressmix-agent", "agent", "STRESSMIX_LOGSVC_TOKEN"))]' \
		'[{"key": "ingest", "name": "stressmix-test-token"}, {"key": "ingest", "name": "stressmix-test-token"}]'
	expect_query "Infinity plugin from the mirror URL" "$nondefault" \
		'env(ctr("Deployment", "stressmix-grafana", "grafana"), "GF_PLUGINS_PREINSTALL_SYNC")["value"]' \
		'yesoreyeram-infinity-datasource@3.8.0@https://mirror.example/yesoreyeram-infinity-datasource-3.8.0.linux_amd64.zip'
	expect_query "ServiceMonitor: the agents' metrics port via a headless Service, user labels" "$nondefault" \
		'[obj("ServiceMonitor", "stressmix-agent")["spec"]["endpoints"][0]["port"], obj("ServiceMonitor", "stressmix-agent")["spec"]["endpoints"][0]["interval"], obj("ServiceMonitor", "stressmix-agent")["metadata"]["labels"]["release"], obj("Service", "stressmix-agent-metrics")["spec"]["clusterIP"], obj("Service", "stressmix-agent-metrics")["spec"]["selector"] == obj("DaemonSet", "stressmix-agent")["spec"]["selector"]["matchLabels"], obj("ServiceMonitor", "stressmix-agent")["spec"]["selector"]["matchLabels"] == obj("DaemonSet", "stressmix-agent")["spec"]["selector"]["matchLabels"]]' \
		'["metrics", "15s", "prom", "None", true, true]'
	expect_query "scrape annotations off by value" "$nondefault" \
		'"annotations" in obj("DaemonSet", "stressmix-agent")["spec"]["template"]["metadata"]' false
	expect_query "metricsFrom empty: operator and agent admit nothing" "$nondefault" \
		'[obj("NetworkPolicy", n)["spec"]["ingress"] for n in ("stressmix-operator", "stressmix-agent")]' '[[], []]'
	expect_query "NodePort log service: second rule admits only logsvcNodePortFrom" "$nondefault" \
		'obj("NetworkPolicy", "stressmix-logsvc")["spec"]["ingress"][1]' \
		'{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 8001, "protocol": "TCP"}]}'
	out=$(render --set-json 'grafana.infinityPlugin.volume={"persistentVolumeClaim":{"claimName":"infinity"}}' 2>&1) ||
		abort "helm template (plugin volume) failed: $out"
	expect_query "plugin volume: mounted read-only, nothing downloaded" "$out" \
		'[env(ctr("Deployment", "stressmix-grafana", "grafana"), "GF_PLUGINS_PREINSTALL_SYNC"), mounts(ctr("Deployment", "stressmix-grafana", "grafana"))["/var/lib/grafana/plugins/yesoreyeram-infinity-datasource"]]' \
		'[null, true]'
	out=$(render --set 'workloadNamespaces.names={team-a,team-b}' 2>&1) || abort "helm template (two namespaces) failed: $out"
	expect_count "$out" Role stressmix-operator 2
	expect_count "$out" RoleBinding stressmix-operator 2
	expect_count "$out" Namespace "" 2
	expect_contains "operator watches team-a" "$out" "--namespace=team-a"
	expect_contains "operator watches team-b" "$out" "--namespace=team-b"
}

# The kind values: module mode build, the init chain exactly as the module init contract says.
kind_values() {
	local out k=DaemonSet n=stressmix-agent
	out=$(render --values "$CHART/ci/kind-values.yaml" 2>&1) || abort "helm template (kind values) failed: $out"
	pass "helm template (kind values)"
	expect_query "kind: Grafana and log service on NodePorts 30000 and 30800" "$out" \
		'sorted(p["nodePort"] for d in objs("Service") if d["spec"].get("type") == "NodePort" for p in d["spec"]["ports"])' \
		'[30000, 30800]'
	expect_query "build: init containers kmod-build then kmod-load" "$out" \
		"[c['name'] for c in pod('$k', '$n')['initContainers']]" '["kmod-build", "kmod-load"]'
	expect_query "kmod-build: builder image, OUTDIR argument, KVER unset" "$out" \
		"[ctr('$k', '$n', 'kmod-build')[f] for f in ('image', 'args')] + [env(ctr('$k', '$n', 'kmod-build'), 'KVER')]" \
		'["stressmix/kmod-builder:0.1.0", ["/var/run/stressmix-kmod"], null]'
	expect_query "kmod-build: node headers read-only, shared dir writable" "$out" \
		"mounts(ctr('$k', '$n', 'kmod-build'))" \
		'{"/host/usr/lib": true, "/lib/modules": true, "/tmp": false, "/usr/src": true, "/var/run/stressmix-kmod": false}'
	expect_query "kmod-build: root, no capability" "$out" \
		"[ctr('$k', '$n', 'kmod-build')['securityContext'][f] for f in ('runAsUser', 'capabilities')]" \
		'[0, {"drop": ["ALL"]}]'
	expect_query "kmod-load: runtime image, stressmix-agent load-module with the contract's arguments" "$out" \
		"[ctr('$k', '$n', 'kmod-load')[f] for f in ('image', 'command', 'args')]" \
		'["stressmix/stressmix:0.1.0", ["/usr/local/bin/stressmix-agent", "load-module"], ["--path=/var/run/stressmix-kmod/stressmix.ko", "--build-failure=/var/run/stressmix-kmod/build-failure", "--status-file=/var/run/stressmix-kmod/status", "--proc-name=stressmix", "--lockdown-file=/host/sys/kernel/security/lockdown"]]'
	expect_query "kmod-load: uid 0, only SYS_MODULE" "$out" \
		"[ctr('$k', '$n', 'kmod-load')['securityContext'][f] for f in ('runAsUser', 'capabilities', 'allowPrivilegeEscalation')]" \
		'[0, {"add": ["SYS_MODULE"], "drop": ["ALL"]}, false]'
	expect_query "kmod-load: host securityfs read-only, shared dir writable" "$out" \
		"mounts(ctr('$k', '$n', 'kmod-load'))" \
		'{"/host/sys/kernel/security": true, "/var/run/stressmix-kmod": false}'
	expect_query "node's securityfs, kind node's /host/usr/lib (host's /usr/lib), shared dir an emptyDir" "$out" \
		"{v['name']: v.get('hostPath', {}).get('path', 'emptyDir' if 'emptyDir' in v else '?') for v in pod('$k', '$n')['volumes'] if v['name'] in ('host-securityfs', 'kmod', 'host-usr-lib')}" \
		'{"host-securityfs": "/sys/kernel/security", "host-usr-lib": "/host/usr/lib", "kmod": "emptyDir"}'
	expect_query "agent: status file read-only and --module-status-file" "$out" \
		"[mounts(ctr('$k', '$n', 'agent'))['/var/run/stressmix-kmod'], [a for a in ctr('$k', '$n', 'agent')['args'] if 'module-status' in a]]" \
		'[true, ["--module-status-file=/var/run/stressmix-kmod/status"]]'
	expect_query "kind: log service NodePort rule open to any source" "$out" \
		'obj("NetworkPolicy", "stressmix-logsvc")["spec"]["ingress"][1]' \
		'{"ports": [{"port": 8000, "protocol": "TCP"}]}'
}

# Each bad value is refused by values.schema.json with a message naming the key and the rule.
chart_schema_refusals() {
	td_log "values.schema.json refusals"
	expect_refused "nodePort outside 30000-32767" '/grafana/service/nodePort.*minimum: got 80, want 30,?000' \
		render --set grafana.service.nodePort=80
	expect_refused "unknown module mode" "/agent/module/mode.*must be one of 'build', 'prebuilt', 'none'" \
		render --set agent.module.mode=magic
	expect_refused "misspelt key operator.replica" "/operator.*additional properties 'replica' not allowed" \
		render --set operator.replica=2
	expect_refused "unpinned Infinity version" "/grafana/infinityPlugin/version.*'latest' does not match pattern" \
		render --set grafana.infinityPlugin.version=latest
	expect_refused "NodePort source that is no CIDR" "/networkPolicy/logsvcNodePortFrom/0.*'10.0.0.1' does not match pattern" \
		render --set 'networkPolicy.logsvcNodePortFrom={10.0.0.1}'
	expect_refused "token Secret name that is no DNS name" "/ingestToken/existingSecret.*'Bad_Name' does not match pattern" \
		render --set ingestToken.existingSecret=Bad_Name
	expect_refused "namespace that is no DNS label" "/workloadNamespaces/names/0.*'Bad_Namespace' does not match pattern" \
		render --set 'workloadNamespaces.names={Bad_Namespace}'
	expect_refused "zero operator replicas" "/operator/replicas.*minimum: got 0, want 1" \
		render --set operator.replicas=0
	expect_refused "zero agent interval" "/agent/intervalSeconds.*minimum: got 0, want 1" \
		render --set agent.intervalSeconds=0
	expect_refused "ServiceMonitor interval without a unit" "/agent/prometheus/serviceMonitor/interval.*does not match pattern" \
		render --set agent.prometheus.serviceMonitor.interval=half-a-minute
	expect_refused "LoadBalancer log service" "/logsvc/service/type.*must be one of 'ClusterIP', 'NodePort'" \
		render --set logsvc.service.type=LoadBalancer
	expect_refused "anonymous role that Grafana lacks" "/grafana/anonymous/role.*must be one of 'Viewer', 'Editor', 'Admin'" \
		render --set grafana.anonymous.role=Root
	expect_refused "relative prebuilt module directory" "/agent/module/prebuiltDir.*'relative/dir' does not match pattern" \
		render --set agent.module.prebuiltDir=relative/dir
}
