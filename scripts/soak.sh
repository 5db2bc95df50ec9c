#!/usr/bin/env bash
# The soak: 10^6 mixed requests (or REQUESTS) through wrk against real
# Apache, slapd and the backend; prints the answers by status, any 2xx
# without a completion, error-log lines above warn, and the children's
# memory after a warm-up and at the end.
#
#   scripts/soak.sh [REQUESTS] [ROUND-SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --workspace --lib --bins --examples --quiet
exec target/release/examples/soak "$@"
