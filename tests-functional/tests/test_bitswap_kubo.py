"""Bitswap against a real kubo 0.22 peer (go-libp2p 0.29, boxo 0.11 bitswap; TCP, Noise, Yamux),
both directions. kubo comes from the PyPI package kubo-python (clients/kubo.py), runs on
127.0.0.1 only with no bootstrap peers, and has an RSA peer key (its repo init's default)."""

import random

import pytest

from clients import kubo
from clients.cli import Cli
from clients.node_proc import Serve

if (reason := kubo.unavailable()) is not None:
    pytest.skip(reason, allow_module_level=True)

MIB = 1024 * 1024
SIZES = [1, MIB + 1, 4 * MIB + 3]


@pytest.mark.parametrize("size", SIZES)
def test_kubo_fetches_from_us(node_bin, tmp_path, size):
    data = random.Random(size).randbytes(size)
    f = tmp_path / "f.bin"
    f.write_bytes(data)
    cid = Cli(node_bin).run("add", "--data-dir", str(tmp_path / "node"), str(f)).stdout.strip()
    server = Serve(node_bin, tmp_path / "node")
    try:
        with kubo.Kubo(tmp_path / "kubo") as peer:
            peer.connect(server.addr)
            got = peer.cat(cid, timeout=60)
    finally:
        assert server.stop() == 0, f"serve exits cleanly on SIGINT; log: {server.stderr_path}"
    assert len(got) == size
    assert got == data


@pytest.mark.parametrize("size", SIZES)
def test_we_fetch_from_kubo(node_bin, tmp_path, size):
    data = random.Random(size + 1).randbytes(size)
    f = tmp_path / "f.bin"
    f.write_bytes(data)
    out = tmp_path / "out.bin"
    with kubo.Kubo(tmp_path / "kubo") as peer:
        cid = peer.add(f)
        assert cid.startswith("Qm"), f"kubo's default add gives CIDv0, got {cid}"
        line = Cli(node_bin).run("fetch", cid, "--data-dir", str(tmp_path / "node"), "--peer", peer.addrs[0], "-o", str(out)).stdout
    assert line.startswith(f"fetched {cid}"), line
    assert out.stat().st_size == size
    assert out.read_bytes() == data
