# Rust workspace: formatting, lints, unit and integration tests that need no cluster or kernel.
.PHONY: test-rust-fmt test-rust-clippy test-rust
TEST_TARGETS += test-rust-fmt test-rust-clippy test-rust

test-rust-fmt:
	cargo fmt --all -- --check

test-rust-clippy:
	cargo clippy --workspace --all-targets --locked -- -D warnings

test-rust:
	cargo test --workspace --locked
