#!/usr/bin/env bash
# Helia -> Helia bitswap transfer benchmark, isolated in a private network
# namespace (only a loopback interface exists, so nothing can leave the machine).
#
#   tests-functional/js/bench-helia-transfer.sh SIZE_MIB [SEED]
#
# Starts `helia-peer.mjs serve --size SIZE_MIB*1048576 --seed SEED` (SEED
# defaults to 1), fetches the CID with `helia-peer.mjs fetch` from a second
# Helia, checks that size and sha256 match, and prints the fetch JSON line
# extended with "server_sha256_ok": true and, when /usr/bin/time exists, the
# peak RSS of both processes ("fetcher_max_rss_mib", "server_max_rss_mib").
# Exits non-zero if anything fails. Env: TIMEOUT_MS (fetch timeout, default
# 120000), SIZE_BYTES (exact byte count, overrides SIZE_MIB), DEBUG_BITSWAP=1 (bitswap wire log on stderr, see helia-peer.mjs),
# KEEP_LOGS=1 (keep the temp dir with the server's/fetcher's stderr).
set -euo pipefail

if [[ "${__HELIA_BENCH_NETNS:-}" != 1 ]]; then
  if [[ $# -lt 1 ]]; then
    echo "usage: $0 SIZE_MIB [SEED]" >&2
    exit 2
  fi
  if [[ $(id -u) -eq 0 ]]; then
    exec unshare -n env __HELIA_BENCH_NETNS=1 bash "$0" "$@"
  else
    exec unshare -rn env __HELIA_BENCH_NETNS=1 bash "$0" "$@"
  fi
fi

size_mib=$1
seed=${2:-1}
[[ $size_mib =~ ^[0-9]+$ ]] || { echo "SIZE_MIB must be a non-negative integer" >&2; exit 2; }
size=${SIZE_BYTES:-$((size_mib * 1048576))}
timeout_ms=${TIMEOUT_MS:-120000}

ip link set lo up
cd "$(dirname "$0")"

tmp=$(mktemp -d)
server_pid=
cleanup() {
  exec 3>&- 2>/dev/null || true
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
  fi
  if [[ "${KEEP_LOGS:-}" == 1 ]]; then echo "logs kept in $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

timer=()
if [[ -x /usr/bin/time ]]; then timer=(/usr/bin/time -v -o); fi

# The server's stdin is a pipe from this shell (fd 3): closing fd 3 stops it.
if [[ ${#timer[@]} -gt 0 ]]; then
  exec 3> >(exec "${timer[@]}" "$tmp/server.time" node --import ./shim.mjs helia-peer.mjs serve --size "$size" --seed "$seed" >"$tmp/server.json" 2>"$tmp/server.err")
else
  exec 3> >(exec node --import ./shim.mjs helia-peer.mjs serve --size "$size" --seed "$seed" >"$tmp/server.json" 2>"$tmp/server.err")
fi
server_pid=$!

for _ in $(seq 1200); do
  [[ -s $tmp/server.json ]] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ ! -s $tmp/server.json ]]; then
  echo "serve did not start:" >&2
  cat "$tmp/server.err" >&2
  exit 1
fi

read -r cid addr server_sha server_size < <(node -e '
  const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))
  console.log(j.cid, j.addrs[0], j.sha256, j.size)' "$tmp/server.json")

rc=0
if [[ ${#timer[@]} -gt 0 ]]; then
  "${timer[@]}" "$tmp/fetch.time" node --import ./shim.mjs helia-peer.mjs fetch "$cid" "$addr" \
    --timeout-ms "$timeout_ms" >"$tmp/fetch.json" 2> >(tee "$tmp/fetch.err" >&2) || rc=$?
else
  node --import ./shim.mjs helia-peer.mjs fetch "$cid" "$addr" \
    --timeout-ms "$timeout_ms" >"$tmp/fetch.json" 2> >(tee "$tmp/fetch.err" >&2) || rc=$?
fi

# stop the server (EOF on its stdin) and wait for it to exit
exec 3>&-
for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
if [[ "${DEBUG_BITSWAP:-}" != "" && "${DEBUG_BITSWAP:-}" != 0 ]]; then
  sed 's/^/[server] /' "$tmp/server.err" >&2
fi

if [[ $rc -ne 0 || ! -s $tmp/fetch.json ]]; then
  echo "fetch failed (rc=$rc)" >&2
  exit 1
fi

node -e '
  const fs = require("fs")
  const [fetchJson, serverSha, serverSize, fetchTime, serverTime] = process.argv.slice(1)
  const r = JSON.parse(fs.readFileSync(fetchJson, "utf8"))
  const rss = (f) => {
    if (!f || !fs.existsSync(f)) return undefined
    const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(fs.readFileSync(f, "utf8"))
    return m ? Number((Number(m[1]) / 1024).toFixed(1)) : undefined
  }
  const ok = r.sha256 === serverSha && r.size === Number(serverSize)
  const out = { ...r, server_sha256_ok: ok, fetcher_max_rss_mib: rss(fetchTime), server_max_rss_mib: rss(serverTime) }
  console.log(JSON.stringify(out))
  if (!ok) { console.error(`mismatch: served ${serverSize} bytes sha256 ${serverSha}`); process.exit(1) }
' "$tmp/fetch.json" "$server_sha" "$server_size" "$tmp/fetch.time" "$tmp/server.time"
