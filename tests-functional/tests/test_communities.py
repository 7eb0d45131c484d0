"""Communities and message gossip between real daemons."""

import base64

import pytest

from clients.rpc import RpcError
from clients.signals import SignalListener


def test_a_members_message_is_stored_by_the_control_node(daemons):
    control, member = daemons(), daemons()
    created = control.rpc.call("community_create", {"name": "general"})
    cid = created["communityId"]
    joined = member.rpc.call("community_join", {"invite": created["invite"]})
    assert joined["communityId"] == cid and joined["control"] is False
    assert control.rpc.call("community_list")[0]["control"] is True

    listener = SignalListener(control.url, control.token)
    try:
        member.rpc.call("node_connect", {"multiaddr": control.addr})
        payload = b"hello from a member \x00\xff"
        sent = member.rpc.call("messages_send", {"communityId": cid, "topic": "chat", "payload": base64.b64encode(payload).decode()})
        listener.wait_for_signal("messages.new", lambda e: e["hash"] == sent["hash"] and e["received"])
    finally:
        listener.close()
    got = control.rpc.call("messages_query", {"communityId": cid})["messages"]
    assert [m["hash"] for m in got] == [sent["hash"]]
    assert base64.b64decode(got[0]["payload"]) == payload
    assert got[0]["timestamp"] == sent["timestamp"]


def test_community_params_are_checked(daemons):
    a = daemons()
    with pytest.raises(RpcError) as e:
        a.rpc.call("community_join", {"invite": "not an invite"})
    assert e.value.code == -32602 and "invite" in e.value.message
    with pytest.raises(RpcError) as e:
        a.rpc.call("messages_send", {"communityId": "0x12", "topic": "t", "payload": ""})
    assert e.value.code == -32602 and "communityId" in e.value.message
    created = a.rpc.call("community_create", {"name": "enc", "encrypted": True})
    assert a.rpc.call("community_list")[0]["encrypted"] is True
    assert a.rpc.call("community_leave", {"communityId": created["communityId"]}) == {"left": True}
    assert a.rpc.call("community_list") == []


def _community_with_member(daemons, encrypted=False, automatic=True):
    control, member = daemons(), daemons()
    created = control.rpc.call("community_create", {"name": "history", "encrypted": encrypted})
    if not automatic:
        control.rpc.call("archive_setEnabled", {"communityId": created["communityId"], "enabled": False})
    member.rpc.call("community_join", {"invite": created["invite"]})
    member.rpc.call("node_connect", {"multiaddr": control.addr})
    return control, member, created["communityId"]


def test_an_archive_is_created_after_the_interval_and_announced(daemons):
    control, member, cid = _community_with_member(daemons)
    control_signals = SignalListener(control.url, control.token)
    member_signals = SignalListener(member.url, member.token)
    try:
        sent = member.rpc.call("messages_send", {"communityId": cid, "topic": "chat", "payload": base64.b64encode(b"archive me").decode()})
        control_signals.wait_for_signal("messages.new", lambda e: e["hash"] == sent["hash"])
        assert control.rpc.call("archive_getInterval", {"communityId": cid}) == {"seconds": 7 * 24 * 3600}
        control.rpc.call("archive_setInterval", {"communityId": cid, "seconds": 2})
        created = control_signals.wait_for_signal("community.historyArchivesCreated", lambda e: e["communityId"] == cid)
        control_signals.wait_for_signal("community.historyArchivesSeeding", lambda e: e["rootCid"] == created["rootCid"])
        accepted = member_signals.wait_for_signal("community.archiveAnnouncementAccepted", lambda e: e["cid"] == created["rootCid"])
    finally:
        control_signals.close()
        member_signals.close()
    latest = control.rpc.call("archive_latestAnnouncement", {"communityId": cid})
    assert (latest["clock"], latest["cid"]) == (accepted["clock"], created["rootCid"])
    assert member.rpc.call("archive_latestAnnouncement", {"communityId": cid})["cid"] == created["rootCid"]
    assert member.rpc.call("archive_hasCommunityArchive", {"communityId": cid}) is True
    index = control.rpc.call("archive_index", {"communityId": cid})
    assert len(index["archives"]) == 1
    assert index["archives"][0]["from"] <= sent["timestamp"] < index["archives"][0]["to"]


def test_an_encrypted_communitys_index_opens_only_with_the_key(daemons, archive_pb2):
    control, member, cid = _community_with_member(daemons, encrypted=True, automatic=False)
    sent = control.rpc.call("messages_send", {"communityId": cid, "topic": "chat", "payload": base64.b64encode(b"secret").decode()})
    import time
    while time.time() < sent["timestamp"] + 1:  # windows are [from, to) in whole seconds
        time.sleep(0.05)
    round_ = control.rpc.call("archive_createNow", {"communityId": cid})
    assert round_["archives"] == 1
    raw = base64.b64decode(control.rpc.call("blocks_cat", {"cid": round_["indexCid"]})["data"])
    blob = archive_pb2.EncryptedBlob()
    blob.ParseFromString(raw)
    assert len(blob.sealed) > 28 and len(blob.key_id) == 8, "the stored index is sealed"
    plain = archive_pb2.ArchiveIndex()
    try:
        plain.ParseFromString(raw)
        readable = len(plain.archives)
    except Exception:
        readable = 0
    assert readable == 0, "without the key the bytes are not an index"
    index = control.rpc.call("archive_index", {"communityId": cid})
    assert len(index["archives"]) == 1, "with the key it opens"
