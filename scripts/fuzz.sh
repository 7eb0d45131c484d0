#!/usr/bin/env bash
# Fuzzes every decoder that reads bytes from outside (cargo fuzz, libFuzzer), SECONDS each.
#   scripts/fuzz.sh [SECONDS] [TARGET...]      default: 600 s, every target
# The seed corpora are real encodings written by node/tests/fuzz_seeds.rs; libFuzzer adds what it finds
# to fuzz/corpus/<target>/. A crash leaves its input in fuzz/artifacts/<target>/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(archive index sealed announcement membership bitswap dag_pb car rpc_params)

command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
# cargo fuzz passes -Z flags; the machine's one toolchain is stable, which takes them with this.
export RUSTC_BOOTSTRAP=1

# Seeds: real encodings, written by a test that also checks they decode.
FUZZ_SEEDS_DIR="$(pwd)/fuzz/corpus" cargo test --locked -q -p archive-node --test fuzz_seeds >/dev/null
# A short run (the test suite's) builds for build time, not for executions per second: deps at
# opt-level 1 and no debug info. Every target is built in one cargo invocation (links in parallel).
if [ "$secs" -le 60 ]; then
  export CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=false
fi
if [ $# -eq 0 ]; then
  cargo fuzz build --fuzz-dir fuzz --sanitizer none
fi
summary=()
for t in "${targets[@]}"; do
  log=$(mktemp)
  echo "==> fuzz $t for ${secs}s"
  if ! cargo fuzz run --fuzz-dir fuzz --sanitizer none "$t" "fuzz/corpus/$t" -- \
      -max_total_time="$secs" -max_len=262144 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz target $t failed: its input is in fuzz/artifacts/$t/" >&2
    exit 1
  fi
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
  summary+=("$t: $runs executions in ${secs}s, no crash")
  rm -f "$log"
done
printf '%s\n' "${summary[@]}"
