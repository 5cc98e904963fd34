# Node agent: the long process-level tests (60 s log-service outage against the real log service
# binary) and, when the kernel-module qemu harness is present, the end-to-end run in a real kernel.
# Unit tests run in `cargo test --workspace` (10-rust.mk).
.PHONY: test-agent bench-agent
TEST_TARGETS += test-agent

test-agent:
	nice cargo build -p stressmix-logsvc --locked
	nice cargo test -p stressmix-agent --locked --features slow-tests

# Agent CPU and RSS at 1 s with 100 synthetic containers, module document vs cgroupfs fallback.
bench-agent:
	hack/bench/agent.sh
