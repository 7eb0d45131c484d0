"""The community commands of the CLI, against real daemons."""

import json
import time

from clients.signals import SignalListener


def test_create_join_send_archive_sync_through_the_cli(daemons):
    control, member = daemons(), daemons()
    out = control.cli("community", "create", "cli chat").stdout.splitlines()
    cid = out[0].split(" ", 1)[1]
    invite = out[1].split(" ", 1)[1]
    control.rpc.call("archive_setEnabled", {"communityId": cid, "enabled": False})  # rounds driven here
    assert member.cli("community", "join", invite).stdout.startswith(f"joined {cid}")
    assert json.loads(control.cli("community", "list").stdout.splitlines()[0])["control"] is True
    assert control.cli("community", "invite", cid).stdout.strip() == invite
    member.cli("connect", control.addr)

    listener = SignalListener(control.url, control.token)
    try:
        sent = member.cli("send", cid, "general", "hello from the CLI").stdout
        assert sent.startswith("sent 0x")
        listener.wait_for_signal("messages.new", lambda e: e["hash"] == sent.split()[1] and e["received"])
    finally:
        listener.close()
    stamp = json.loads(control.cli("messages", cid, "--raw").stdout.splitlines()[0])["timestamp"]
    while time.time() < stamp + 1:  # windows are [from, to) in whole seconds
        time.sleep(0.05)
    round_ = json.loads(control.cli("archive", "create-now", cid).stdout)
    assert round_["archives"] == 1

    done = member.cli("community", "sync", cid).stdout
    assert done.strip().endswith("is downloaded and imported")
    archives = [json.loads(line) for line in member.cli("archives", cid).stdout.splitlines()]
    assert len(archives) == 1 and archives[0]["downloaded"] is True and archives[0]["local"] is True
