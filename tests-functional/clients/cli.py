"""Runs the archive-node command line and parses its output."""

import json
import subprocess


class Cli:
    def __init__(self, binary: str, data_dir: str | None = None):
        self.binary = binary
        self.data_dir = data_dir

    def run(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.binary, *args], capture_output=True, text=True, input=stdin, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"archive-node {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    def run_bytes(self, *args: str) -> bytes:
        proc = subprocess.run([self.binary, *args], capture_output=True, timeout=120)
        if proc.returncode != 0:
            raise AssertionError(f"archive-node {' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode()}")
        return proc.stdout

    def keygen(self) -> tuple[str, str]:
        lines = dict(line.split(": ", 1) for line in self.run("keygen").stdout.splitlines())
        return lines["secret"], lines["public"]

    def store_import(self, community: str, path: str) -> str:
        return self.run("store", "import", "--data-dir", self.data_dir, "--community", community, path).stdout.strip()

    def archive_build(self, community: str, out: str, *extra: str) -> list[dict]:
        proc = self.run("archive", "build", "--data-dir", self.data_dir, "--community", community, "--out", out, *extra)
        return [json.loads(line) for line in proc.stdout.splitlines()]
