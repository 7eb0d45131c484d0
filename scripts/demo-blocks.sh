#!/usr/bin/env bash
# A local two-node demo of archive-node on loopback: builds, starts two daemons with temp data
# dirs, adds a file on one through the CLI, fetches it on the other over Bitswap through the CLI,
# checks the bytes, shows the RPC API and the signal stream, and stops both daemons cleanly.
# (scripts/demo-archives.sh shows the offline archive builder.)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --quiet -p archive-node --bin archive-node
bin="$(pwd)/target/debug/archive-node"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
say() { printf '\n\033[1m%s\033[0m\n' "$*"; }

start_daemon() {
  local name=$1
  "$bin" daemon --data-dir "$work/$name" --rpc-port 0 --listen /ip4/127.0.0.1/tcp/0 > "$work/$name.out" 2> "$work/$name.log" &
  pids+=($!)
  # The daemon prints its RPC URL and then its listen address once it serves.
  for _ in $(seq 1 300); do
    [ "$(wc -l < "$work/$name.out")" -ge 2 ] && break
    sleep 0.1
  done
  sed 's/^/  /' "$work/$name.out"
}

say "1. Two daemons on 127.0.0.1 (RPC on a free port, token in <data-dir>/rpc.token)"
echo "alice:"; start_daemon alice
echo "bob:";   start_daemon bob
alice_addr=$(sed -n 's/^listening //p' "$work/alice.out" | head -1)

say "2. Bob streams his signals (archive-node signals) in the background"
"$bin" signals --data-dir "$work/bob" > "$work/bob.signals" &
pids+=($!)

say "3. Alice adds 20 MiB of random bytes (archive-node add, through her daemon)"
head -c $((20 * 1024 * 1024)) /dev/urandom > "$work/file.bin"
cid=$("$bin" add --data-dir "$work/alice" "$work/file.bin")
echo "CID $cid"
"$bin" stat --data-dir "$work/alice" "$cid"

say "4. Bob fetches it from Alice over Bitswap (archive-node fetch, through his daemon)"
"$bin" fetch "$cid" --data-dir "$work/bob" --peer "$alice_addr" -o "$work/fetched.bin"
cmp "$work/file.bin" "$work/fetched.bin" && echo "the bytes Bob fetched equal Alice's file"

say "5. Bob's peers and node info over JSON-RPC (archive-node peers / info)"
"$bin" peers --data-dir "$work/bob"
"$bin" info --data-dir "$work/bob"

say "6. The signals Bob's daemon streamed (JSON lines)"
sleep 0.5
head -c 1500 "$work/bob.signals"; echo

say "7. Stop both daemons (SIGTERM: stop RPC, cancel, flush)"
