# Log service: its router, durability (SIGKILL/SIGTERM of the real binary) and property tests run in
# `cargo test --workspace` (10-rust.mk). This fragment adds the OpenAPI freshness check to `make test`,
# and the benchmark (not part of `make test`).
.PHONY: test-logsvc bench-logsvc openapi test-openapi
TEST_TARGETS += test-openapi

# The log service's tests alone (the same tests `make test` runs via cargo test --workspace).
test-logsvc:
	nice cargo test -p stressmix-logsvc -p stressmix-api --locked

# Regenerate logsvc/openapi.json from the code (route table, query vocabulary, api types).
openapi:
	nice cargo run --quiet --locked -p stressmix-logsvc --bin stressmix-logsvc-openapi > logsvc/openapi.json

# logsvc/openapi.json must be exactly what the code generates.
test-openapi:
	@generated=$$(mktemp) && trap 'rm -f "$$generated"' EXIT && \
	nice cargo run --quiet --locked -p stressmix-logsvc --bin stressmix-logsvc-openapi > "$$generated" && \
	if ! diff -u logsvc/openapi.json "$$generated"; then \
		echo "logsvc/openapi.json is stale: run 'make openapi' and commit the result" >&2; exit 1; \
	fi && echo "logsvc/openapi.json is up to date"

# Sustained ingest over HTTP with fsync per commit (and NORMAL for comparison), and the latency of the
# 1-hour / 100-container / 1-second dashboard query. Prints Markdown rows for docs/benchmarks.md.
bench-logsvc:
	nice cargo bench -p stressmix-logsvc --bench logsvc --locked
