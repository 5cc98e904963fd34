# Log service: its router, durability (SIGKILL/SIGTERM of the real binary) and property tests run in
# `cargo test --workspace` (10-rust.mk). This fragment only adds the benchmark (not part of `make test`).
.PHONY: test-logsvc bench-logsvc

# The log service's tests alone (the same tests `make test` runs via cargo test --workspace).
test-logsvc:
	nice cargo test -p stressmix-logsvc -p stressmix-api --locked

# Sustained ingest over HTTP with fsync per commit (and NORMAL for comparison), and the latency of the
# 1-hour / 100-container / 1-second dashboard query. Prints Markdown rows for docs/benchmarks.md.
bench-logsvc:
	nice cargo bench -p stressmix-logsvc --bench logsvc --locked
