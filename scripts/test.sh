#!/usr/bin/env bash
# Runs every test of archive-node on a fresh machine: formatting, lints, the Rust tests (unit,
# proptests, in-process, CLI), the functional tests in tests-functional/ (pytest, in a venv
# this script creates) and a short run of every fuzz target (installs cargo-fuzz when missing).
# Needs only cargo, python3 and node/npm from the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

step "tests-functional (pytest)"
scripts/functional.sh

step "fuzz targets, briefly (scripts/fuzz.sh 600 runs each for 10 minutes)"
scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
