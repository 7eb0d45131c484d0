"""The daemon and its JSON-RPC API, driven like status-go's tests-functional drive status-backend."""

import base64
import os
import random
import signal
import subprocess
import threading

import pytest

from clients.daemon import Daemon
from clients.rpc import RpcClient, RpcError
from clients.signals import SignalListener

MIB = 1024 * 1024


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_restart_keeps_data_and_sigterm_is_clean(daemons, tmp_path):
    a = daemons()
    data = random.Random(1).randbytes(3 * MIB + 1)
    cid = a.rpc.call("blocks_add", {"data": b64(data)})["cid"]
    assert a.terminate() == 0
    assert not (a.data_dir / "rpc.port").exists(), "rpc.port removed on clean shutdown"

    again = daemons(a.data_dir)
    stat = again.rpc.call("blocks_stat", {"cid": cid})
    assert stat["complete"] and stat["pins"] == 1 and stat["size"] == len(data)
    assert base64.b64decode(again.rpc.call("blocks_cat", [cid])["data"]) == data, "positional params work too"


def test_peer_id_persists_across_restarts(daemons):
    a = daemons()
    peer = a.rpc.call("node_info")["peerId"]
    a.terminate()
    assert daemons(a.data_dir).rpc.call("node_info")["peerId"] == peer


