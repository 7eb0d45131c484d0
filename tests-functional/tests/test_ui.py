"""The dashboard in a real browser (Debian's headless Chromium driven by Selenium), against real
daemons: log in with the URL `archive-node ui` prints, watch a member's sync reach 100 %, accept
a request to join by clicking, see the new member listed. Screenshots of each step go to
tests-functional/logs/ui/. And the gate, without a browser: no session or a wrong one gets 401,
a foreign Host or Origin is refused, a login code works once, a rotation ends sessions."""

import json
import shutil

import pytest
import requests
import websocket

from clients.node_proc import LOGS
from clients.signals import SignalListener
from steps.communities import archive_now, send, wait_description

SHOTS = LOGS / "ui"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def _author(node) -> str:
    return node.rpc.call("node_info")["authorKey"]


def _is_member(node, cid, key) -> bool:
    return any(m["memberKey"] == key and m["active"] for m in node.rpc.call("community_members", {"communityId": cid}))


def _login_url(node) -> str:
    url = node.cli("ui", "--no-open").stdout.strip()
    assert url.startswith(node.url + "/ui/#login="), url
    return url


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("no chromium and chromedriver (apt-get install chromium chromium-driver)")
    from selenium import webdriver

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1700"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        for entry in driver.get_log("browser"):
            print("browser console:", entry)
        driver.quit()


def _wait(driver, what: str, condition, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: condition(d))
    except Exception as e:
        driver.save_screenshot(str(SHOTS / "failed.png"))
        raise AssertionError(f"{what} not seen on the page within {timeout} s (screenshot logs/ui/failed.png)") from e


def _text(driver, css: str) -> str:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0].text if found else ""


def test_log_in_watch_a_sync_reach_100_percent_and_accept_a_request_by_clicking(daemons, browser):
    from selenium.webdriver.common.by import By

    control, alice, bob = daemons(), daemons(), daemons()
    out = control.cli("community", "create", "ui club", "--access", "on-request").stdout.split()
    cid, invite = out[1], out[3]
    control.rpc.call("archive_setEnabled", {"communityId": cid, "enabled": False})  # rounds driven here
    last = [send(control, cid, f"history message {i} ".encode() * 200) for i in range(30)][-1]
    first_round = archive_now(control, cid, last["timestamp"])
    assert first_round["archives"] >= 1

    # Alice asks to join; her own dashboard is open while she waits and while she syncs.
    on_control = SignalListener(control.url, control.token)
    alice.cli("community", "request", invite)
    alice.cli("connect", control.addr)
    browser.get(_login_url(alice))
    card = f"#community-{cid}"
    _wait(browser, "alice's community card", lambda d: _text(d, f"{card} .name") == "ui club")
    assert "#login=" not in browser.current_url, "the one-time code is off the address bar"
    browser.save_screenshot(str(SHOTS / "01-member-logged-in.png"))
    try:
        on_control.wait_for_signal("community.requestToJoin", lambda e: e["memberKey"] == _author(alice))
        control.rpc.call("community_acceptRequest", {"communityId": cid, "memberKey": _author(alice)})
        wait_description(alice, cid, lambda d: _is_member(alice, cid, _author(alice)))
        # A round after she is in: its announcement reaches her, and she fetches every archive.
        archive_now(control, cid, send(control, cid, b"after alice joined")["timestamp"])
        _wait(browser, "alice's sync at 100 %", lambda d: "(100%)" in _text(d, f"{card} .archives-text"), timeout=90)
        archives = _text(browser, f"{card} .archives-text")
        held, total = archives.split(" (")[0].split(" / ")
        assert held == total and int(total) >= 2, archives
        assert "(100%)" in _text(browser, f"{card} .bytes-text")
        browser.save_screenshot(str(SHOTS / "02-member-synced.png"))
        status = alice.rpc.call("archive_syncStatus", {"communityId": cid})
        assert status["archives"]["held"] == status["archives"]["total"] == int(total)

        # Bob asks; the control node's operator accepts him on the control node's dashboard.
        bob.cli("community", "request", invite)
        bob.cli("connect", control.addr)
        on_control.wait_for_signal("community.requestToJoin", lambda e: e["memberKey"] == _author(bob))
    finally:
        on_control.close()
    browser.get(_login_url(control))
    request_row = f'{card} .request[data-key="{_author(bob)}"]'
    _wait(browser, "bob's request", lambda d: d.find_elements(By.CSS_SELECTOR, request_row))
    assert _text(browser, f"{card} .role") == "control node"
    browser.save_screenshot(str(SHOTS / "03-control-pending-request.png"))
    browser.find_element(By.CSS_SELECTOR, f"{request_row} button.accept").click()
    member_item = f'{card} .member[data-key="{_author(bob)}"]'
    _wait(browser, "bob among the members", lambda d: d.find_elements(By.CSS_SELECTOR, member_item))
    _wait(browser, "no request left", lambda d: not d.find_elements(By.CSS_SELECTOR, request_row))
    browser.save_screenshot(str(SHOTS / "04-control-member-accepted.png"))
    members = control.rpc.call("community_members", {"communityId": cid})
    assert _author(bob) in {m["memberKey"] for m in members if m["active"]}
    # The rest of the page is there and live.
    assert _text(browser, "#live") == "signals: live"
    assert _text(browser, "#peer-id") == control.rpc.call("node_info")["peerId"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#peer-rows tr.peer")) >= 2


def _login(node) -> requests.Session:
    code = _login_url(node).rsplit("=", 1)[1]
    s = requests.Session()
    r = s.post(node.url + "/ui/login", headers={"X-Login-Code": code}, timeout=10)
    assert r.status_code == 200, r.text
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=" in cookie, cookie
    # The code works once.
    assert requests.post(node.url + "/ui/login", headers={"X-Login-Code": code}, timeout=10).status_code == 401
    return s


def _call(session, node, method, headers=None):
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {}}
    return session.post(node.url, json=body, headers=headers or {}, timeout=10)


