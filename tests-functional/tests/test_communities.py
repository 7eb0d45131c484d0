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
