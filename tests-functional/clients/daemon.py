"""A real `archive-node daemon` process on 127.0.0.1 with an ephemeral RPC port."""

import pathlib
import signal
import subprocess

from clients.node_proc import LOGS, Proc
from clients.rpc import RpcClient


class NamespacedRpc:
    """An RpcClient whose calls run inside a network namespace (where the daemon's 127.0.0.1 is)."""

    def __init__(self, netns, url: str, token: str):
        self.netns = netns
        self.inner = RpcClient(url, token)

    def call(self, method: str, params=None, timeout=120):
        return self.netns.call(self.inner.call, method, params, timeout=timeout)


class Daemon(Proc):
    """`extra`: more flags (without `--listen`, the daemon listens on an ephemeral loopback
    port, not its public default). `netns`: a `clients.netns.Namespace` to run in."""

    def __init__(self, binary: str, data_dir: pathlib.Path, extra=(), netns=None, env=None):
        self.binary = binary
        self.data_dir = pathlib.Path(data_dir)
        self.netns = netns
        listen = () if "--listen" in extra else ("--listen", "/ip4/127.0.0.1/tcp/0")
        args = [binary, "daemon", "--data-dir", str(self.data_dir), "--rpc-port", "0", *listen, *extra]
        super().__init__((["ip", "netns", "exec", netns.name] if netns else []) + args, "daemon", env=env)
        # The daemon prints its RPC URL, then one line per listen address, once it serves.
        first = self.first_line()
        assert first.startswith("rpc "), first
        self.url = first.split(" ", 1)[1]
        self.addrs = [self.first_line().split(" ", 1)[1]]
        self.token = (self.data_dir / "rpc.token").read_text().strip()
        self.rpc = RpcClient(self.url, self.token) if netns is None else NamespacedRpc(netns, self.url, self.token)

    @property
    def addr(self) -> str:
        return self.addrs[0]

    def cli(self, *args, check=True, **kw) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.binary, *args, "--data-dir", str(self.data_dir)], capture_output=True, text=True, timeout=300, **kw)
        if check and proc.returncode != 0:
            raise AssertionError(f"archive-node {' '.join(args)} failed: {proc.stderr}")
        return proc

    def metrics(self) -> str:
        """The Prometheus text of `/metrics`."""
        import requests

        r = requests.get(self.url + "/metrics", headers={"authorization": f"Bearer {self.token}"}, timeout=10)
        r.raise_for_status()
        return r.text

    def refused(self, reason: str) -> int:
        """`archive_node_messages_refused_total{reason=...}` (0 when absent)."""
        for line in self.metrics().splitlines():
            if line.startswith(f'archive_node_messages_refused_total{{reason="{reason}"}}'):
                return int(line.rsplit(" ", 1)[1])
        return 0

    def terminate(self) -> int:
        return self.stop(signal.SIGTERM)