def test_the_gate_wants_a_session_or_the_token_this_host_and_this_origin(daemons):
    node = daemons()
    port = node.url.rsplit(":", 1)[1]
    page = requests.get(node.url + "/ui/", timeout=10)
    assert page.status_code == 200 and "archive-node" in page.text
    assert page.headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in page.headers["content-security-policy"]
    # No session, a made-up one, another port's: 401, for the API and for /metrics.
    assert _call(requests, node, "node_info").status_code == 401
    for cookie in (f"archive_node_session_{port}=0000", f"archive_node_session_1={'0' * 64}"):
        assert _call(requests, node, "node_info", {"Cookie": cookie}).status_code == 401
        assert requests.get(node.url + "/metrics", headers={"Cookie": cookie}, timeout=10).status_code == 401
    s = _login(node)
    assert _call(s, node, "node_info").json()["result"]["peerId"]
    assert s.get(node.url + "/metrics", timeout=10).status_code == 200
    # A page of another site, or of another port of this machine, cannot call in.
    for origin in ("http://evil.example", f"http://127.0.0.1:{int(port) + 1}", "null"):
        r = _call(s, node, "node_info", {"Origin": origin})
        assert r.status_code == 403, (origin, r.status_code)
        assert _call(requests, node, "node_info", {"Origin": origin, "Authorization": f"Bearer {node.token}"}).status_code == 403
    assert _call(s, node, "node_info", {"Origin": node.url}).status_code == 200
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(node.url.replace("http", "ws", 1), origin="http://evil.example",
                                    header=[f"Authorization: Bearer {node.token}"], timeout=10)
    assert refused.value.status_code == 403
    # DNS rebinding: a name that is not this machine's, though it reached 127.0.0.1.
    for host in (f"evil.example:{port}", "attacker.test"):
        r = _call(s, node, "node_info", {"Host": host, "Authorization": f"Bearer {node.token}"})
        assert r.status_code == 403, (host, r.status_code)
    # A rotation ends the session; the bearer token keeps working for scripts.
    node.cli("token", "rotate")
    assert _call(s, node, "node_info").status_code == 401
    token = (node.data_dir / "rpc.token").read_text().strip()
    assert _call(requests, node, "node_info", {"Authorization": f"Bearer {token}"}).status_code == 200


def test_a_configured_host_name_is_allowed(daemons):
    node = daemons(extra_config='[rpc]\nallowed_hosts = ["Archive.LAN"]\n')
    r = requests.get(node.url + "/health", headers={"Host": "archive.lan:80"}, timeout=10)
    assert r.status_code == 200
    assert requests.get(node.url + "/health", headers={"Host": "other.lan"}, timeout=10).status_code == 403
    page = json.loads(node.cli("rpc", "node_info").stdout)
    assert page["peerId"]
