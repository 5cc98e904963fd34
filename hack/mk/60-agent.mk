# Node agent: the long process-level tests (60 s log-service outage against the real log service
# binary) and the end-to-end run in a real kernel under qemu (kmod/test/lib.sh harness).
# Unit tests run in `cargo test --workspace` (10-rust.mk).
.PHONY: test-agent test-agent-outage test-agent-e2e bench-agent
TEST_TARGETS += test-agent

test-agent: test-agent-outage test-agent-e2e

test-agent-outage:
	nice cargo build -p stressmix-logsvc --locked
	nice cargo test -p stressmix-agent --locked --features slow-tests

test-agent-e2e:
	agent/test/e2e.sh

# Agent CPU and RSS at 1 s with 100 synthetic containers, module document vs cgroupfs fallback.
bench-agent:
	hack/bench/agent.sh
