#!/usr/bin/env bash
# Benchmarks of archive-node, each side by side with its reference in the same run.
#   scripts/bench.sh build    archive build of 1M messages vs sha256sum of the output
#   scripts/bench.sh blocks   add/cat of 1 GiB vs sha256sum of the file
#   scripts/bench.sh transfer 256 MiB between two of our nodes vs the raw pipeline (a libp2p stream
#                             hashed and written as a store would) and two Helia nodes
#   scripts/bench.sh catchup  a member catches up on 1M messages in 52 archives vs raw sled inserts
#   scripts/bench.sh gossip   30 daemons, sparse topology: announcement to every member accepting it
#   scripts/bench.sh swarm    20 members fetch a 64 MiB history at once: what the control node uploads
#   scripts/bench.sh memory   peak RSS of a member catching up on a 1 GiB history; an idle daemon
#   scripts/bench.sh memory-small  peak RSS of a member catching up on the catchup bench's 1M messages
#   scripts/bench.sh wan      one fetch through a delaying forwarder at 0/20/50/100 ms RTT: ours, a raw
#                             libp2p stream, Helia, plain TCP; and a PNG of the curve
#   scripts/bench.sh all      every benchmark above, then BENCHMARKS.md
# Each writes bench/results/<name>.json (machine, inputs, figures, ratios) and prints a table.
set -euo pipefail
cd "$(dirname "$0")/.."

run_cargo_bench() {
  local name=$1 log
  log=$(mktemp)
  echo "==> cargo bench --bench $name (release build; the first run also generates its input data)"
  cargo bench --locked -p archive-node --bench "$name" 2>&1 | tee "$log" | grep -E '^(RESULT|[a-z].*time:|Benchmarking .*: Analyzing)' || true
  local result
  result=$(grep '^RESULT ' "$log" | tail -1 | sed 's/^RESULT //')
  rm -f "$log"
  if [ -z "$result" ]; then
    echo "bench $name produced no RESULT line" >&2
    exit 1
  fi
  python3 scripts/bench_report.py record "$name" "$result"
}

run_transfer() {
  echo "==> transfer: release build, npm packages, then 3 alternating runs inside unshare -n"
  cargo build --locked --release -p archive-node --bin archive-node --example raw_stream
  (cd tests-functional/js && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; })
  local log result
  log=$(mktemp)
  unshare -n bash -c 'ip link set lo up && exec python3 scripts/bench_transfer.py' | tee "$log"
  result=$(grep '^RESULT ' "$log" | tail -1 | sed 's/^RESULT //')
  rm -f "$log"
  [ -n "$result" ] || { echo "transfer produced no RESULT line" >&2; exit 1; }
  python3 scripts/bench_report.py record transfer "$result"
}

# A Python benchmark against real release daemons, inside a private network namespace.
run_daemons() {
  local name=$1 script=$2; shift 2
  echo "==> $name: release build, then real daemons inside unshare -n"
  cargo build --locked --release -p archive-node --bin archive-node
  source scripts/venv.sh
  local log result
  log=$(mktemp)
  unshare -n bash -c 'ip link set lo up && exec "$@"' run tests-functional/.venv/bin/python "scripts/$script" "$@" | tee "$log"
  result=$(grep '^RESULT ' "$log" | tail -1 | sed 's/^RESULT //')
  rm -f "$log"
  [ -n "$result" ] || { echo "$name produced no RESULT line" >&2; exit 1; }
  python3 scripts/bench_report.py record "$name" "$result"
}

# The member's peak RSS catching up 1,000,000 small messages: the catch-up bench prepares (once)
# the control node's data dir, which a real control daemon then serves.
run_memory_small() {
  echo "==> memory-small: the catch-up bench's control data dir (prepared once)"
  CATCHUP_PREPARE_ONLY=1 cargo bench --locked -p archive-node --bench catchup 2>&1 | grep -v '^ *Compiling' || true
  BENCH_CATCHUP_DIR="$(pwd)/target/bench-data/catchup-control" run_daemons memory-small bench_swarm.py memory-small
}

# The wan benchmark plots its curve: matplotlib in the venv, for benchmarks only (not the tests).
ensure_matplotlib() {
  source scripts/venv.sh
  tests-functional/.venv/bin/python -c 'import matplotlib' 2>/dev/null ||
    tests-functional/.venv/bin/pip install --quiet --disable-pip-version-check 'matplotlib==3.9.*'
}

what=${1:-all}
case "$what" in
  build|blocks|catchup) run_cargo_bench "$what" ;;
  transfer) run_transfer ;;
  gossip) run_daemons gossip bench_gossip.py ;;
  swarm) run_daemons swarm bench_swarm.py swarm ;;
  memory) run_daemons memory bench_swarm.py memory ;;
  memory-small) run_memory_small ;;
  wan)
    (cd tests-functional/js && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; })
    cargo build --locked --release -p archive-node --example raw_stream
    ensure_matplotlib
    run_daemons wan bench_wan.py
    ;;
  all)
    run_cargo_bench build
    run_cargo_bench blocks
    run_transfer
    run_cargo_bench catchup
    run_daemons gossip bench_gossip.py
    run_daemons swarm bench_swarm.py swarm
    run_daemons memory bench_swarm.py memory
    run_memory_small
    cargo build --locked --release -p archive-node --example raw_stream
    ensure_matplotlib
    run_daemons wan bench_wan.py
    python3 scripts/bench_report.py markdown > BENCHMARKS.md
    echo "wrote BENCHMARKS.md"
    ;;
  *) echo "usage: scripts/bench.sh [build|blocks|transfer|catchup|gossip|swarm|memory|memory-small|wan|all]" >&2; exit 2 ;;
esac
