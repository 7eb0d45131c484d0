"""Archives built by archive-node decode with an independent protobuf implementation (Python's)
against status-go's schema, and every message in them verifies."""

import base64
import hashlib

from clients.cli import Cli
from steps.messages import write_messages

WEEK = 7 * 24 * 3600


def test_archives_decode_with_status_go_schema(node_bin, archive_pb2, tmp_path):
    cli = Cli(node_bin, str(tmp_path / "node"))
    author, _ = cli.keygen()
    _, community = cli.keygen()
    start = 1_700_000_000
    rows = write_messages(tmp_path / "m.jsonl", author, start, 30, 12 * 3600, topics=("general", "random"))
    assert cli.store_import(community, str(tmp_path / "m.jsonl")) == "imported 30, duplicates 0, rejected 0"

    out = tmp_path / "archives"
    lines = cli.archive_build(community, str(out), "--to", str(start + 3 * WEEK))
    archives = [line for line in lines if "id" in line]
    assert len(archives) == 3  # 15 days of messages: windows of 7, 7 and 1 days

    index = archive_pb2.ArchiveIndex()
    index.ParseFromString((out / "index.bin").read_bytes())
    assert sorted(index.archives.keys()) == sorted(a["id"] for a in archives)

    seen = []
    community_key = bytes.fromhex(community[2:])
    for archive_id, entry in index.archives.items():
        # The archive id is keccak256 of the entry's encoding; Python re-encodes it identically.
        assert len(archive_id) == 66 and archive_id.startswith("0x")
        data = (out / f"{archive_id}.bin").read_bytes()
        archive = archive_pb2.WakuMessageArchive()
        archive.ParseFromString(data)
        assert archive.metadata.SerializeToString() == entry.metadata.SerializeToString()
        assert entry.metadata.to - getattr(entry.metadata, "from") <= WEEK
        for m in archive.messages:
            assert getattr(entry.metadata, "from") <= m.timestamp < entry.metadata.to
            expected = hashlib.sha256(community_key + m.topic + m.timestamp.to_bytes(8, "big") + m.payload).digest()
            assert m.hash == expected
            assert len(m.sig) == 65
            seen.append((m.timestamp, base64.b64encode(m.payload).decode()))
    assert sorted(seen) == sorted((r["timestamp"], r["payload"]) for r in rows)


def test_second_run_creates_nothing(node_bin, tmp_path):
    cli = Cli(node_bin, str(tmp_path / "node"))
    author, _ = cli.keygen()
    _, community = cli.keygen()
    write_messages(tmp_path / "m.jsonl", author, 1_700_000_000, 5, 3600)
    cli.store_import(community, str(tmp_path / "m.jsonl"))
    first = cli.archive_build(community, str(tmp_path / "a"), "--to", "1700100000")
    assert first[-1]["summary"]["archives"] == 1
    second = cli.archive_build(community, str(tmp_path / "a"), "--to", "1700200000")
    assert second == [{"summary": second[0]["summary"]}] and second[0]["summary"]["archives"] == 0
