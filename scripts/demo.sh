#!/usr/bin/env bash
# Runs the demo: a stand-in gateway (Basic authentication as the first
# factor), the protected Apache with mod_twofactor, slapd, an SMTP sink and
# a backend, all on 127.0.0.1. Prints the URL and the logins; Ctrl-C stops it.
# With --ad, the directory is a Samba AD domain controller instead of slapd.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --workspace
exec target/release/twofactor-demo "$@"
