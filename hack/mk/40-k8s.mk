# Test control plane (hack/testenv) and the cluster integration tests against it.
# `make test-k8s` brings the control plane up (building it on first use; a cold build is long),
# builds the operator and runs operator/tests/cluster*.rs, then agent/tests/cluster_pod_watch.rs.
# The control plane stays up afterwards for fast reruns; `hack/testenv down` stops it.
.PHONY: testenv-up testenv-down test-testenv test-k8s bench-operator
TEST_TARGETS += test-testenv test-k8s

testenv-up:
	hack/testenv up

testenv-down:
	hack/testenv down

# hack/testenv's own contract: idempotent up, truthful status, down stops exactly its pids.
# Runs a separate instance (own state and ports) and removes it again.
test-testenv:
	hack/testenv.d/selftest.sh

# Each test spawns its own operator in its own namespace, so tests run in parallel; 4 threads keep
# the 2-core machine responsive. The tests fail (never skip) when the control plane is unreachable.
# Then the agent's pod watch (field selector, index, attribution) against the same API server.
test-k8s: testenv-up
	eval "$$(hack/testenv env)" && \
	  cargo test -p stressmix-operator --locked --features cluster-tests --test cluster_api --test cluster_operator --test cluster_resilience -- --test-threads 4
	eval "$$(hack/testenv env)" && \
	  cargo test -p stressmix-agent --locked --features cluster-tests --test cluster_pod_watch

bench-operator: testenv-up
	eval "$$(hack/testenv env)" && hack/bench/operator.sh
