#!/usr/bin/env bash
# The project's one test command (README.md; .ci/run runs it): bash scripts/test.sh
#
#   1. scripts/install-test-deps.sh  (kcat, Go + Sarama, Python venv, kafkajs; fast when present)
#   2. cargo fmt --all --check
#   3. cargo clippy --workspace --all-targets -- -D warnings
#   4. doc tests, then every unit and integration test (cargo nextest when installed,
#      else cargo test), so the output ends with the test runner's own summary line.
#
# Tests build in the dev profile: clippy has already compiled the build scripts (and run
# rdkafka-sys's, which compiles librdkafka from source) for dev, and the test build reuses
# that, while a release build would compile the C libraries again and spend minutes in
# LLVM on two cores; the tests are loopback I/O on small data, where optimisation buys
# little. Exits non-zero on the first failing step.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
started=$SECONDS

if [[ ${CI:-} == true || ${CI:-} == 1 ]]; then
    # A fresh checkout each time: incremental caches only cost time and disk.
    export CARGO_INCREMENTAL=0
fi
export CARGO_TERM_PROGRESS_WHEN=never

step "install test dependencies (scripts/install-test-deps.sh)"
bash scripts/install-test-deps.sh

step "cargo fmt --all --check"
cargo fmt --all --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "README's run command starts the broker (cargo run -- --version)"
cargo run -q -- --version | grep -q '^isthmus '

step "API docs build without warnings (cargo doc --workspace --no-deps)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "doc tests (cargo test --workspace --doc)"
cargo test --workspace --doc

if cargo nextest --version >/dev/null 2>&1; then
    step "tests (cargo nextest run --workspace), $((SECONDS - started))s so far"
    exec cargo nextest run --workspace --no-fail-fast
else
    step "tests (cargo test --workspace; cargo-nextest not installed), $((SECONDS - started))s so far"
    exec cargo test --workspace --lib --bins --tests --no-fail-fast
fi
