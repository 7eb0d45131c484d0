#!/usr/bin/env bash
# Runs the pytest suite of tests-functional/ against the debug binary and the hostile peer of
# node/examples/: creates the venv and installs the Python requirements (and the npm packages of
# the Helia peers) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

cargo build --locked -p archive-node --bin archive-node --example hostile_peer
export ARCHIVE_NODE_BIN="$root/target/debug/archive-node"
export HOSTILE_PEER_BIN="$root/target/debug/examples/hostile_peer"

source scripts/venv.sh

# The NAT tests (tests/test_nat.py) build home routers with nftables: install it when missing.
if ! command -v nft >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q nftables >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q nftables >/dev/null 2>&1; } \
    || echo "note: cannot install nftables: the NAT tests will be skipped" >&2
fi

# The UPnP test runs a real Internet gateway device (miniupnpd, nftables backend) on a home router.
if ! command -v miniupnpd >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q miniupnpd-nftables >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q miniupnpd-nftables >/dev/null 2>&1; } \
    || echo "note: cannot install miniupnpd: the UPnP test will be skipped" >&2
fi

# The dashboard test (tests/test_ui.py) drives Debian's headless Chromium through ChromeDriver.
if ! { command -v chromium >/dev/null && command -v chromedriver >/dev/null; } && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; } \
    || echo "note: cannot install chromium: the dashboard test will be skipped" >&2
fi

cd tests-functional
# Real peers (Helia, our daemons) talk on loopback only; inside a private network namespace
# nothing can leave the machine even by mistake. A private mount namespace lets the disk tests
# mount a read-only bind and a small tmpfs. Needs root (CI and the dev machines are).
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && unshare -n -m true 2>/dev/null; then
  exec unshare -n -m bash -c 'ip link set lo up && ARCHIVE_NODE_PRIVATE_MOUNTS=1 exec .venv/bin/python -m pytest -q "$@"' pytest "$@"
fi
echo "note: not root or no unshare: running on the host network (tests still use 127.0.0.1 only)" >&2
exec .venv/bin/python -m pytest -q "$@"
