#!/usr/bin/env bash
# The benchmark: Apache alone, the module cached and uncached, and
# mod_authnz_ldap (caches on, tuned, off), alternating in one run; then the
# challenge rate and the cached path in instructions. Prints the table and
# writes target/bench/results.md and target/bench/chart.svg.
#
#   scripts/bench.sh [ROUNDS] [SECONDS]      (defaults: 5 rounds of 5 s)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --workspace --lib --bins --examples --quiet
exec target/release/examples/bench "$@"
