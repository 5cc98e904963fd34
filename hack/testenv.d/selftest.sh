#!/usr/bin/env bash
# Checks hack/testenv's own contract: `up` twice is harmless (same pids), `status` tells the truth,
# `down` stops exactly the recorded pids (a bystander process survives) and removes the state, and
# `up` afterwards gives a working control plane again. It runs its own instance (own state
# directory and ports), so a control plane already up for tests or development is never touched.
set -euo pipefail
testenv="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/testenv"
export STRESSMIX_TESTENV_STATE=${STRESSMIX_CACHE:-$HOME/.cache/stressmix}/testenv/selftest-run
export STRESSMIX_TESTENV_ETCD_PORT=23890 STRESSMIX_TESTENV_APISERVER_PORT=26543
export STRESSMIX_TESTENV_KCM_PORT=20357 STRESSMIX_TESTENV_SCHED_PORT=20359 STRESSMIX_TESTENV_KWOK_PORT=20347
# shellcheck source=hack/testenv.d/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
fail() { echo "testenv selftest: FAIL: $*" >&2; exit 1; }
trap '"$testenv" down >/dev/null 2>&1 || true' EXIT
pids() { cat "$STATE_DIR"/pids/*.pid 2>/dev/null | sort | tr '\n' ' '; }

"$testenv" up
before=$(pids)
start=$SECONDS
"$testenv" up
[ $((SECONDS - start)) -le 5 ] || fail "second up took $((SECONDS - start)) s"
[ "$(pids)" = "$before" ] || fail "second up changed the processes: $before -> $(pids)"
"$testenv" status >/dev/null || fail "status says not up after up"
eval "$("$testenv" env)"
[ "$(kubectl get node "$STRESSMIX_TESTENV_NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ] ||
  fail "node $STRESSMIX_TESTENV_NODE not Ready"
[ "$(kubectl auth can-i list secrets --as=system:serviceaccount:default:default || true)" = no ] ||
  fail "RBAC is not enforced (default ServiceAccount may list secrets)"

sleep 300 &
bystander=$!
"$testenv" down
for pid in $before; do
  if kill -0 "$pid" 2>/dev/null; then fail "pid $pid still alive after down"; fi
done
kill -0 "$bystander" 2>/dev/null || fail "down killed a process it did not start"
kill "$bystander"
[ ! -e "$STATE_DIR" ] || fail "down left $STATE_DIR"
if "$testenv" status >/dev/null; then fail "status says up after down"; fi

start=$SECONDS
"$testenv" up
echo "testenv selftest: warm up in $((SECONDS - start)) s"

# Processes killed behind its back (as between a session and CI): the next `up` recovers.
for pid in $(pids); do kill -KILL "$pid"; done
sleep 1
if "$testenv" status >/dev/null; then fail "status says up after its processes were killed"; fi
"$testenv" up
"$testenv" status >/dev/null || fail "status says not up after the second up"
eval "$("$testenv" env)"
kubectl -n default get serviceaccount default >/dev/null || fail "no default ServiceAccount after the second up"
echo "testenv selftest: passed"
