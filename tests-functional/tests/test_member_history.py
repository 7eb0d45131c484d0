"""Members fetch and import history archives (status-go's functional scenarios, and ours)."""

import base64

from clients.signals import SignalListener
from steps.communities import archive_now, assert_same_history, create, join, send, send_over_seconds

FINISHED = "community.downloadingHistoryArchivesFinished"


def _query(node, cid):
    return node.rpc.call("messages_query", {"communityId": cid})["messages"]


def test_index_exists_and_a_late_member_has_history_only_through_the_archive(daemons):
    control, member = daemons(), daemons()
    created = create(control, "c")
    cid, invite = created["communityId"], created["invite"]
    on_member = SignalListener(member.url, member.token)
    try:
        join(member, invite, control.addr)
        sent = [send(control, cid, f"m{i}".encode()) for i in range(3)]
        on_member.wait_for_signal("messages.new", lambda e: e["hash"] == sent[-1]["hash"])
        r = archive_now(control, cid, sent[-1]["timestamp"])
        on_member.wait_for_signal("community.archiveIndexDownloadCompleted", lambda e: e["indexCid"] == r["indexCid"])
        on_member.wait_for_signal(FINISHED, lambda e: e["communityId"] == cid)
    finally:
        on_member.close()
    assert len(member.rpc.call("archive_downloadedArchiveIds", {"communityId": cid})) == 1

    # The late member must get the history from the archive alone. Gossipsub legitimately
    # offers recent messages (IHAVE) to a peer that subscribes within a few heartbeats, so a
    # fast late join could also receive them by gossip. By construction it cannot here: the
    # member restarts (a new process has an empty gossip cache) and is the late member's only
    # peer (it is not connected to the control node, and knows no provider but itself).
    assert member.terminate() == 0
    member = daemons(member.data_dir)
    late = daemons()
    on_late = SignalListener(late.url, late.token)
    try:
        join(late, invite, member.addr)
        done = on_late.wait_for_signal("community.importingHistoryArchiveMessagesFinished", lambda e: e["communityId"] == cid)
        assert done["imported"] == 3 and done["rejected"] == 0, (done, [s["type"] for s in on_late.seen])
        assert all(s["type"] != "messages.new" for s in on_late.seen), "history came only from the archive"
    finally:
        on_late.close()
    assert [p["peerId"] for p in late.rpc.call("node_peers")] == [member.rpc.call("node_info")["peerId"]]
    assert _query(late, cid) == _query(control, cid), "byte-exact"


def test_no_archive_without_messages(daemons):
    control = daemons()
    cid = create(control, "quiet")["communityId"]
    r = control.rpc.call("archive_createNow", {"communityId": cid})
    assert r["archives"] == 0 and r["indexCid"] is None
    assert control.rpc.call("archive_hasCommunityArchive", {"communityId": cid}) is False


def test_two_rounds_grow_the_downloaded_ids_and_a_stopped_member_catches_up(daemons):
    control, member, sleeper = daemons(), daemons(), daemons()
    created = create(control, "c")
    cid = created["communityId"]
    for m in (member, sleeper):
        join(m, created["invite"], control.addr)
    on_member = SignalListener(member.url, member.token)
    try:
        a = send(control, cid, b"first")
        archive_now(control, cid, a["timestamp"])
        on_member.wait_for_signal(FINISHED, lambda e: e["communityId"] == cid)
        assert len(member.rpc.call("archive_downloadedArchiveIds", {"communityId": cid})) == 1

        # The sleeper stops before the second archive exists.
        assert sleeper.terminate() == 0
        b = send(control, cid, b"second")
        r = archive_now(control, cid, b["timestamp"])
        at = on_member.mark()
        on_member.wait_for_signal("community.archiveIndexDownloadCompleted", lambda e: e["indexCid"] == r["indexCid"])
        on_member.wait_for_signal(FINISHED, lambda e: e["communityId"] == cid, since=at)
        assert len(member.rpc.call("archive_downloadedArchiveIds", {"communityId": cid})) == 2
    finally:
        on_member.close()

    woken = daemons(sleeper.data_dir)
    on_woken = SignalListener(woken.url, woken.token)
    try:
        woken.rpc.call("node_connect", {"multiaddr": control.addr})
        on_woken.wait_for_signal(FINISHED, lambda e: e["communityId"] == cid)
    finally:
        on_woken.close()
    assert woken.rpc.call("archive_importProgress", {"communityId": cid}) == {"downloaded": 2, "imported": 2}
    assert _query(woken, cid) == _query(control, cid)


