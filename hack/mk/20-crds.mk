# The Workload CRD: crds/workload.yaml must be exactly what `crdgen` prints for the current api types.
.PHONY: test-crds crds
TEST_TARGETS += test-crds

# Regenerate crds/ from the api types.
crds:
	cargo run --quiet --locked -p stressmix-api --bin crdgen > crds/workload.yaml

test-crds:
	@generated=$$(mktemp) && trap 'rm -f "$$generated"' EXIT && \
	cargo run --quiet --locked -p stressmix-api --bin crdgen > "$$generated" && \
	if ! diff -u crds/workload.yaml "$$generated"; then \
		echo "crds/workload.yaml is stale: run 'make crds' and commit the result" >&2; exit 1; \
	fi && echo "crds/workload.yaml is up to date"
