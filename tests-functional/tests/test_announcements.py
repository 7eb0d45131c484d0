"""Signed announcements between real daemons: forgeries, far-future clocks, malformed and
oversized envelopes rejected, never forwarded, and their sender penalised; replays ignored; late
joiners served by any peer. The attacker is a daemon with debug_publish enabled."""

import base64
import os
import time

from clients.latency import RpcLatency
from clients.signals import SignalListener


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def archive_round(control, cid, payload: bytes) -> dict:
    sent = control.rpc.call("messages_send", {"communityId": cid, "topic": "chat", "payload": b64(payload)})
    while time.time() < sent["timestamp"] + 1:  # windows are [from, to) in whole seconds
        time.sleep(0.05)
    return control.rpc.call("archive_createNow", {"communityId": cid})


def test_forged_and_replayed_announcements_and_a_late_joiner(daemons, archive_pb2):
    # The attacker's own gossip takes messages up to 4 MiB, so it can send oversized ones.
    control, relay, member = daemons(), daemons(), daemons()
    attacker = daemons(debug=True, extra_gossip="max_transmit_bytes = 4194304\n")
    created = control.rpc.call("community_create", {"name": "announcements"})
    # Rounds are driven by the test.
    control.rpc.call("archive_setEnabled", {"communityId": created["communityId"], "enabled": False})
    cid, topic = created["communityId"], f"/archive-node/1/{created['communityId']}/archives"
    for d in (relay, member, attacker):
        d.rpc.call("community_join", {"invite": created["invite"]})
    # control -- relay -- member, attacker -- relay
    relay.rpc.call("node_connect", {"multiaddr": control.addr})
    member.rpc.call("node_connect", {"multiaddr": relay.addr})
    attacker.rpc.call("node_connect", {"multiaddr": relay.addr})
    on_relay, on_member = SignalListener(relay.url, relay.token), SignalListener(member.url, member.token)
    latency = RpcLatency(relay).start()
    try:
        first = archive_round(control, cid, b"one")
        on_member.wait_for_signal("community.archiveAnnouncementAccepted", lambda e: e["cid"] == first["rootCid"])

        latest = control.rpc.call("archive_latestAnnouncement", {"communityId": cid})
        envelope = archive_pb2.SignedEnvelope()
        envelope.ParseFromString(base64.b64decode(latest["envelope"]))
        # Forged: a newer clock in the payload under the old signature (it recovers another key).
        payload = archive_pb2.ArchiveIndexCidMessage()
        payload.ParseFromString(envelope.payload)
        payload.clock += 10_000_000
        payload.cid = "bafkreiforged"
        forged = archive_pb2.SignedEnvelope(signature=envelope.signature, payload=payload.SerializeToString(), type=envelope.type)
        # A clock far in the future, which would freeze the community's announcements if taken.
        payload.clock = 2**64 - 1
        future = archive_pb2.SignedEnvelope(signature=envelope.signature, payload=payload.SerializeToString(), type=envelope.type)
        # Replay: the genuine first announcement, with an unknown field so gossip sees new bytes.
        replay = envelope.SerializeToString() + b"\x78\x01"
        malformed = b"\x0a\xff\xff\xff\x0fnot an envelope"
        # Over the 1 KiB envelope limit, and over the relay's 1 MiB gossip limit.
        oversized_envelope = archive_pb2.SignedEnvelope(signature=envelope.signature, payload=b"\x12" * 4096, type=1)
        oversized_message = os.urandom(2 * 1024 * 1024)
        for data in (forged.SerializeToString(), future.SerializeToString(), replay, malformed,
                     oversized_envelope.SerializeToString(), oversized_message):
            attacker.rpc.call("debug_publish", {"topic": topic, "data": b64(data)})
        on_relay.wait_for_signal("community.archiveAnnouncementRejected", lambda e: e["communityId"] == cid)
        # The relay penalised the attacker: its gossip score is negative (graylisted below -80).
        attacker_id = attacker.rpc.call("node_info")["peerId"]
        scores = {p["peerId"]: p["gossipScore"] for p in relay.rpc.call("node_peers")}
        assert attacker_id not in scores or scores[attacker_id] < 0, scores

        second = archive_round(control, cid, b"two")
        on_member.wait_for_signal("community.archiveAnnouncementAccepted", lambda e: e["cid"] == second["rootCid"])
        # The member may meet the attacker directly (DHT queries dial peers) and reject the forgery
        # itself; what must never happen is an honest peer forwarding it.
        rejected_from = {s["event"]["peerId"] for s in on_member.seen if s["type"] == "community.archiveAnnouncementRejected"}
        assert rejected_from <= {attacker_id}, f"forwarded by an honest peer: {rejected_from}"
        accepted = [s["event"]["cid"] for s in on_member.seen if s["type"] == "community.archiveAnnouncementAccepted"]
        assert accepted == [first["rootCid"], second["rootCid"]], "the replay was ignored"
    finally:
        latency.stop()
        on_relay.close()
        on_member.close()
    print("relay node_info latency under attack:", latency.assert_responsive(500))
    for d in (relay, member):
        assert d.rpc.call("archive_latestAnnouncement", {"communityId": cid})["clock"] < 2**63
    assert member.rpc.call("archive_latestAnnouncement", {"communityId": cid})["cid"] == second["rootCid"]

    # A late joiner connected only to the member gets the latest announcement from it.
    late = daemons()
    on_late = SignalListener(late.url, late.token)
    try:
        late.rpc.call("community_join", {"invite": created["invite"]})
        late.rpc.call("node_connect", {"multiaddr": member.addr})
        on_late.wait_for_signal("community.archiveAnnouncementAccepted", lambda e: e["cid"] == second["rootCid"])
    finally:
        on_late.close()


def test_debug_methods_are_off_by_default(daemons):
    from clients.rpc import RpcError
    import pytest
    d = daemons()
    with pytest.raises(RpcError) as e:
        d.rpc.call("debug_publish", {"topic": "t", "data": ""})
    assert e.value.code == -32601  # method not found
