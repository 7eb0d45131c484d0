"""A community's IPNS name on the IPFS DHT, against Helia 7 (@libp2p/kad-dht on /ipfs/kad/1.0.0
with @helia/ipns's validator and selector): Helia stores and resolves our records with its own
code, pins the whole history, and is then the only peer a new member needs — every community
node stopped. Forged and replayed records put by Helia are refused by our nodes."""

import json

from clients.cli import Cli
from clients.dht_peer import DhtPeer, wait_resolved
from clients.signals import SignalListener
from steps.communities import all_messages, archive_now, create, send_over_seconds

# Our nodes speak the IPFS DHT protocol and serve it (no AutoNAT on loopback).
IPFS_DHT = '[archive]\npartition_secs = 1\n[network]\nkad_protocol = "/ipfs/kad/1.0.0"\nkad_mode = "server"\n'


def _round(control, cid, seconds=2) -> dict:
    sent = send_over_seconds(control, cid, seconds=seconds, per_second=2, size=1500)
    return archive_now(control, cid, sent[-1]["timestamp"])


def test_helia_resolves_pins_and_alone_serves_the_history_and_forgeries_are_refused(daemons, node_bin):
    helia = DhtPeer()
    try:
        control = daemons(extra_config=IPFS_DHT)
        created = create(control, "named by IPNS")
        cid, invite = created["communityId"], created["invite"]
        key = cid[2:]
        helia.call("dial", addr=control.addr)
        first = _round(control, cid)
        clock1 = control.rpc.call("archive_latestAnnouncement", {"communityId": cid})["clock"]

        # Helia got the record by a DHT put, checked it with its own validator, and resolves it.
        resolved = wait_resolved(helia, key, first["rootCid"])
        assert resolved["sequence"] == str(clock1), "Sequence is the announcement's clock"
        own = control.rpc.call("archive_resolve", {"communityId": cid})
        assert (own["rootCid"], own["sequence"], own["source"]) == (first["rootCid"], clock1, "dht"), own

        second = _round(control, cid)
        latest = control.rpc.call("archive_latestAnnouncement", {"communityId": cid})
        resolved = wait_resolved(helia, key, second["rootCid"])
        assert resolved["sequence"] == str(latest["clock"])
        pinned = helia.call("pin", cid=second["rootCid"])
        assert pinned["pinned"] is True and pinned["blocks"] > 0
        history = all_messages(control, cid)
        assert len(history) == 8

        # Every community node stops. A new member knows the invite and Helia, nothing else.
        assert control.terminate() == 0
        member = daemons(extra_config=IPFS_DHT, bootstrap=helia.addrs[0])
        on_member = SignalListener(member.url, member.token)
        try:
            member.rpc.call("community_join", {"invite": invite})
            kept = on_member.wait_for_signal("community.ipnsRecordAccepted", lambda e: e["communityId"] == cid, timeout=120)
            assert (kept["rootCid"], kept["peerId"]) == (second["rootCid"], helia.peer_id)
            on_member.wait_for_signal("community.downloadingHistoryArchivesFinished", lambda e: e["communityId"] == cid, timeout=120)
        finally:
            on_member.close()
        assert all_messages(member, cid) == history, "exactly the control node's messages, from Helia alone"
        assert [p["peerId"] for p in member.rpc.call("node_peers")] == [helia.peer_id]
        assert member.rpc.call("archive_latestAnnouncement", {"communityId": cid}) is None, "no announcement, only the name"
        shown = json.loads(Cli(node_bin).run("community", "resolve", cid, "--data-dir", str(member.data_dir)).stdout)
        assert (shown["rootCid"], shown["source"], shown["peerId"]) == (second["rootCid"], "dht", helia.peer_id), shown
        assert shown["name"].startswith("/ipns/16Uiu2"), "the peer id of a secp256k1 key"

        # Hostile records put by Helia: another key's record under our name, and the older
        # (validly signed) record of the first round. Our member stores neither.
        forged = helia.call("forge", key=key, value=f"/ipfs/{first['rootCid']}", sequence=str(latest["clock"] + 1000))
        assert member.rpc.call("archive_resolve", {"communityId": cid})["sequence"] == latest["clock"]
        helia.call("put", key=key, record=forged["record"])
        helia.call("put", key=key, record=own["record"])
        after = member.rpc.call("archive_resolve", {"communityId": cid})
        assert (after["rootCid"], after["sequence"]) == (second["rootCid"], latest["clock"]), after
        # What our member serves to a peer that asks it alone is still the latest record.
        fresh = DhtPeer()
        try:
            fresh.call("dial", addr=member.addr)
            served = fresh.call("resolve", key=key)
            assert (served["value"], served["sequence"]) == (f"/ipfs/{second['rootCid']}", str(latest["clock"])), served
        finally:
            fresh.stop()
    finally:
        helia.stop()
