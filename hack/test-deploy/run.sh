#!/usr/bin/env bash
# Deployment tests (`make test-deploy`):
#   1. static: bash -n and shellcheck of the deployment scripts, dashboards are JSON; the module
#      loader script's decisions and messages (never loading anything); the generated kind config;
#   2. chart: the packaged chart's grafana/ and crds/ files identical to the sources, helm lint/template
#      for default and non-default values, values.schema.json refusals;
#   3. dashboards: every panel query of every dashboard run against a real stressmix-logsvc fed with
#      readings (hack/test-deploy/dashboard_contract.py);
#   4. cluster (hack/testenv): helm install --wait with the plain defaults and with the kind values,
#      pods Running on the kwok node, the RBAC matrix, the agent admitted only under Pod Security
#      privileged, the log service run with the chart's args and env refusing writes without the
#      ingest token (401), the operator run with the chart's args and its ServiceAccount token
#      reconciling the example Workload, Pod Security admission in the Workload namespace.
# With CI=true a missing tool or control plane fails; otherwise those parts are skipped with a reason.
# STRESSMIX_UPDATE_DOCS=1 rewrites the RBAC matrix in docs/testing.md.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
here=$root/hack/test-deploy
# shellcheck source=hack/test-deploy/lib.sh
. "$here/lib.sh"
# shellcheck source=hack/test-deploy/chart.sh
. "$here/chart.sh"
# shellcheck source=hack/test-deploy/cluster.sh
. "$here/cluster.sh"
# shellcheck source=hack/test-deploy/rbac.sh
. "$here/rbac.sh"
# shellcheck source=hack/test-deploy/kmod-build.sh
. "$here/kmod-build.sh"
# shellcheck source=hack/test-deploy/kind-config.sh
. "$here/kind-config.sh"

export STRESSMIX_CACHE=${STRESSMIX_CACHE:-$HOME/.cache/stressmix}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$STRESSMIX_CACHE/cargo-target}
EXAMPLE=${STRESSMIX_EXAMPLE:-examples/workload.yaml}
work=$(mktemp -d "${TMPDIR:-/tmp}/stressmix-test-deploy.XXXXXX")
OPERATOR_PID=
LOGSVC_PID=
started=$SECONDS

on_exit() {
	[[ -n $OPERATOR_PID ]] && kill -TERM "$OPERATOR_PID" 2>/dev/null
	[[ -n $LOGSVC_PID ]] && kill -TERM "$LOGSVC_PID" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$work"
}
trap on_exit EXIT

# missing WHAT: fail under CI, skip (said out loud, not counted as a pass) otherwise.
missing() {
	if [[ ${CI:-} == true ]]; then
		abort "$* (CI=true: required)"
	fi
	td_log "SKIPPED (CI unset): $*"
	SKIPPED+=("$*")
}
SKIPPED=()

static_checks() {
	local scripts f
	td_log "static checks"
	"$here/deps.sh"
	scripts=(hack/kind-up.sh hack/kind-down.sh images/kmod-build.sh
		hack/test-deploy/run.sh hack/test-deploy/deps.sh hack/test-deploy/lib.sh hack/test-deploy/chart.sh
		hack/test-deploy/cluster.sh hack/test-deploy/rbac.sh hack/test-deploy/kmod-build.sh
		hack/test-deploy/kind-config.sh hack/install-stack.sh hack/lib/apt.sh hack/e2e/run.sh hack/e2e/images.sh
		hack/lab/lab hack/lab/common.sh hack/lab/build.sh hack/lab/run.sh hack/lab/up-stack.sh)
	for f in "${scripts[@]}"; do
		if bash -n "$f"; then pass "bash -n $f"; else fail "bash -n $f"; fi
	done
	if out=$(shellcheck -x -s bash "${scripts[@]}" 2>&1); then
		pass "shellcheck (${#scripts[@]} scripts)"
	else
		fail "shellcheck: $out"
	fi
	for f in grafana/dashboards/*.json; do
		if python3 -m json.tool "$f" >/dev/null 2>&1; then pass "$f is JSON"; else fail "$f is not valid JSON"; fi
	done
}

# build PACKAGE: cargo build it (debug); a failure fails only the part that needs it.
build() {
	td_log "cargo build -p $1"
	if nice cargo build --locked -q -p "$1"; then
		return 0
	fi
	fail "cargo build -p $1"
	return 1
}

dashboards() {
	local port
	td_log "dashboard contract against a real stressmix-logsvc"
	port=$(free_port)
	"$CARGO_TARGET_DIR/debug/stressmix-logsvc" --listen "127.0.0.1:$port" --db "$work/logsvc.db" \
		>"$work/logsvc.log" 2>&1 &
	LOGSVC_PID=$!
	wait_for 30 "logsvc /healthz" curl -fsS "http://127.0.0.1:$port/healthz" ||
		abort "stressmix-logsvc did not answer /healthz within 30 s: $(tail -n 20 "$work/logsvc.log")"
	if python3 "$here/dashboard_contract.py" --base-url "http://127.0.0.1:$port" \
		--batch examples/readings-batch.json --grafana grafana; then
		pass "dashboard contract (see the per-query lines above)"
	else
		fail "dashboard contract"
	fi
	kill -TERM "$LOGSVC_PID" 2>/dev/null || true
	wait "$LOGSVC_PID" 2>/dev/null || true
	LOGSVC_PID=
}

static_checks
kmod_build_checks
kind_config_checks
make_help_checks

testenv_ok=false
if [[ -x hack/testenv ]] && out=$(hack/testenv up 2>&1); then
	eval "$(hack/testenv env)"
	testenv_ok=true
else
	missing "test control plane (hack/testenv up): ${out:-hack/testenv not found}"
fi

if $testenv_ok && command -v helm >/dev/null; then
	chart_packaged_files "$work"
	chart_lint_and_template
	chart_schema_refusals
else
	missing "helm (built by hack/testenv)"
fi

logsvc_built=false
if build stressmix-logsvc; then
	logsvc_built=true
	dashboards
fi

if $testenv_ok; then
	[[ -f $EXAMPLE ]] || abort "example Workload $EXAMPLE not found"
	cluster_install
	cluster_pods_running
	rbac_matrix
	rbac_docs
	cluster_agent_pod_security
	if $logsvc_built; then
		cluster_logsvc_token "$work" "$CARGO_TARGET_DIR/debug/stressmix-logsvc"
	fi
	if build stressmix-operator; then
		cluster_operator_reconciles "$work" "$CARGO_TARGET_DIR/debug/stressmix-operator" "$EXAMPLE"
		cluster_pod_security
		cluster_operator_stop
	fi
	cluster_cleanup
fi

td_log "finished in $((SECONDS - started)) s"
if ((${#SKIPPED[@]})); then
	echo "test-deploy: skipped (not counted): ${SKIPPED[*]}"
fi
td_summary
((TD_FAILED == 0))
