"""Membership through real daemons: only members write a community's history; strangers that
know its id (a daemon with debug methods, and a js-libp2p peer we did not write) are refused
and penalised; requests to join, bans, and the re-key that locks a kicked member out."""

import base64
import json
import time

import pytest

from clients.rpc import RpcError
from clients.signals import SignalListener
from steps.communities import archive_now, b64, send, wait_description

FINISHED = "community.downloadingHistoryArchivesFinished"
NOT_A_MEMBER = "author is not a member"


def _create(control, name, access, encrypted=False) -> str:
    created = control.rpc.call("community_create", {"name": name, "encrypted": encrypted, "access": access})
    control.rpc.call("archive_setEnabled", {"communityId": created["communityId"], "enabled": False})
    return created["communityId"]


def _author(node) -> str:
    return node.rpc.call("node_info")["authorKey"]


def _invite_and_join(control, member, cid) -> None:
    """An invitation-only invite for the member's key; it joins through the control node and
    waits until it sees itself admitted."""
    invite = control.rpc.call("community_invite", {"communityId": cid, "memberKey": _author(member)})["invite"]
    member.rpc.call("community_join", {"invite": invite})
    member.rpc.call("node_connect", {"multiaddr": control.addr})
    wait_description(member, cid, lambda d: _is_member(member, cid, _author(member)))


def _is_member(node, cid, key) -> bool:
    return any(m["memberKey"] == key and m["active"] for m in node.rpc.call("community_members", {"communityId": cid}))


def _keyless_invite(cid: str) -> str:
    """What anyone who knows a community's id can make."""
    body = json.dumps({"id": cid, "name": "x"}).encode()
    return "anode1" + base64.urlsafe_b64encode(body).decode().rstrip("=")


def _hashes(node, cid) -> set[str]:
    return {m["hash"] for m in node.rpc.call("messages_query", {"communityId": cid})["messages"]}


def _score(node, peer_id) -> float | None:
    for p in node.rpc.call("node_peers"):
        if p["peerId"] == peer_id:
            return p["gossipScore"]
    return None


def _wait_negative_score(node, peer_id, timeout=30):
    deadline = time.monotonic() + timeout
    while (s := _score(node, peer_id)) is None or s >= 0:
        assert time.monotonic() < deadline, f"{peer_id} not penalised by {node.addr}: score {s}"
        time.sleep(0.05)


def test_strangers_who_know_the_id_write_nothing_and_are_penalised(daemons, gossip_peer):
    control, member, outsider = daemons(), daemons(), daemons(debug=True)
    cid = _create(control, "private", "invitation-only")
    _invite_and_join(control, member, cid)
    # The outsider joins with what anyone can make from the id, and meshes with the member.
    outsider.rpc.call("community_join", {"invite": _keyless_invite(cid)})
    outsider.rpc.call("node_connect", {"multiaddr": member.addr})
    wait_description(outsider, cid)
    with pytest.raises(RpcError) as refused:
        send(outsider, cid, b"let me write")
    assert "not a member" in refused.value.message

    # Validly signed messages of its own key, published anyway; and a js-libp2p stranger.
    forged = outsider.rpc.call("debug_signMessage", {"communityId": cid, "topic": "chat", "payload": b64(b"I am one of you")})
    outsider.rpc.call("debug_publish", {"topic": f"/archive-node/1/{cid}/messages", "data": forged["data"]})
    js = gossip_peer(member.addr, cid, publish=5)
    js.wait_for(lambda e: e.get("event") == "done")
    _wait_negative_score(member, js.peer_id)
    _wait_negative_score(member, outsider.rpc.call("node_info")["peerId"])

    # A member's message still flows, after the strangers' ones were judged.
    mine = send(member, cid, b"from a member")
    on_control = SignalListener(control.url, control.token)
    try:
        if mine["hash"] not in _hashes(control, cid):
            on_control.wait_for_signal("messages.new", lambda e: e["hash"] == mine["hash"])
    finally:
        on_control.close()
    strangers = {forged["hash"]} | {e["hash"] for e in js.drain() if e.get("event") == "published"}
    assert len(strangers) == 6
    for node in (control, member, outsider):
        assert not strangers & _hashes(node, cid), "no member stores a stranger's message"
    # One rejected message graylists its forwarder: gossipsub drops the rest of what it sends.
    assert member.refused(NOT_A_MEMBER) >= 2
    # Nor are they archived.
    r = archive_now(control, cid, mine["timestamp"])
    assert r["messages"] == 1


def test_on_request_accept_admits_and_reject_does_not_through_the_cli(daemons):
    control, alice, bob = daemons(), daemons(), daemons()
    out = control.cli("community", "create", "club", "--access", "on-request").stdout.split()
    cid, invite = out[1], out[3]
    control.rpc.call("archive_setEnabled", {"communityId": cid, "enabled": False})
    on_control = SignalListener(control.url, control.token)
    try:
        for n in (alice, bob):
            n.cli("community", "request", invite)
            n.cli("connect", control.addr)
        for n in (alice, bob):
            on_control.wait_for_signal("community.requestToJoin", lambda e, k=_author(n): e["memberKey"] == k)
        pending = [json.loads(line)["memberKey"] for line in control.cli("community", "requests", cid).stdout.splitlines()]
        assert sorted(pending) == sorted([_author(alice), _author(bob)])
        control.cli("community", "accept", cid, _author(alice))
        control.cli("community", "reject", cid, _author(bob))
        assert control.cli("community", "requests", cid).stdout.strip() == ""
        wait_description(alice, cid, lambda d: _is_member(alice, cid, _author(alice)))
        sent = alice.cli("send", cid, "chat", "accepted, and writing").stdout.split()[1]
        on_control.wait_for_signal("messages.new", lambda e: e["hash"] == sent)
    finally:
        on_control.close()
    refused = bob.cli("send", cid, "chat", "rejected", check=False)
    assert refused.returncode != 0 and "not a member" in refused.stderr
    members = [json.loads(line) for line in control.cli("community", "members", cid).stdout.splitlines()]
    assert {m["memberKey"] for m in members if m["active"]} == {_author(control), _author(alice)}


