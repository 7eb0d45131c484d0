"""The conventions of a long-running daemon, against real daemons: the systemd unit in contrib/
verifies, the Grafana dashboard asks only for metrics the daemon exports, `--log-format json`
writes one JSON object a line, by-position params may leave out trailing optional ones, every
method's params are listed, and `archive-node messages` prints text."""

import base64
import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest

from clients.daemon import Daemon
from steps.communities import archive_now, send

CONTRIB = pathlib.Path(__file__).resolve().parents[2] / "contrib"


def test_the_systemd_unit_verifies(node_bin, tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("no systemd-analyze")
    unit = (CONTRIB / "archive-node.service").read_text()
    assert "ExecStart=/usr/local/bin/archive-node daemon" in unit
    for needed in ("DynamicUser=yes", "StateDirectory=archive-node", "Restart=on-failure", "NoNewPrivileges=yes",
                   "ProtectSystem=strict", "--log-format json"):
        assert needed in unit, needed
    # systemd-analyze checks that ExecStart is executable: point it at the binary under test.
    (tmp_path / "archive-node.service").write_text(unit.replace("/usr/local/bin/archive-node", node_bin))
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "archive-node.service")],
                       capture_output=True, text=True, timeout=60)
    # Unknown keys are only warnings (exit 0): any line about our unit fails the test too.
    complaints = [line for line in (r.stdout + r.stderr).splitlines() if "archive-node.service" in line]
    assert r.returncode == 0 and not complaints, r.stdout + r.stderr
    # And it can fail: a misspelt key is reported.
    (tmp_path / "bad.service").write_text(unit.replace("Restart=on-failure", "Restart=on-failure\nRestrat=always")
                                          .replace("/usr/local/bin/archive-node", node_bin))
    bad = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "bad.service")], capture_output=True, text=True, timeout=60)
    assert "Restrat" in bad.stdout + bad.stderr


def test_the_grafana_dashboard_uses_only_exported_metrics(daemons):
    node = daemons()
    cid = node.cli("community", "create", "metrics").stdout.split()[1]
    exported = {line.split()[2] for line in node.metrics().splitlines() if line.startswith("# TYPE ")}
    assert f'archive_node_community_message_bytes{{community="{cid}"}}' in node.metrics()
    dashboard = json.loads((CONTRIB / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    used = {name for e in exprs for name in re.findall(r"archive_node_[a-z_]+", e)}
    assert len(used) >= 10 and used <= exported, used - exported
    for name in exported:  # Prometheus naming: a prefix, and counters end in _total.
        assert name.startswith("archive_node_"), name
    for line in node.metrics().splitlines():
        if line.startswith("# TYPE ") and line.endswith(" counter"):
            assert line.split()[2].endswith("_total"), line


def test_json_logs_are_one_object_a_line(node_bin, tmp_path):
    d = Daemon(node_bin, tmp_path / "d", extra=["--log-format", "json"], env={**os.environ, "RUST_LOG": "info"})
    try:
        d.cli("token", "rotate")  # logs "RPC token rotated" at info
    finally:
        d.terminate()
    lines = [line for line in d.stderr_path.read_text().splitlines() if line.strip()]
    assert lines, "the daemon logged nothing"
    records = [json.loads(line) for line in lines]  # every line is JSON
    assert all({"timestamp", "level"} <= r.keys() for r in records), records[:3]
    assert any(r.get("message", "").startswith("RPC token rotated") for r in records), records


def test_params_by_position_may_leave_out_trailing_optional_ones(daemons, tmp_path):
    node, peer = daemons(), daemons()
    methods = node.rpc.call("rpc_methods")
    by_name = {m["name"]: m for m in methods}
    assert [(p["name"], p["optional"]) for p in by_name["blocks_add"]["params"]] == [
        ("data", False), ("chunkSize", True), ("maxLinks", True)]
    cid = node.rpc.call("community_create", ["positional"])["communityId"]
    (tmp_path / "f").write_bytes(b"a file")
    calls = {  # every method with optional params, called with its required ones only, by position
        "node_setBandwidthLimits": [0],
        "blocks_add": [base64.b64encode(b"positional").decode()],
        "blocks_addPath": [str(tmp_path / "f")],
        "community_create": ["positional two"],
        "community_invite": [cid],
        "messages_query": [cid],
    }
    added = node.rpc.call("blocks_add", calls["blocks_add"])
    calls["blocks_fetch"] = [added["cid"]]  # from the connected peer
    with_optional = sorted(m["name"] for m in methods if any(p["optional"] for p in m["params"]))
    assert with_optional == sorted(calls), "each such method is called here"
    peer.rpc.call("node_connect", [node.addr])
    assert peer.rpc.call("blocks_fetch", calls.pop("blocks_fetch"))["root"] == added["cid"]
    for method, params in calls.items():
        node.rpc.call(method, params)
    assert node.rpc.call("blocks_add", [base64.b64encode(b"x" * 10).decode(), 4])["blocks"] > 1  # chunkSize 4
    listed = node.cli("rpc", "--list").stdout
    assert "blocks_add(data, chunkSize?, maxLinks?)" in listed and "rpc_methods()" in listed
    assert json.loads(node.cli("rpc", "blocks_stat", json.dumps([added["cid"]])).stdout)["complete"] is True
    bad = node.cli("rpc", "blocks_add", "[1, 2, 3, 4]", check=False)
    assert bad.returncode != 0 and "at most 3" in bad.stderr


def test_messages_shows_author_time_and_text(daemons):
    node = daemons()
    cid = node.cli("community", "create", "texts").stdout.split()[1]
    author = node.rpc.call("node_info")["authorKey"]
    send(node, cid, "héllo\x1b[2J".encode())
    send(node, cid, b"\xff\xfe binary")
    lines = node.cli("messages", cid).stdout.splitlines()
    assert len(lines) == 2
    assert any(line.endswith("héllo\\u{1b}[2J") and f" {author} " in line for line in lines), lines
    assert any(line.endswith("<9 bytes, not UTF-8>") for line in lines), lines
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", lines[0]), lines[0]
    raw = [json.loads(line) for line in node.cli("messages", cid, "--raw").stdout.splitlines()]
    assert {m["author"] for m in raw} == {author} and all("payload" in m and "sig" in m for m in raw)
    r = archive_now(node, cid, raw[-1]["timestamp"])
    assert r["messages"] == 2
