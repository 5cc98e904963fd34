# shellcheck shell=bash
# Chart checks that need helm but no cluster: lint, template for default and non-default values,
# the schema's refusals, the rendered objects' security settings. Sourced by run.sh (needs lib.sh).

CHART=charts/stressmix

# render [helm template args...]: rendered manifests on stdout.
render() {
	# --kube-version: a go-installed helm defaults to v1.20 without a cluster; the chart needs >= 1.30.
	helm template stressmix "$CHART" --namespace stressmix-system --kube-version 1.36.0 "$@"
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
	local out default nondefault v
	td_log "helm lint / template"
	for v in "" "$CHART/ci/nondefault-values.yaml" "$CHART/ci/kind-values.yaml"; do
		if out=$(helm lint --strict "$CHART" ${v:+--values "$v"} 2>&1); then
			pass "helm lint --strict ${v:-(default values)}"
		else
			fail "helm lint --strict ${v:-(default values)}: $out"
		fi
	done

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
	out=$(render --include-crds 2>&1) || abort "helm template --include-crds failed: $out"
	expect_count "$out" CustomResourceDefinition workloads.stressmix.dev 1
	expect_contains "namespace stress enforces Pod Security restricted" "$default" "pod-security.kubernetes.io/enforce: restricted"
	expect_contains "operator watches the managed namespace" "$default" "--namespace=stress"
	expect_contains "operator leader election on its Lease" "$default" "--lease-name=stressmix-operator"
	expect_contains "operator readiness probe on /readyz" "$default" "path: /readyz"
	expect_contains "Grafana NodePort 30000" "$default" "nodePort: 30000"
	expect_contains "Infinity plugin pinned" "$default" 'value: "yesoreyeram-infinity-datasource@'
	expect_contains "module init container adds only SYS_MODULE" "$default" "add: [SYS_MODULE]"
	expect_contains "agent container adds only SYS_ADMIN" "$default" "add: [SYS_ADMIN]"
	expect_contains "log service mounts no token" "$default" "automountServiceAccountToken: false"
	expect_absent "nothing privileged with default values" "$default" "privileged: true"

	nondefault=$(render --values "$CHART/ci/nondefault-values.yaml" 2>&1) || abort "helm template (non-default values) failed: $nondefault"
	pass "helm template (non-default values)"
	expect_count "$nondefault" ClusterRole stressmix-operator 1
	expect_count "$nondefault" ClusterRoleBinding stressmix-operator 1
	expect_count "$nondefault" Namespace "" 0
	expect_count "$nondefault" PersistentVolumeClaim "" 0
	expect_contains "emptyDir log storage" "$nondefault" "emptyDir: {}"
	expect_contains "prebuilt module loaded from the node" "$nondefault" "args: [prebuilt, /host/prebuilt]"
	expect_contains "privileged loader by value" "$nondefault" "privileged: true"
	expect_contains "custom image" "$nondefault" "image: registry.example/stressmix/stressmix:0.1.0-test"
	expect_contains "anonymous access off" "$(grep -A1 GF_AUTH_ANONYMOUS_ENABLED <<<"$nondefault")" 'value: "false"'
	expect_absent "no --namespace flag when every namespace is managed" "$nondefault" "--namespace="
	out=$(render --set agent.module.mode=none 2>&1) || abort "helm template (module none) failed: $out"
	expect_absent "module mode none: no init container" "$out" "initContainers:"
	out=$(render --set 'workloadNamespaces.names={team-a,team-b}' 2>&1) || abort "helm template (two namespaces) failed: $out"
	expect_count "$out" Role stressmix-operator 2
	expect_count "$out" RoleBinding stressmix-operator 2
	expect_count "$out" Namespace "" 2
	expect_contains "operator watches team-a" "$out" "--namespace=team-a"
	expect_contains "operator watches team-b" "$out" "--namespace=team-b"
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
	expect_refused "unpinned Infinity version" "/grafana/infinityPluginVersion.*'latest' does not match pattern" \
		render --set grafana.infinityPluginVersion=latest
	expect_refused "namespace that is no DNS label" "/workloadNamespaces/names/0.*'Bad_Namespace' does not match pattern" \
		render --set 'workloadNamespaces.names={Bad_Namespace}'
	expect_refused "zero operator replicas" "/operator/replicas.*minimum: got 0, want 1" \
		render --set operator.replicas=0
	expect_refused "zero agent interval" "/agent/intervalSeconds.*minimum: got 0, want 1" \
		render --set agent.intervalSeconds=0
	expect_refused "LoadBalancer log service" "/logsvc/service/type.*must be one of 'ClusterIP', 'NodePort'" \
		render --set logsvc.service.type=LoadBalancer
	expect_refused "anonymous role that Grafana lacks" "/grafana/anonymous/role.*must be one of 'Viewer', 'Editor', 'Admin'" \
		render --set grafana.anonymous.role=Root
	expect_refused "relative prebuilt module directory" "/agent/module/prebuiltDir.*'relative/dir' does not match pattern" \
		render --set agent.module.prebuiltDir=relative/dir
}
