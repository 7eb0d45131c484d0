#!/usr/bin/env bash
# The whole story of archive-node on loopback, with the CLI: a control node creates a community,
# a member joins and chats, the control node cuts the history into archives and announces them,
# the member downloads and imports them; then the control node stops, and a late member gets the
# whole history from the first member alone.
# (scripts/demo-blocks.sh: add and fetch a file; scripts/demo-archives.sh: the offline builder.)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --quiet -p archive-node --bin archive-node
bin="$(pwd)/target/debug/archive-node"
work=$(mktemp -d)
declare -A pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
an() { local who=$1; shift; "$bin" "$@" --data-dir "$work/$who"; }

start() {
  local who=$1
  "$bin" daemon --data-dir "$work/$who" --rpc-port 0 --listen /ip4/127.0.0.1/tcp/0 > "$work/$who.out" 2> "$work/$who.log" &
  pids[$who]=$!
  for _ in $(seq 1 300); do [ "$(wc -l < "$work/$who.out")" -ge 2 ] && break; sleep 0.1; done
  sed -n 's/^listening //p' "$work/$who.out" | head -1 > "$work/$who.addr"
  echo "  $who: $(cat "$work/$who.addr")"
}

say "1. Three daemons on 127.0.0.1: the control node and two members (one will come late)"
start control; start alice

say "2. The control node creates a community (it holds the community key); Alice joins"
out=$(an control community create "demo chat")
community=$(echo "$out" | sed -n 's/^community //p')
invite=$(echo "$out" | sed -n 's/^invite //p')
echo "  community $community"
an alice community join "$invite" | sed 's/^/  /'
an alice connect "$(cat "$work/control.addr")" > /dev/null

say "3. Alice and the control node chat (signed messages over gossipsub, verified on arrival)"
an alice send "$community" general "hi, I am Alice" > /dev/null
an control send "$community" general "welcome, Alice" > /dev/null
an alice send "$community" random "the history must survive" > /dev/null
sleep 1.2   # archive windows are [from, to) in whole seconds
an control messages "$community" | sed 's/^/  /' | cut -c1-160

say "4. The control node cuts the history into archives and announces the index (signed, Lamport clock)"
# Its seeding loop runs at start and every interval; create-now runs a round at once.
an control archive create-now "$community" > /dev/null
an control archives "$community" | sed 's/^/  /' | cut -c1-160

say "5. Alice downloads the archives it lacks and imports them"
an alice community sync "$community" | tail -1 | sed 's/^/  /'
an alice archives "$community" | sed 's/^/  /' | cut -c1-160

say "6. The control node goes offline; Bob joins late and catches up from Alice alone"
kill -TERM "${pids[control]}"; wait "${pids[control]}" 2>/dev/null || true; unset 'pids[control]'
start bob
an bob community join "$invite" | sed 's/^/  /'
an bob connect "$(cat "$work/alice.addr")" > /dev/null
an bob community sync "$community" | tail -1 | sed 's/^/  /'
echo "  Bob's messages (all from the archives Alice serves):"
an bob messages "$community" | sed 's/^/  /' | cut -c1-160
[ "$(an bob messages "$community" | wc -l)" -eq 3 ] && echo "  Bob has the whole history: 3 messages"
