#!/usr/bin/env bash
# Runs the pytest suite of tests-functional/ against the debug binary: creates the venv and
# installs the Python requirements (and the npm packages of the Helia peers) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

cargo build --locked -p archive-node --bin archive-node
export ARCHIVE_NODE_BIN="$root/target/debug/archive-node"

venv=tests-functional/.venv
req=tests-functional/requirements.txt
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/.requirements"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$venv/.requirements"
fi

js=tests-functional/js
if [ -f "$js/package-lock.json" ] && { [ ! -d "$js/node_modules" ] || [ "$js/package-lock.json" -nt "$js/node_modules/.package-lock.json" ]; }; then
  (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
fi

cd tests-functional
# Real peers (Helia, our daemons) talk on loopback only; inside a private network namespace
# nothing can leave the machine even by mistake. Needs root (CI and the dev machines are).
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && unshare -n true 2>/dev/null; then
  exec unshare -n bash -c 'ip link set lo up && exec .venv/bin/python -m pytest -q "$@"' pytest "$@"
fi
echo "note: not root or no unshare: running on the host network (tests still use 127.0.0.1 only)" >&2
exec .venv/bin/python -m pytest -q "$@"
