"""A community's history is one IPFS DAG (issue 18): the root every round announces is a UnixFS
directory of `index`, `description` and one entry per archive, so peers we did not write —
Helia 7 and kubo 0.22 — keep the whole history with one pin of one CID, and serve it on when every
community node is gone."""

import base64

import pytest

from clients import kubo
from clients.cli import Cli
from clients.node_proc import HeliaPin
from clients.dht_peer import DhtPeer, wait_resolved
from clients.signals import SignalListener
from steps.communities import all_messages, archive_now, create, send_over_seconds

ARCHIVES = "[archive]\npartition_secs = 1\n"


def _history(daemons, node_bin):
    """A control node with a few one-second archives; its round and the root `archives --root` prints."""
    control = daemons(extra_config=ARCHIVES)
    created = create(control, "kept by IPFS")
    cid = created["communityId"]
    sent = send_over_seconds(control, cid, seconds=3, per_second=2, size=2000)
    round_ = archive_now(control, cid, sent[-1]["timestamp"])
    assert round_["archives"] >= 3 and round_["rootCid"], round_
    printed = Cli(node_bin).run("archives", cid, "--root", "--data-dir", str(control.data_dir)).stdout.strip()
    assert printed == round_["rootCid"], "archives --root prints the announced root"
    latest = control.rpc.call("archive_latestAnnouncement", {"communityId": cid})
    assert (latest["cid"], latest["rootCid"], latest["indexCid"], latest["whole"]) == (
        round_["rootCid"], round_["rootCid"], round_["indexCid"], True)
    return control, cid, round_


def _expected_entries(control, cid, round_) -> dict[str, str]:
    """name -> CID the root must hold: the index, the description and every archive by id."""
    index = control.rpc.call("archive_index", {"communityId": cid})
    names = {a["id"]: a["cid"] for a in index["archives"]}
    names["index"] = round_["indexCid"]
    return names


def test_helia_pins_the_whole_history_with_one_cid(daemons, node_bin):
    control, cid, round_ = _history(daemons, node_bin)
    helia = HeliaPin(round_["rootCid"], control.addr)
    try:
        info = helia.info
        assert info["pinned"] is True
        entries = {e["name"]: e["cid"] for e in info["entries"]}
        expected = _expected_entries(control, cid, round_)
        assert {k: v for k, v in entries.items() if k != "description"} == expected
        assert "description" in entries
        stat = control.rpc.call("blocks_stat", {"cid": round_["rootCid"]})
        assert info["blocks"] == stat["blocks"], "Helia pinned every block of the history"
    finally:
        assert helia.stop() == 0


IPFS_DHT = '[network]\nkad_protocol = "/ipfs/kad/1.0.0"\nkad_mode = "server"\n'


def test_kubo_serves_the_history_a_name_on_the_dht_points_to(daemons, node_bin, tmp_path):
    """The IPFS network as storage: the community's IPNS name lives on a DHT server (Helia; kubo
    as a library runs its DHT as a client only, so it cannot hold the name) and the blocks on
    kubo, which pinned the root. With the control node gone, a new member resolves the name on
    the DHT and syncs every archive from kubo (Helia holds no block)."""
    if (reason := kubo.unavailable()) is not None:
        pytest.skip(reason)
    dht = DhtPeer()
    try:
        with kubo.Kubo(tmp_path / "kubo") as peer:
            control = daemons(extra_config=ARCHIVES + IPFS_DHT)
            created = create(control, "kept by kubo")
            cid = created["communityId"]
            dht.call("dial", addr=control.addr)
            sent = send_over_seconds(control, cid, seconds=2, per_second=2, size=1500)
            round_ = archive_now(control, cid, sent[-1]["timestamp"])
            peer.connect(control.addr)
            peer.pin(round_["rootCid"], timeout=120)
            history = all_messages(control, cid)
            stat = control.rpc.call("blocks_stat", {"cid": round_["rootCid"]})
            # The put runs after the round: wait until the DHT node holds the record.
            wait_resolved(dht, cid[2:], round_["rootCid"])
            assert control.terminate() == 0

            member = daemons(extra_config=ARCHIVES + IPFS_DHT, bootstrap=dht.addrs[0])
            member.rpc.call("node_connect", {"multiaddr": peer.addrs[0]})
            on_member = SignalListener(member.url, member.token)
            try:
                member.rpc.call("community_join", {"invite": created["invite"]})
                kept = on_member.wait_for_signal("community.ipnsRecordAccepted", lambda e: e["communityId"] == cid, timeout=120)
                assert (kept["rootCid"], kept["peerId"]) == (round_["rootCid"], dht.peer_id)
                on_member.wait_for_signal("community.downloadingHistoryArchivesFinished", lambda e: e["communityId"] == cid, timeout=120)
            finally:
                on_member.close()
            assert all_messages(member, cid) == history, "exactly the control node's messages"
            got = member.rpc.call("blocks_stat", {"cid": round_["rootCid"]})
            assert (got["complete"], got["blocks"]) == (True, stat["blocks"]), "the whole history came from kubo"
    finally:
        dht.stop()


def test_kubo_pins_the_history_and_serves_it_when_the_community_is_gone(daemons, node_bin, tmp_path):
    if (reason := kubo.unavailable()) is not None:
        pytest.skip(reason)
    control, cid, round_ = _history(daemons, node_bin)
    root = round_["rootCid"]
    expected = _expected_entries(control, cid, round_)
    with kubo.Kubo(tmp_path / "kubo") as peer:
        peer.connect(control.addr)
        peer.pin(root, timeout=120)
        assert root in peer.pins(), "kubo pinned the root"
        got = peer.get(root, tmp_path / "history", timeout=120)
        assert sorted(p.name for p in got.iterdir()) == sorted([*expected, "description"])
        for name, file_cid in expected.items():
            ours = base64.b64decode(control.rpc.call("blocks_cat", {"cid": file_cid})["data"])
            assert (got / name).read_bytes() == ours, f"{name} byte for byte"

        # Every community node stops; the history still comes whole from kubo alone.
        assert control.terminate() == 0
        out = Cli(node_bin).run("fetch", root, "--data-dir", str(tmp_path / "late"), "--peer", peer.addrs[0]).stdout
        assert out.startswith(f"fetched {root}"), out
        stat = Cli(node_bin).run("stat", root, "--data-dir", str(tmp_path / "late")).stdout
        assert '"complete":true' in stat.replace(" ", ""), stat