def test_a_second_instance_on_the_same_data_dir_is_refused(daemons, node_bin):
    a = daemons()
    proc = subprocess.run([node_bin, "daemon", "--data-dir", str(a.data_dir), "--rpc-port", "0", "--listen", "/ip4/127.0.0.1/tcp/0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "another archive-node already runs on data dir" in proc.stderr
    assert a.rpc.call("node_info")["version"], "the first one still serves"


def test_token_auth(daemons):
    a = daemons()
    body = {"jsonrpc": "2.0", "id": 1, "method": "node_info"}
    for token in (None, "wrong", a.token + "x"):
        r = a.rpc.post(body, token=token)
        assert r.status_code == 401, token
        assert "peerId" not in r.text
    assert a.rpc.post(body).status_code == 200
    # /health needs no token; /metrics does.
    import requests
    assert requests.get(a.url + "/health", timeout=10).status_code == 200
    assert requests.get(a.url + "/metrics", timeout=10).status_code == 401
    m = requests.get(a.url + "/metrics", headers={"authorization": f"Bearer {a.token}"}, timeout=10)
    assert m.status_code == 200 and "archive_node_block_store_bytes" in m.text


@pytest.mark.parametrize(
    "method,params,field",
    [
        ("blocks_stat", {"cid": "not-a-cid"}, "cid"),
        ("blocks_stat", {}, "cid"),
        ("blocks_add", {"data": "!!!"}, "data"),
        ("node_connect", {"multiaddr": "/nope"}, "multiaddr"),
        ("blocks_fetch", {"cid": "bafkqaaa", "peers": ["garbage"]}, "peers"),
        ("blocks_add", {"data": "", "chunkSize": 0}, "chunk size"),
    ],
)
def test_bad_params_get_32602_naming_the_field(daemons, method, params, field):
    a = daemons()
    with pytest.raises(RpcError) as e:
        a.rpc.call(method, params)
    assert e.value.code == -32602
    assert field in e.value.message


def test_signals_stream_peer_and_fetch_events(daemons):
    a, b = daemons(), daemons()
    listener = SignalListener(b.url, b.token)
    try:
        a_peer = a.rpc.call("node_info")["peerId"]
        assert b.rpc.call("node_connect", {"multiaddr": a.addr})["peerId"] == a_peer
        listener.wait_for_signal("node.peerConnected", lambda e: e["peerId"] == a_peer)

        data = random.Random(2).randbytes(2 * MIB + 7)
        cid = a.rpc.call("blocks_add", {"data": b64(data)})["cid"]
        stats = b.rpc.call("blocks_fetch", {"cid": cid, "peers": [a.addr]})
        assert stats["blocksFetched"] == 4
        done = listener.wait_for_signal("blocks.fetchCompleted", lambda e: e["cid"] == cid)
        assert done["stats"]["bytesFetched"] >= len(data)
        listener.wait_for_signal("blocks.fetchStarted", lambda e: e["cid"] == cid)
    finally:
        listener.close()


def test_two_daemons_fetch_from_each_other_through_the_cli(daemons, tmp_path):
    a, b = daemons(), daemons()
    for src, dst, seed in ((a, b, 3), (b, a, 4)):
        f = tmp_path / f"in{seed}.bin"
        f.write_bytes(random.Random(seed).randbytes(5 * MIB + seed))
        cid = src.cli("add", str(f)).stdout.strip()
        served = src.rpc.call("node_info")["served"]["bytes"]
        out = tmp_path / f"out{seed}.bin"
        line = dst.cli("fetch", cid, "--peer", src.addr, "-o", str(out)).stdout
        assert line.startswith(f"fetched {cid}") and "by the daemon" in line
        assert out.read_bytes() == f.read_bytes()
        # The server counts what it uploaded: every leaf byte at least (the root node too).
        assert src.rpc.call("node_info")["served"]["bytes"] - served >= f.stat().st_size


def test_commands_that_need_a_daemon_exit_2_without_one(node_bin, tmp_path):
    for cmd in ("info", "peers", "signals"):
        proc = subprocess.run([node_bin, cmd, "--data-dir", str(tmp_path / "none")], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2, cmd
        assert proc.stderr.count("\n") == 1 and "no archive-node daemon runs" in proc.stderr


def test_sigterm_during_a_fetch_leaves_a_store_that_resumes(daemons, tmp_path):
    a, b = daemons(), daemons()
    f = tmp_path / "big.bin"
    f.write_bytes(os.urandom(384 * MIB))
    cid = a.rpc.call("blocks_addPath", {"path": str(f)})["cid"]
    listener = SignalListener(b.url, b.token)
    errors = []
    fetch = threading.Thread(target=lambda: errors.append(_try(lambda: b.rpc.call("blocks_fetch", {"cid": cid, "peers": [a.addr]}, timeout=600))))
    fetch.start()
    listener.wait_for_signal("blocks.fetchProgress", lambda e: e["cid"] == cid and e["bytes"] > 0)
    assert b.stop(signal.SIGTERM) == 0
    fetch.join(60)
    listener.close()

    b2 = daemons(b.data_dir)
    partial = b2.rpc.call("blocks_stat", {"cid": cid})
    assert not partial["complete"], "the fetch was interrupted"
    stats = b2.rpc.call("blocks_fetch", {"cid": cid, "peers": [a.addr]}, timeout=600)
    assert stats["blocksLocal"] > 0, "blocks stored before the stop are not fetched again"
    assert stats["blocksLocal"] + stats["blocksFetched"] == 384 + 1
    done = b2.rpc.call("blocks_stat", {"cid": cid})
    assert done["complete"] and done["size"] == 384 * MIB


def _try(f):
    try:
        f()
        return None
    except Exception as e:  # the daemon going away mid-call is expected here
        return e


def _closed(listener: SignalListener, timeout: float = 10) -> bool:
    """True once the daemon closed the listener's WebSocket (its reader thread ends)."""
    listener.thread.join(timeout)
    return not listener.thread.is_alive()


def test_token_rotation_ends_every_session_of_the_old_token(daemons):
    a = daemons()
    body = {"jsonrpc": "2.0", "id": 1, "method": "node_info"}
    old = a.token
    listener = SignalListener(a.url, old)
    # Through the CLI: the daemon writes the new token and closes the old sessions.
    out = a.cli("token", "rotate").stdout
    assert "new RPC token written to" in out and old not in out
    new = (a.data_dir / "rpc.token").read_text().strip()
    assert new != old and len(new) == 64
    assert oct((a.data_dir / "rpc.token").stat().st_mode & 0o777) == "0o600"
    assert a.rpc.post(body, token=old).status_code == 401
    assert _closed(listener), "the WebSocket made with the old token is closed"
    assert RpcClient(a.url, new).call("node_info")["peerId"]

    # Through the RPC method, from a session of the current token.
    listener = SignalListener(a.url, new)
    reply = RpcClient(a.url, new).call("node_rotateToken")
    assert reply["tokenFile"].endswith("rpc.token")
    newer = (a.data_dir / "rpc.token").read_text().strip()
    assert newer != new
    assert _closed(listener)
    assert a.rpc.post(body, token=new).status_code == 401
    SignalListener(a.url, newer).close()  # subscribing with the new token works


def test_token_rotate_without_a_daemon_rewrites_the_file(node_bin, tmp_path):
    (tmp_path / "rpc.token").write_text("a" * 64)
    proc = subprocess.run([node_bin, "token", "rotate", "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "no daemon runs" in proc.stdout
    token = (tmp_path / "rpc.token").read_text().strip()
    assert token != "a" * 64 and len(token) == 64
