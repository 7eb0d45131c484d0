"""kill -9 of a member at 20 random points of downloading and importing a multi-archive
history, and of the control node at random points of its seeding rounds, restarting each time:
the store reopens every time, at the end the member's messages equal the control node's exactly
(every acknowledged message archived once) and every archive DAG is whole (issue 9, part 3)."""

import base64
import os
import random
import signal
import threading
import time

from clients.signals import SignalListener
from steps.communities import archive_now, assert_same_history, create, send

FINISHED = "community.downloadingHistoryArchivesFinished"
KILLS = 20


def control_node(daemons, name: str):
    """A control node cutting 1 s archives of an encrypted community: (daemon, created, id)."""
    control = daemons(extra_config="[archive]\npartition_secs = 1\n")
    created = create(control, name, encrypted=True)
    return control, created, created["communityId"]


def test_kill_9_at_20_points_of_a_catch_up_loses_and_duplicates_nothing(daemons):
    control, created, cid = control_node(daemons, "crashes")
    big = os.urandom(300 * 1024)
    last = 0
    for second in range(8):
        start = time.time()
        for i in range(6):
            last = send(control, cid, bytes([second, i]) + big[: 1000 * (i + 1)] + big)["timestamp"]
        while time.time() < int(start) + 1:
            time.sleep(0.02)
    assert archive_now(control, cid, last)["archives"] >= 7

    in_index = len(control.rpc.call("archive_index", {"communityId": cid})["archives"])
    rng = random.Random(20)
    states = []
    member = daemons()
    member.rpc.call("community_join", {"invite": created["invite"]})
    member.rpc.call("node_connect", {"multiaddr": control.addr})
    for kill in range(KILLS):
        # Anywhere from the first moments after a (re)start to well into the work.
        time.sleep(rng.uniform(0.0, 0.6))
        p = member.rpc.call("archive_importProgress", {"communityId": cid})
        states.append((p["downloaded"], p["imported"]))
        member.proc.send_signal(signal.SIGKILL)
        member.proc.wait(30)
        # Restarting on the same data dir: the store must reopen, whatever the kill cut, and no
        # DAG flagged complete may lack a block or hold a wrong one.
        member = daemons(member.data_dir)
        assert_store_whole(member)
        member.rpc.call("node_connect", {"multiaddr": control.addr})

    # The kills must land in the work, not after it: (downloaded, imported) at each kill.
    print("archives (downloaded, imported) at each kill:", states)
    assert sum(1 for _, imported in states if imported < in_index) >= 5, states
    listener = SignalListener(member.url, member.token)
    try:
        progress = member.rpc.call("archive_importProgress", {"communityId": cid})
        if progress["imported"] < in_index:
            listener.wait_for_signal(FINISHED, lambda e: e["communityId"] == cid, timeout=180)
    finally:
        listener.close()
    assert_same_history(control, member, cid, 48)
    # Every archive the member holds is whole: reading it back verifies every block.
    for a in control.rpc.call("archive_index", {"communityId": cid})["archives"]:
        stat = member.rpc.call("blocks_stat", {"cid": a["cid"]})
        assert stat["complete"], a
        got = base64.b64decode(member.rpc.call("blocks_cat", {"cid": a["cid"]})["data"])
        assert len(got) == stat["size"]


CONTROL_KILLS = 8


def test_kill_9_of_the_control_node_during_seeding_rounds_loses_nothing(daemons):
    control, created, cid = control_node(daemons, "control-crashes")
    big = os.urandom(400 * 1024)
    rng = random.Random(int(os.environ.get("CRASH_SEED", "9")))  # another seed hunts other cuts
    sent, outcomes = 0, []

    def two_seconds_of_messages(trial):
        nonlocal sent
        # Two 1 s windows of messages, all acknowledged before the round starts.
        for second in range(2):
            start = time.time()
            for i in range(5):
                send(control, cid, bytes([trial, second, i]) + big)
                sent += 1
            while time.time() < int(start) + 1:
                time.sleep(0.02)

    # A round of that much work, timed, so the kills can land anywhere inside one.
    two_seconds_of_messages(255)
    start = time.monotonic()
    control.rpc.call("archive_createNow", {"communityId": cid})
    round_secs = time.monotonic() - start
    pending = 0  # batches of messages not archived yet: a cut round leaves its work to the next
    for trial in range(CONTROL_KILLS):
        two_seconds_of_messages(trial)
        pending += 1
        round_done = []
        round_thread = threading.Thread(target=lambda: round_done.append(call_quietly(control, cid)), daemon=True)
        round_thread.start()
        time.sleep(rng.uniform(0.05, 1.1) * round_secs * pending)
        control.proc.send_signal(signal.SIGKILL)
        control.proc.wait(30)
        round_thread.join(30)
        outcomes.append("finished" if round_done and round_done[0] else "cut")
        pending = 0 if outcomes[-1] == "finished" else pending
        # The store must reopen, whatever the kill cut.
        control = daemons(control.data_dir)
        assert_store_whole(control)
    print(f"a round takes {round_secs:.2f}s; rounds at each kill:", outcomes)
    assert outcomes.count("cut") >= CONTROL_KILLS // 2, outcomes

    # One last round takes whatever the cut rounds left (every message is in a past window).
    control.rpc.call("archive_createNow", {"communityId": cid})
    archives = control.rpc.call("archive_index", {"communityId": cid})["archives"]
    for a in archives:
        stat = control.rpc.call("blocks_stat", {"cid": a["cid"]})
        assert stat["complete"], a
    member = daemons()
    listener = SignalListener(member.url, member.token)
    try:
        member.rpc.call("community_join", {"invite": created["invite"]})
        member.rpc.call("node_connect", {"multiaddr": control.addr})
        listener.wait_for_signal(FINISHED, lambda e: e["communityId"] == cid, timeout=180)
    finally:
        listener.close()
    # Every acknowledged message is archived exactly once: the member imported them all.
    assert_same_history(control, member, cid, sent)
    assert_store_whole(member)


def assert_store_whole(node) -> None:
    report = node.rpc.call("blocks_verify")
    assert report["problemCount"] == 0, report


def call_quietly(control, cid) -> bool:
    """True when the round finished before the kill."""
    try:
        control.rpc.call("archive_createNow", {"communityId": cid}, timeout=60)
        return True
    except Exception:
        return False