def test_history_survives_the_control_node_going_offline(daemons):
    control, member = daemons(), daemons()
    created = create(control, "c", encrypted=True)
    cid = created["communityId"]
    on_member = SignalListener(member.url, member.token)
    try:
        join(member, created["invite"], control.addr)
        sent = [send(control, cid, f"x{i}".encode()) for i in range(5)]
        archive_now(control, cid, sent[-1]["timestamp"])
        on_member.wait_for_signal(FINISHED, lambda e: e["communityId"] == cid)
    finally:
        on_member.close()
    expected = _query(control, cid)
    assert control.terminate() == 0

    newcomer = daemons()
    on_new = SignalListener(newcomer.url, newcomer.token)
    try:
        join(newcomer, created["invite"], member.addr)
        on_new.wait_for_signal(FINISHED, lambda e: e["communityId"] == cid)
    finally:
        on_new.close()
    assert _query(newcomer, cid) == expected, "fetched from the member alone, decrypted with the invite's key"


def test_without_the_key_an_encrypted_history_is_not_imported(daemons):
    control, stranger = daemons(), daemons()
    created = create(control, "secret", encrypted=True)
    cid = created["communityId"]
    s = send(control, cid, b"for members only")
    archive_now(control, cid, s["timestamp"])
    # An invite without the archive key.
    import json
    body = json.loads(base64.urlsafe_b64decode(created["invite"][len("anode1"):] + "=="))
    body.pop("key")
    keyless = "anode1" + base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    on_stranger = SignalListener(stranger.url, stranger.token)
    try:
        join(stranger, keyless, control.addr)
        on_stranger.wait_for_signal("community.archiveIndexDownloadCompleted", lambda e: e["communityId"] == cid)
    finally:
        on_stranger.close()
    # (Gossip messages travel in clear by design; only archives and indexes are sealed.)
    assert stranger.rpc.call("archive_importProgress", {"communityId": cid}) == {"downloaded": 0, "imported": 0}
    import pytest
    from clients.rpc import RpcError
    with pytest.raises(RpcError) as e:
        stranger.rpc.call("archive_index", {"communityId": cid})
    assert "key" in e.value.message


def test_kill_9_during_a_large_download_then_restart_loses_and_duplicates_nothing(daemons):
    import os
    import signal
    import time
    # One-second archive windows: messages sent over several seconds make several archives.
    control = daemons(extra_config="[archive]\npartition_secs = 1\n")
    member = daemons()
    created = create(control, "big", encrypted=True)
    cid = created["communityId"]
    sent = send_over_seconds(control, cid, seconds=6, per_second=6, size=400 * 1024)
    r = archive_now(control, cid, sent[-1]["timestamp"])
    assert r["archives"] >= 5

    on_member = SignalListener(member.url, member.token)
    try:
        join(member, created["invite"], control.addr)
        on_member.wait_for_signal("community.historyArchiveDownloaded", lambda e: e["communityId"] == cid)
    finally:
        on_member.close()
    member.proc.send_signal(signal.SIGKILL)
    member.proc.wait(30)

    again = daemons(member.data_dir)
    on_again = SignalListener(again.url, again.token)
    try:
        again.rpc.call("node_connect", {"multiaddr": control.addr})
        on_again.wait_for_signal(FINISHED, lambda e: e["communityId"] == cid, timeout=120)
    finally:
        on_again.close()
    assert_same_history(control, again, cid, 36)


def test_a_newer_announcement_mid_sync_bans_nobody_and_the_sync_completes(daemons):
    import os
    import time
    control = daemons(extra_config="[archive]\npartition_secs = 1\n")
    member = daemons()
    created = create(control, "busy", encrypted=False)
    cid = created["communityId"]
    sent = send_over_seconds(control, cid, seconds=4, per_second=6, size=300 * 1024)
    first = archive_now(control, cid, sent[-1]["timestamp"])
    assert first["archives"] >= 4
    on_member = SignalListener(member.url, member.token)
    try:
        join(member, created["invite"], control.addr)
        # Mid-download, the control node announces a newer index: the member's sync restarts
        # while blocks of the first one are still on their way.
        on_member.wait_for_signal("community.historyArchiveDownloaded", lambda e: e["communityId"] == cid)
        late = send(control, cid, b"one more")
        second = archive_now(control, cid, late["timestamp"])
        on_member.wait_for_signal("community.archiveAnnouncementAccepted", lambda e: e["cid"] == second["rootCid"])
        deadline = time.monotonic() + 120
        while member.rpc.call("archive_importProgress", {"communityId": cid})["imported"] < first["archives"] + second["archives"]:
            assert time.monotonic() < deadline, "the sync did not complete"
            time.sleep(0.05)
    finally:
        on_member.close()
    assert member.rpc.call("node_info")["banned"] == [] and control.rpc.call("node_info")["banned"] == []
    assert_same_history(control, member, cid, len(sent) + 1)
