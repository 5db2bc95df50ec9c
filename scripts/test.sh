#!/usr/bin/env bash
# Runs every check and test: formatting, lints, unit tests of the pure
# logic, and the integration tests against real apache2, slapd and
# smtp-sink (and headless Chromium for the pages).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

echo "== format"
cargo fmt --all -- --check
rustfmt --check --edition 2021 fuzz/targets.rs fuzz/fuzz_targets/*.rs
echo "== lint"
cargo clippy --workspace --all-targets --features mod_twofactor/test-hooks -- -D warnings
echo "== build (with the test-only panic paths)"
cargo build --workspace --features mod_twofactor/test-hooks
echo "== release build (for the package test)"
cargo build --release -p mod_twofactor
echo "== tests"
cargo test --workspace --features mod_twofactor/test-hooks "$@"
