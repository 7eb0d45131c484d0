"""Content addressing against Helia itself: the same bytes give the same CIDs, and CAR files move
both ways between archive-node and Helia."""

import hashlib
import json
import os

import pytest

from clients import helia
from clients.cli import Cli

MIB = 1024 * 1024


def random_file(path, size, seed):
    rng = __import__("random").Random(seed)
    path.write_bytes(rng.randbytes(size))
    return path


@pytest.mark.parametrize("size", [0, 1, MIB - 1, MIB, MIB + 1, 3 * MIB + 12345])
def test_add_gives_helias_cid(node_bin, tmp_path, size):
    f = random_file(tmp_path / "f.bin", size, size)
    ours = Cli(node_bin).run("add", "--only-hash", str(f)).stdout.strip()
    assert ours == helia.add(f)[0]


def test_custom_layouts_give_helias_cids(node_bin, tmp_path):
    f = random_file(tmp_path / "f.bin", 70_001, 7)
    for chunk, links in [(1000, 3), (4096, 2), (777, 11)]:
        ours = Cli(node_bin).run("add", "--only-hash", "--chunk-size", str(chunk), "--max-links", str(links), str(f)).stdout.strip()
        assert ours == helia.add(f, chunk_size=chunk, max_links=links)[0], (chunk, links)


def test_our_car_imports_into_helia(node_bin, tmp_path):
    cli = Cli(node_bin)
    data_dir = str(tmp_path / "node")
    f = random_file(tmp_path / "f.bin", 2 * MIB + 99, 3)
    cid = cli.run("add", "--data-dir", data_dir, str(f)).stdout.strip()
    car = tmp_path / "ours.car"
    stats = json.loads(cli.run("car", "export", "--data-dir", data_dir, cid, "-o", str(car)).stdout)
    assert stats["blocks"] == 4  # three leaves and the root
    got = helia.car_check(car)
    assert got["root"] == cid
    assert got["size"] == f.stat().st_size
    assert got["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()


def test_helias_car_imports_into_ours(node_bin, tmp_path):
    cli = Cli(node_bin)
    data_dir = str(tmp_path / "node")
    f = random_file(tmp_path / "f.bin", 5 * MIB + 3, 4)
    car = tmp_path / "helia.car"
    cid = helia.add(f, car=car)[0]
    stats = json.loads(cli.run("car", "import", "--data-dir", data_dir, str(car)).stdout)
    assert stats["roots"] == [cid]
    stat = json.loads(cli.run("blocks", "stat", "--data-dir", data_dir, cid).stdout)
    assert stat["complete"] and stat["pins"] == 1 and stat["size"] == f.stat().st_size
    out = cli.run_bytes("cat", "--data-dir", data_dir, cid)
    assert hashlib.sha256(out).hexdigest() == hashlib.sha256(f.read_bytes()).hexdigest()

    # A corrupted CAR is refused whole: nothing is stored.
    bad = bytearray(car.read_bytes())
    bad[-10] ^= 0xFF
    (tmp_path / "bad.car").write_bytes(bytes(bad))
    other = str(tmp_path / "other")
    proc = cli.run("car", "import", "--data-dir", other, str(tmp_path / "bad.car"), check=False)
    assert proc.returncode != 0 and "does not match its CID" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not any(p.stat().st_size for p in (tmp_path / "other" / "blocks").glob("*.pack"))
