#!/usr/bin/env bash
# Fuzzes every parser of untrusted input (fuzz/targets.rs) with cargo-fuzz
# on the stable toolchain (libFuzzer without a sanitizer: --sanitizer none;
# panics, hangs and runaway memory are what it catches).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (default: 60 s, every target)
#
# Each target runs SECONDS from its corpus (fuzz/corpus/TARGET). New
# inputs that add coverage are merged into the corpus, minimised; every
# crash is minimised into fuzz/regressions/TARGET. The ordinary test run
# replays both (core/tests/fuzz_regressions.rs). Prints one line per target:
# executions, seconds, corpus size before and after, crashes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

seconds=${1:-60}
shift || true
if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^twofactor')
fi

# The stable toolchain only, as on a fresh machine (rustup may know others).
command -v rustup >/dev/null 2>&1 && export RUSTUP_TOOLCHAIN=stable
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet
flags=(--sanitizer none)
cargo fuzz build "${flags[@]}"

printf '%-18s %12s %8s %8s %8s %8s\n' target executions seconds corpus after crashes
for t in "${targets[@]}"; do
  corpus=fuzz/corpus/$t
  mkdir -p "$corpus" "fuzz/regressions/$t"
  before=$(find "$corpus" -type f | wc -l)
  work=$(mktemp -d)
  cp "$corpus"/* "$work"/ 2>/dev/null || true
  log=$(mktemp)
  start=$(date +%s)
  crashes=0
  # Runs until the time is up; after a crash, again from where it was, so
  # that one finding does not end the search.
  while :; do
    left=$(( seconds - ($(date +%s) - start) ))
    [ "$left" -gt 0 ] || break
    if cargo fuzz run "${flags[@]}" "$t" "$work" -- -max_total_time="$left" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 >>"$log" 2>&1; then
      break
    fi
    for crash in fuzz/artifacts/"$t"/*; do
      [ -f "$crash" ] || continue
      case "$(basename "$crash")" in minimized-from-*) rm -f "$crash"; continue ;; esac
      cargo fuzz tmin "${flags[@]}" "$t" "$crash" -- -runs=2000 >/dev/null 2>&1 || true
      small=$(ls -t fuzz/artifacts/"$t"/minimized-from-* 2>/dev/null | head -1 || true)
      cp "${small:-$crash}" "fuzz/regressions/$t/$(basename "$crash")"
      rm -f fuzz/artifacts/"$t"/*
      crashes=$((crashes + 1))
    done
  done
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{s+=$2} END {print s+0}')
  # Keep only the inputs that matter: the corpus stays small enough for git.
  cargo fuzz cmin "${flags[@]}" "$t" "$work" >/dev/null 2>&1 || true
  rm -f "$corpus"/*
  cp "$work"/* "$corpus"/ 2>/dev/null || true
  after=$(find "$corpus" -type f | wc -l)
  printf '%-18s %12s %8s %8s %8s %8s\n' "$t" "$runs" "$(( $(date +%s) - start ))" "$before" "$after" "$crashes"
  rm -rf "$work" "$log"
done
