"""Steps shared by the community tests (like status-go's tests-functional steps/)."""

import base64
import time


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def send(node, cid: str, payload: bytes, topic: str = "chat") -> dict:
    return node.rpc.call("messages_send", {"communityId": cid, "topic": topic, "payload": b64(payload)})


def archive_now(control, cid: str, after_timestamp: int) -> dict:
    """One seeding round once the wall clock passed `after_timestamp` (windows are [from, to) in seconds)."""
    while time.time() < after_timestamp + 1:
        time.sleep(0.05)
    return control.rpc.call("archive_createNow", {"communityId": cid})


def join(node, invite: str, peer_addr: str | None = None) -> dict:
    """Joins, and with `peer_addr` connects and waits until the community's description (who
    may write) arrived from that peer: before it, the node can neither send nor import."""
    joined = node.rpc.call("community_join", {"invite": invite})
    if peer_addr:
        node.rpc.call("node_connect", {"multiaddr": peer_addr})
        wait_description(node, joined["communityId"])
    return joined


def wait_description(node, cid: str, predicate=lambda d: True, timeout: float = 30) -> dict:
    """The node's description of the community once one satisfying `predicate` is held."""
    deadline = time.monotonic() + timeout
    while True:
        d = node.rpc.call("community_description", {"communityId": cid})
        if d is not None and predicate(d):
            return d
        if time.monotonic() > deadline:
            raise AssertionError(f"no such description of {cid} within {timeout} s: {d}")
        time.sleep(0.05)


def create(control, name: str, encrypted: bool = False) -> dict:
    """Creates a community whose rounds the test drives: the automatic seeding loop is off (a
    tick before that can only find no messages, which makes nothing)."""
    created = control.rpc.call("community_create", {"name": name, "encrypted": encrypted})
    control.rpc.call("archive_setEnabled", {"communityId": created["communityId"], "enabled": False})
    return created


def all_messages(node, cid: str) -> list[dict]:
    """Every message the node stores for the community, oldest first, page after page (a page
    stops at its limit or after about 16 MiB of messages)."""
    messages, cursor = [], None
    while True:
        page = node.rpc.call("messages_query", {"communityId": cid, **({"cursor": cursor} if cursor else {})})
        messages += page["messages"]
        cursor = page.get("cursor")
        if not cursor:
            return messages


def history_difference(ours: list[dict], theirs: list[dict]) -> str:
    """What tells two histories apart, briefly: counts, messages only one side has, and the
    fields that differ in messages both have."""
    def ident(m: dict) -> str:
        return m.get("id") or m.get("hash") or repr(sorted(m.items()))[:80]

    mine, other = {ident(m): m for m in ours}, {ident(m): m for m in theirs}
    missing = [k for k in mine if k not in other]
    extra = [k for k in other if k not in mine]
    changed = {k: sorted(f for f in mine[k] if mine[k].get(f) != other[k].get(f)) for k in mine if k in other}
    changed = {k: v for k, v in changed.items() if v}
    order = [ident(m) for m in theirs] != [ident(m) for m in ours if ident(m) in other]
    return (
        f"ours {len(ours)}, theirs {len(theirs)} ({len(other)} distinct); missing {missing[:5]}"
        f" ({len(missing)}), extra {extra[:5]} ({len(extra)}), fields differ in"
        f" {len(changed)}: {list(changed.items())[:3]}, order differs: {order}"
    )


def assert_same_history(control, member, cid: str, messages: int) -> None:
    """The member holds exactly the control node's `messages` messages (no loss, no
    duplicates), and has downloaded and imported every archive of the index."""
    ours, theirs = all_messages(control, cid), all_messages(member, cid)
    assert len(ours) == messages
    assert theirs == ours, f"no loss, no duplicates: {history_difference(ours, theirs)}"
    progress = member.rpc.call("archive_importProgress", {"communityId": cid})
    in_index = len(control.rpc.call("archive_index", {"communityId": cid})["archives"])
    assert progress["downloaded"] == progress["imported"] == in_index


def send_over_seconds(control, cid: str, seconds: int, per_second: int, size: int) -> list[dict]:
    """Sends `per_second` distinct messages of about `size` bytes in each of `seconds` wall-clock
    seconds (with one-second archive windows: one archive, or more, per second)."""
    import os
    big = os.urandom(size)
    sent = []
    for second in range(seconds):
        start = time.time()
        for i in range(per_second):
            sent.append(send(control, cid, big[: 1000 * (i + 1)] + bytes([second, i]) + big))
        while time.time() < int(start) + 1:
            time.sleep(0.02)
    return sent
