#!/usr/bin/env bash
# Runs every check and test: formatting, lints, unit tests of the pure
# logic, and the integration tests against real apache2, slapd, Samba's
# AD domain controller and smtp-sink (and headless Chromium for the pages);
# then the challenge, header, URL and fault tests once more with Samba AD
# as the directory.
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
echo "== the same against Active Directory (Samba AD DC, TwoFactorDirectory ad)"
TWOFACTOR_TEST_DIRECTORY=ad cargo test --features mod_twofactor/test-hooks \
  --test challenge_flows --test gateway_identity --test url_manipulation --test methods_and_paths \
  --test internal_requests --test faults "$@"
