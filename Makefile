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
export CARGO_TERM_COLOR ?= never

TEST_TARGETS :=

include $(sort $(wildcard hack/mk/*.mk))

.PHONY: help test
help:
	@echo "make test   run every check and test (what CI runs)"
	@echo "test parts: $(TEST_TARGETS)"

test: $(TEST_TARGETS)
	@echo "make test: all parts passed: $(TEST_TARGETS)"
