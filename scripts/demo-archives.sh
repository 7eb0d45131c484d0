#!/usr/bin/env bash
# A local demo of archive-node, offline, in a temp dir: a community key and two authors, three
# weeks of signed messages imported into the message store, weekly history archives in
# status-go's wire format stored as IPFS blocks, a second run that finds nothing new, and the
# archives' CIDs, a CAR export and a verified read back.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --quiet -p archive-node --bin archive-node
bin="$(pwd)/target/debug/archive-node"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say() { printf '\n\033[1m%s\033[0m\n' "$*"; }

say "1. Keys: a community (its id is the public key) and two authors"
community=$("$bin" keygen | sed -n 's/^public: //p')
alice=$("$bin" keygen | sed -n 's/^secret: //p')
bob=$("$bin" keygen | sed -n 's/^secret: //p')
echo "community $community"

say "2. Three weeks of messages, one every 6 hours, on two topics"
start=$(( $(date +%s) - 21 * 86400 ))
for i in $(seq 0 83); do
  author=$alice; topic=general
  if [ $((i % 3)) -eq 0 ]; then author=$bob; topic=random; fi
  payload=$(printf 'message %d from the demo' "$i" | base64 -w0)
  printf '{"topic":"%s","timestamp":%d,"payload":"%s","author_key":"%s"}\n' \
    "$topic" $((start + i * 21600)) "$payload" "$author"
done > "$work/messages.jsonl"
"$bin" store import --data-dir "$work/node" --community "$community" "$work/messages.jsonl"

say "3. Build weekly archives (one JSON line per archive, then a summary)"
"$bin" archive build --data-dir "$work/node" --community "$community" --out "$work/archives" | tee "$work/build.jsonl"
ls -l "$work/archives"

say "4. The cumulative index"
"$bin" archive inspect "$work/archives/index.bin"

say "5. A second run: no new messages, no new archive"
"$bin" archive build --data-dir "$work/node" --community "$community" --out "$work/archives"

say "6. Archives are content-addressed blocks: the CID any IPFS node computes for the same bytes"
index_cid=$(sed -n 's/.*"index_cid":"\([^"]*\)".*/\1/p' "$work/build.jsonl")
echo "index CID (from the store):       $index_cid"
echo "index CID (add --only-hash file): $("$bin" add --only-hash "$work/archives/index.bin")"
"$bin" blocks stat --data-dir "$work/node" "$index_cid"
"$bin" car export --data-dir "$work/node" "$index_cid" -o "$work/index.car"
"$bin" cat --data-dir "$work/node" "$index_cid" | cmp - "$work/archives/index.bin" && echo "cat of the index equals index.bin"
