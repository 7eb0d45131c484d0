"""Runs the Helia scripts of tests-functional/js (offline, in-memory Helia)."""

import json
import pathlib
import subprocess

JS = pathlib.Path(__file__).resolve().parent.parent / "js"


def _node(script: str, *args: str) -> str:
    proc = subprocess.run(["node", "--import", "./shim.mjs", script, *args], cwd=JS, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f"{script} failed: {proc.stderr}")
    return proc.stdout


def add(*files, chunk_size=None, max_links=None, car=None) -> list[str]:
    """CIDs Helia's @helia/unixfs addBytes (unixfs-v1-2025) gives the files."""
    args = []
    if chunk_size is not None:
        args += ["--chunk-size", str(chunk_size)]
    if max_links is not None:
        args += ["--max-links", str(max_links)]
    if car is not None:
        args += ["--car", str(car)]
    out = _node("helia-add.mjs", *args, *[str(f) for f in files])
    return [json.loads(line)["cid"] for line in out.splitlines()]


def car_check(car_file) -> dict:
    """Imports a CAR into Helia and reads its root file back: {root, size, sha256, blocks}."""
    return json.loads(_node("car-import-check.mjs", str(car_file)))
