# shellcheck shell=bash
# RBAC matrix: `kubectl auth can-i --as=system:serviceaccount:<ns>:<sa>` for each component's
# ServiceAccount, what it needs (yes) and what it must not do (no). Prints the matrix as Markdown
# and keeps docs/testing.md's copy (between the rbac-matrix markers) equal to it.
# Sourced by run.sh (needs lib.sh and cluster.sh's NS/WL_NS/RELEASE).

# component|verb|resource[/name][#subresource]|namespace ("*" = all namespaces)|expected|why
rbac_cases() {
	cat <<EOF
operator|watch|workloads.stressmix.dev|$WL_NS|yes|reconcile Workloads
operator|patch|workloads.stressmix.dev#status|$WL_NS|yes|write status
operator|update|workloads.stressmix.dev|$WL_NS|no|never edits a spec
operator|create|pods|$WL_NS|yes|create stress pods
operator|delete|pods|$WL_NS|yes|replace pods
operator|patch|pods|$WL_NS|no|pods are replaced, not edited
operator|create|pods|default|no|outside its namespaces
operator|delete|pods|$NS|no|outside its namespaces
operator|list|pods|*|no|no cluster-wide pod access
operator|create|events|$WL_NS|yes|core events
operator|create|events.events.k8s.io|$WL_NS|yes|events.k8s.io events
operator|create|leases.coordination.k8s.io|$NS|yes|leader election
operator|update|leases.coordination.k8s.io/stressmix-operator|$NS|yes|renew its Lease
operator|update|leases.coordination.k8s.io/other-lease|$NS|no|only its own Lease
operator|create|leases.coordination.k8s.io|default|no|Lease only in the release namespace
operator|get|secrets|$WL_NS|no|no Secrets
operator|list|secrets|$NS|no|no Secrets
operator|get|configmaps|$WL_NS|no|nothing else
operator|create|deployments.apps|$WL_NS|no|nothing else
agent|list|pods|*|yes|attribute cgroups to pods
agent|watch|pods|*|yes|attribute cgroups to pods
agent|create|pods|$WL_NS|no|reads only
agent|delete|pods|$WL_NS|no|reads only
agent|get|secrets|$NS|no|no Secrets
agent|get|nodes|*|no|nothing else
agent|list|workloads.stressmix.dev|*|no|nothing else
logsvc|get|pods|$NS|no|no API access
logsvc|list|pods|*|no|no API access
logsvc|get|secrets|$NS|no|no API access
logsvc|create|configmaps|$NS|no|no API access
grafana|get|pods|$NS|no|no API access
grafana|get|secrets|$NS|no|no API access
grafana|list|configmaps|$NS|no|no API access
EOF
}

rbac_matrix() {
	local matrix component verb resource ns want why sa got nsflag sub
	td_log "RBAC matrix (kubectl auth can-i --as=system:serviceaccount:$NS:<sa>)"
	matrix="| ServiceAccount | can it ... | namespace | expected | got | why |
|---|---|---|---|---|---|"
	while IFS='|' read -r component verb resource ns want why; do
		sa=$RELEASE-$component
		if [[ $ns == "*" ]]; then nsflag=(--all-namespaces); else nsflag=(-n "$ns"); fi
		sub=()
		if [[ $resource == *"#"* ]]; then sub=(--subresource="${resource#*#}"); fi
		got=$(kubectl auth can-i "$verb" "${resource%%#*}" "${sub[@]}" "${nsflag[@]}" --as="system:serviceaccount:$NS:$sa" 2>/dev/null || true)
		if [[ $got == "$want" ]]; then
			pass "$sa can-i $verb $resource in $ns: $got"
		else
			fail "$sa can-i $verb $resource in $ns: got '$got', want $want ($why)"
		fi
		matrix+="
| $sa | $verb ${resource/\#//} | ${ns/\*/(all)} | $want | $got | $why |"
	done < <(rbac_cases)
	printf '%s\n' "$matrix"
	RBAC_MATRIX=$matrix
}

# docs/testing.md holds the matrix between <!-- rbac-matrix:begin --> and <!-- rbac-matrix:end -->.
# STRESSMIX_UPDATE_DOCS=1 rewrites it; otherwise a stale copy fails.
rbac_docs() {
	local doc=docs/testing.md current
	current=$(sed -n '/<!-- rbac-matrix:begin -->/,/<!-- rbac-matrix:end -->/p' "$doc" 2>/dev/null | sed '1d;$d')
	if [[ $current == "$RBAC_MATRIX" ]]; then
		pass "docs/testing.md RBAC matrix matches the measured one"
	elif [[ ${STRESSMIX_UPDATE_DOCS:-} == 1 ]]; then
		python3 - "$doc" "$RBAC_MATRIX" <<'PY'
import re, sys
path, matrix = sys.argv[1], sys.argv[2]
text = open(path).read()
new, n = re.subn(r"(<!-- rbac-matrix:begin -->\n).*?(<!-- rbac-matrix:end -->)",
                 lambda m: m.group(1) + matrix + "\n" + m.group(2), text, flags=re.S)
if n != 1:
    sys.exit(f"{path}: rbac-matrix markers not found")
open(path, "w").write(new)
PY
		pass "docs/testing.md RBAC matrix rewritten (STRESSMIX_UPDATE_DOCS=1)"
	else
		fail "docs/testing.md RBAC matrix differs from the measured one: rerun with STRESSMIX_UPDATE_DOCS=1 and commit"
	fi
}
