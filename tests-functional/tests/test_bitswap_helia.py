"""Bitswap against real Helia peers (js-libp2p over TCP, Noise, Yamux), both directions."""

import hashlib
import random

import pytest

from clients.cli import Cli
from clients.node_proc import HeliaServe, Serve, helia_fetch

MIB = 1024 * 1024
SIZES = [1, MIB + 1, 64 * MIB]


@pytest.mark.parametrize("size", SIZES)
def test_helia_fetches_from_us(node_bin, tmp_path, size):
    data = random.Random(size).randbytes(size)
    f = tmp_path / "f.bin"
    f.write_bytes(data)
    cli = Cli(node_bin)
    cid = cli.run("add", "--data-dir", str(tmp_path / "node"), str(f)).stdout.strip()
    server = Serve(node_bin, tmp_path / "node")
    try:
        got = helia_fetch(cid, server.addr)
    finally:
        assert server.stop() == 0, "serve exits cleanly on SIGINT"
    assert got["size"] == size
    assert got["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("size", SIZES)
def test_we_fetch_from_helia(node_bin, tmp_path, size):
    server = HeliaServe(size, seed=size % 1000 + 1)
    try:
        info = server.info
        out = tmp_path / "out.bin"
        cli = Cli(node_bin)
        line = cli.run("fetch", info["cid"], "--data-dir", str(tmp_path / "node"), "--peer", info["addrs"][0], "-o", str(out)).stdout
    finally:
        server.stop()
    assert line.startswith(f"fetched {info['cid']}")
    assert out.stat().st_size == size == info["size"]
    assert hashlib.sha256(out.read_bytes()).hexdigest() == info["sha256"]
