"""Disk faults (issue 9, part 4): a read-only data dir and a full disk give a clear error on the
RPC (or at start) and in the log, and nothing stored before is damaged. The faults are real: a
read-only bind mount and a small tmpfs, in the private mount namespace scripts/functional.sh
runs the tests in (as root)."""

import base64
import hashlib
import os
import pathlib
import subprocess

import pytest

from clients.rpc import RpcError
from steps.communities import all_messages, create, send

pytestmark = pytest.mark.skipif(
    os.environ.get("ARCHIVE_NODE_PRIVATE_MOUNTS") != "1",
    reason="needs root in a private mount namespace (scripts/functional.sh provides one)",
)


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def snapshot(root: pathlib.Path) -> dict:
    """Every file under `root` and the sha256 of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def stored(node, cid: str) -> tuple:
    """What a node holds: its messages of the community and its communities."""
    messages = all_messages(node, cid)
    return messages, node.rpc.call("community_list")


def populate(d, name: str, size: int):
    """A community with five messages and a file of `size` bytes: (community, root, data, stored)."""
    cid = create(d, name)["communityId"]
    for i in range(5):
        send(d, cid, b"before %d" % i)
    data = os.urandom(size)
    root = d.rpc.call("blocks_add", {"data": base64.b64encode(data).decode()})["cid"]
    return cid, root, data, stored(d, cid)


def test_a_read_only_data_dir_is_a_clear_error_and_damages_nothing(daemons, node_bin):
    d = daemons()
    cid, root, data, before = populate(d, "read-only", 300_000)
    d.terminate()
    files = snapshot(d.data_dir)

    mount("--bind", str(d.data_dir), str(d.data_dir))
    try:
        mount("-o", "remount,bind,ro", str(d.data_dir))
        proc = subprocess.run([node_bin, "daemon", "--data-dir", str(d.data_dir), "--rpc-port", "0", "--listen", "/ip4/127.0.0.1/tcp/0"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0
        err = proc.stderr.strip().splitlines()
        assert any("Read-only file system" in line and str(d.data_dir) in line for line in err), proc.stderr
    finally:
        subprocess.run(["umount", str(d.data_dir)], check=True)
    assert snapshot(d.data_dir) == files, "nothing in the data dir changed"
    again = daemons(d.data_dir)
    assert stored(again, cid) == before
    assert base64.b64decode(again.rpc.call("blocks_cat", {"cid": root})["data"]) == data
    print("read-only start:", err[-1])


def test_a_full_disk_is_a_clear_rpc_error_and_damages_nothing(daemons, tmp_path):
    disk = tmp_path / "small-disk"
    disk.mkdir()
    mount("-t", "tmpfs", "-o", "size=48m", "tmpfs", str(disk))
    try:
        d = daemons(disk / "node")
        cid, root, data, before = populate(d, "full disk", 1_000_000)
        # Fill what is left.
        filler = disk / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M"], capture_output=True)
        errors = []
        for attempt in range(3):
            try:
                d.rpc.call("blocks_add", {"data": base64.b64encode(os.urandom(4_000_000)).decode()})
            except RpcError as e:
                errors.append(e)
        assert errors, "writes on a full disk must fail"
        assert all(e.code == -32000 and "No space left on device" in e.message for e in errors), errors
        # Small writes may still fit in the database's preallocated space: each message is
        # either acknowledged (and then kept) or refused with a clear error.
        acknowledged, refused = [], []
        for i in range(20):
            try:
                acknowledged.append(send(d, cid, b"on a full disk %d" % i)["hash"])
            except RpcError as e:
                assert e.code == -32000 and e.message, e
                refused.append(e.message)
        # The node still answers, and reads what it stored before.
        assert {m["hash"] for m in before[0]} <= {m["hash"] for m in stored(d, cid)[0]}
        assert base64.b64decode(d.rpc.call("blocks_cat", {"cid": root})["data"]) == data
        filler.unlink()
        d.terminate()
        log = d.stderr_path.read_text()
        assert "No space left on device" in log
        again = daemons(disk / "node")
        messages, communities = stored(again, cid)
        assert communities == before[1]
        hashes = {m["hash"] for m in messages}
        assert {m["hash"] for m in before[0]} <= hashes, "nothing stored before is lost"
        assert set(acknowledged) <= hashes, "every acknowledged message is kept"
        assert base64.b64decode(again.rpc.call("blocks_cat", {"cid": root})["data"]) == data
        # With room again, writes work again.
        again.rpc.call("blocks_add", {"data": base64.b64encode(os.urandom(100_000)).decode()})
        again.terminate()
        print("full disk:", errors[0].message, f"| messages: {len(acknowledged)} acknowledged, {len(refused)} refused", refused[:1])
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)
