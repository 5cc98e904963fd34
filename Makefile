# stressmix: the one test command is `make test`.
# Every component adds its checks to TEST_TARGETS from its own file in hack/mk/*.mk,
# so no component edits another's rules.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Build outputs and downloaded tools live outside the clone, so CI on a fresh clone stays warm.
STRESSMIX_CACHE ?= $(HOME)/.cache/stressmix
export STRESSMIX_CACHE
export CARGO_TARGET_DIR ?= $(STRESSMIX_CACHE)/cargo-target
# CI builds each fresh clone at a new path, so incremental state is never reused there; it only fills
# the cache's disk (14 GB of it here on 2026-12-06, which with a cold cache beside it filled the disk).
ifdef CI
export CARGO_INCREMENTAL ?= 0
endif
export CARGO_TERM_COLOR ?= never

TEST_TARGETS :=

include $(sort $(wildcard hack/mk/*.mk))

.PHONY: help test
help:
	@echo "make up              the whole stack on a local kind cluster (docker with buildx, kind, kubectl, helm);"
	@echo "                     without docker, on the lab node: a real Kubernetes node in qemu (Linux, root)"
	@echo "make down            delete that cluster, or stop the lab node"
	@echo "make images          build both images (docker when it answers, else buildah); IMAGES_ARCHIVE_DIR=DIR also writes archives"
	@echo "make crds            regenerate crds/ from the api types"
	@echo "make test            run every check and test (what CI runs)"
	@echo "make bench-operator  operator vs ReplicaSet controller on the test control plane"
	@echo "make bench-kmod      module read vs userspace cgroupfs reader, in qemu"
	@echo "make bench-logsvc    log service ingest rate and dashboard query latency"
	@echo "make bench-agent     agent CPU and memory, module vs cgroupfs fallback"
	@echo "test parts: $(TEST_TARGETS)"

test: $(TEST_TARGETS)
	@echo "make test: all parts passed: $(TEST_TARGETS)"