def test_a_banned_member_is_refused_everywhere(daemons):
    control, alice, carol = daemons(), daemons(debug=True), daemons()
    cid = _create(control, "club", "invitation-only")
    for n in (alice, carol):
        _invite_and_join(control, n, cid)
    control.rpc.call("community_ban", {"communityId": cid, "memberKey": _author(alice)})
    wait_description(carol, cid, lambda d: _author(alice) in d["banned"])
    wait_description(alice, cid, lambda d: _author(alice) in d["banned"])
    with pytest.raises(RpcError):
        send(alice, cid, b"after my ban")
    forged = alice.rpc.call("debug_signMessage", {"communityId": cid, "topic": "chat", "payload": b64(b"after my ban")})
    alice.rpc.call("debug_publish", {"topic": f"/archive-node/1/{cid}/messages", "data": forged["data"]})
    _wait_negative_score(control, alice.rpc.call("node_info")["peerId"])
    for n in (control, carol):
        assert forged["hash"] not in _hashes(n, cid)
    assert control.refused("author is banned") >= 1


def test_a_kicked_member_reads_nothing_after_and_strangers_see_only_sealed_bytes(daemons, gossip_peer, archive_pb2):
    control, alice, bob = daemons(), daemons(), daemons()
    cid = _create(control, "secret", "invitation-only", encrypted=True)
    for n in (alice, bob):
        _invite_and_join(control, n, cid)
    # A stranger subscribed to the community's topics (no key).
    js = gossip_peer(control.addr, cid)
    js.wait_for(lambda e: e.get("event") == "subscribed")
    on_alice, on_bob = SignalListener(alice.url, alice.token), SignalListener(bob.url, bob.token)
    try:
        first = send(control, cid, b"plain words one")
        for listener in (on_alice, on_bob):
            listener.wait_for_signal("messages.new", lambda e: e["hash"] == first["hash"])
        r1 = archive_now(control, cid, first["timestamp"])
        for listener in (on_alice, on_bob):
            listener.wait_for_signal("community.importingHistoryArchiveMessagesFinished", lambda e: e["communityId"] == cid)

        control.rpc.call("community_kick", {"communityId": cid, "memberKey": _author(bob)})
        key_id = on_alice.wait_for_signal("community.rekeyed", lambda e: e["communityId"] == cid)["keyId"]
        at = on_alice.mark()
        second = send(control, cid, b"plain words two")
        on_alice.wait_for_signal("messages.new", lambda e: e["hash"] == second["hash"], since=at)
        assert on_bob.wait_for_signal("community.archiveKeyMissing", lambda e: e["communityId"] == cid)["keyId"] == key_id
        r2 = archive_now(control, cid, second["timestamp"])
        at = on_alice.mark()
        on_alice.wait_for_signal(FINISHED, lambda e: e["communityId"] == cid, since=at)
    finally:
        on_alice.close()
        on_bob.close()
    assert r1["archives"] == 1 and r2["archives"] == 1
    assert _hashes(alice, cid) == _hashes(control, cid) == {first["hash"], second["hash"]}
    assert _hashes(bob, cid) == {first["hash"]}, "the kicked member keeps what it could read, and no more"
    assert bob.rpc.call("archive_importProgress", {"communityId": cid})["imported"] == 1
    with pytest.raises(RpcError) as e:
        bob.rpc.call("archive_index", {"communityId": cid})
    assert "key" in e.value.message

    # Everything the stranger received on the messages topic (both messages) was sealed.
    got = []

    def on_messages_topic(e):
        if e.get("event") == "received" and e["topic"].endswith("/messages"):
            got.append(base64.b64decode(e["data"]))
        return len(got) >= 2

    js.wait_for(on_messages_topic)
    for data in got:
        blob = archive_pb2.EncryptedBlob()
        blob.ParseFromString(data)
        assert len(blob.sealed) > 0 and b"plain words" not in data

    # A member invited after the kick opens the archive made before it too (the key chain).
    carol = daemons()
    on_carol = SignalListener(carol.url, carol.token)
    try:
        _invite_and_join(control, carol, cid)
        on_carol.wait_for_signal(FINISHED, lambda e: e["communityId"] == cid)
    finally:
        on_carol.close()
    assert _hashes(carol, cid) == _hashes(control, cid)


def test_over_rate_and_over_quota_messages_are_refused_with_a_reason_and_never_stored(daemons):
    limits = "[membership]\nmax_messages_per_author_per_minute = 6\nauthor_burst = 3\nmax_community_store_bytes = 1000000\n"
    control = daemons(extra_config=limits)
    cid = _create(control, "busy", "open")
    sent = [send(control, cid, f"m{i}".encode()) for i in range(3)]
    with pytest.raises(RpcError) as e:
        send(control, cid, b"one too many")
    assert "rate" in e.value.message
    assert len(_hashes(control, cid)) == 3

    small = daemons(extra_config="[membership]\nmax_community_store_bytes = 2000\n")
    cid2 = _create(small, "small", "open")
    with pytest.raises(RpcError) as e:
        for i in range(100):
            send(small, cid2, b"x" * 200 + bytes([i]))
    assert "quota" in e.value.message
    assert 0 < len(_hashes(small, cid2)) < 100
    assert sent
