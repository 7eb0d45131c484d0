#!/usr/bin/env bash
# Runs every test of archive-node on a fresh machine: formatting, lints, the Rust tests (unit,
# proptests, in-process, CLI), the functional tests in tests-functional/ (pytest, in a venv
# this script creates) and a short run of every fuzz target (installs cargo-fuzz when missing).
# Needs only cargo, python3 and node/npm from the machine.
#
# Prints one summary line per step at the end (ok / FAILED, with its wall time); a failing
# functional test prints the tail of the log of every daemon it started.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

summary=()
started=$(date +%s)

report() {
  printf '\n==> summary (%ss in all)\n' "$(($(date +%s) - started))"
  printf '%s\n' "${summary[@]}"
}

# step NAME COMMAND...: runs one step; on failure prints the summary so far and stops.
step() {
  local name=$1
  shift
  printf '\n==> %s\n' "$name"
  local t0 rc
  t0=$(date +%s)
  "$@"
  rc=$?
  local line
  line=$(printf '%-28s %s (%ss)' "$name" "$([ $rc = 0 ] && echo ok || echo "FAILED, exit $rc")" "$(($(date +%s) - t0))")
  summary+=("$line")
  if [ $rc != 0 ]; then
    report
    exit "$rc"
  fi
}

step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo test" cargo test --workspace --locked
step "tests-functional (pytest)" scripts/functional.sh
# scripts/fuzz.sh 600 runs each target for 10 minutes.
step "fuzz targets, briefly" scripts/fuzz.sh "${FUZZ_SECONDS:-15}"
report
