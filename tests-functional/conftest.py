"""Fixtures shared by the functional tests: the archive-node binary, temp dirs, protobuf modules."""

import importlib
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))


@pytest.fixture(autouse=True)
def _processes_of_this_test():
    """Forgets the processes of earlier tests (their logs are for their own failures)."""
    from clients.node_proc import STARTED

    STARTED.clear()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test shows the tail of the log of every process it started."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    from clients.node_proc import STARTED

    for p in STARTED:
        report.sections.append((f"log tail of {p.name} ({p.stderr_path.name})", p.log_tail()))


@pytest.fixture(scope="session")
def node_bin() -> str:
    """Path of the archive-node binary (built by scripts/functional.sh)."""
    path = os.environ.get("ARCHIVE_NODE_BIN", str(ROOT / "target" / "debug" / "archive-node"))
    if not os.path.exists(path):
        subprocess.run(["cargo", "build", "--locked", "-p", "archive-node", "--bin", "archive-node"], cwd=ROOT, check=True)
    return path


@pytest.fixture(scope="session")
def archive_pb2(tmp_path_factory):
    """Python protobuf classes for proto/archive.proto, compiled with grpc_tools' protoc."""
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("pb")
    proto_dir = ROOT / "proto" / "proto"
    rc = protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={out}", str(proto_dir / "archive.proto")])
    assert rc == 0, "protoc failed"
    sys.path.insert(0, str(out))
    return importlib.import_module("archive_pb2")


@pytest.fixture(scope="session")
def hostile_bin() -> str:
    """Path of the hostile Bitswap peer (node/examples/hostile_peer.rs, built by scripts/functional.sh)."""
    path = os.environ.get("HOSTILE_PEER_BIN", str(ROOT / "target" / "debug" / "examples" / "hostile_peer"))
    if not os.path.exists(path):
        subprocess.run(["cargo", "build", "--locked", "-p", "archive-node", "--example", "hostile_peer"], cwd=ROOT, check=True)
    return path


@pytest.fixture
def hostile_peer(hostile_bin):
    """Starts hostile peers on demand (`hostile_peer("serve", "--mode", "silent")`), killed at the end."""
    from clients.hostile import HostilePeer

    started = []

    def start(*args):
        h = HostilePeer(hostile_bin, *args)
        started.append(h)
        return h

    yield start
    for h in started:
        h.stop()


@pytest.fixture
def gossip_peer():
    """Starts js-libp2p gossip peers (js/gossip-peer.mjs) on demand, stopped at the end."""
    from clients.gossip_peer import GossipPeer

    started = []

    def start(*args, **kw):
        g = GossipPeer(*args, **kw)
        started.append(g)
        return g

    yield start
    for g in started:
        g.stop()


@pytest.fixture
def daemons(node_bin, tmp_path):
    """Starts daemons on demand (`daemons()` -> Daemon) and stops them all at the end."""
    from clients.daemon import Daemon

    started = []
    # Fast gossip for tests (the defaults suit long-running nodes).
    gossip = "[gossip]\nheartbeat_ms = 200\nmesh_n = 2\nmesh_n_low = 1\nmesh_n_high = 4\nmesh_outbound_min = 0\n"
    config = tmp_path / "fast.toml"
    config.write_text(gossip)

    def start(data_dir=None, debug=False, extra_config="", extra_gossip="", netns=None, listen=None, bootstrap=None):
        """`extra_gossip`: more `[gossip]` keys; `extra_config`: more sections; `netns`: run in
        that namespace (clients/netns.py), listening on `listen`, dialing `bootstrap` at start."""
        cfg = config
        if debug or extra_config or extra_gossip:
            cfg = tmp_path / f"config{len(started)}.toml"
            cfg.write_text(gossip + extra_gossip + ("[rpc]\ndebug_methods = true\n" if debug else "") + extra_config)
        extra = ["--config", str(cfg)]
        extra += ["--listen", listen] if listen else []
        extra += ["--bootstrap", bootstrap] if bootstrap else []
        d = Daemon(node_bin, data_dir or tmp_path / f"node{len(started)}", extra=extra, netns=netns)
        started.append(d)
        return d

    yield start
    for d in started:
        d.terminate()
