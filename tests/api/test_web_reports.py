"""Report API (list / generate / download / send, tenancy) and the web pages in headless Chromium.

The app (api.main.create_app) runs under uvicorn on a free loopback port, over a real
SQLite workflow store and the session's real influxd holding the synthetic month of
tests/support/report_month.py; e-mail goes to a real aiosmtpd server on loopback.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from email import message_from_bytes
from email.policy import default as default_policy

import httpx
import pytest
import uvicorn
from support.report_month import (
    CUSTOMER,
    METER,
    MONTH,
    OTHER_CUSTOMER,
    OTHER_SITE,
    SITE,
    fleet,
    synthetic_month,
    write_month,
)
from support.smtp_sink import start_smtp

from api.main import create_app
from api.settings import ApiSettings
from core.influx import InfluxClient
from core.model import AlarmEvent
from core.units import NS
from energyhost.devstack import free_port, stop_process
from reports.archive import ReportArchive
from workflow import Store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def live(influxd, tmp_path_factory):
    """A running app with users, tokens, one active alarm, one overdue order and the synthetic month."""
    tmp = tmp_path_factory.mktemp("web")
    db = f"web_{os.getpid()}"
    influxd.create_database(db)
    influx = InfluxClient(influxd.url, db)
    write_month(influx, synthetic_month())
    store = Store(f"sqlite:///{tmp / 'wf.db'}", password_cost={"n": 2**10, "r": 8, "p": 1})
    fl = fleet()
    store.seed_fleet(fl)
    store.create_user("boss", "admin", name="Boss")
    store.create_user("eng1", "engineer", name="Wang Gong")
    store.create_user("acme.user", "customer", customer_id=CUSTOMER, name="Acme Buyer")
    store.create_user("beta.user", "customer", customer_id=OTHER_CUSTOMER)
    store.create_user("acme.login", "customer", customer_id=CUSTOMER, password="acme-login-pass")
    tokens = {u: store.issue_token(u, 3600)[0] for u in ("boss", "eng1", "acme.user", "beta.user")}
    now = time.time_ns()
    store.upsert_alarm_events([AlarmEvent(
        key=f"{SITE}/{METER}/overvoltage", type="overvoltage", site_id=SITE, device_id=METER, severity="major",
        raised_ns=now - 600 * NS, cleared_ns=None, message_zh="母线电压越上限 250 V", message_en="Bus over-voltage 250 V",
        evidence={"voltage_v": 250.0})])
    old = store.create_work_order(site_id=OTHER_SITE, title="Transformer fan noisy", severity="minor",
                                  created_by="eng1")
    store.db.run("UPDATE work_orders SET created_ns = ?, response_due_ns = ?, arrival_due_ns = ?, repair_due_ns = ? "
                 "WHERE id = ?", (now - 10 * 86400 * NS, now - 9 * 86400 * NS, now - 8 * 86400 * NS,
                                  now - 7 * 86400 * NS, old["id"]))
    app = create_app(ApiSettings(escalate_every_s=0), store=store, influx=influx, background=False)
    app.state.fleet = fl
    app.state.report_archive = ReportArchive(tmp / "reports")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base, timeout=60)
    r = client.post("/api/v1/reports/generate", json={"customer_id": CUSTOMER, "month": MONTH},
                    headers={"Authorization": f"Bearer {tokens['eng1']}"})
    assert r.status_code == 201, r.text
    yield {"base": base, "client": client, "tokens": tokens, "store": store, "alarm_key": f"{SITE}/{METER}/overvoltage",
           "old_order": old["id"], "generated": r.json()}
    client.close()
    server.should_exit = True
    thread.join(timeout=10)
    store.close()
    influx.close()


def auth(live, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {live['tokens'][user]}"}


# ---------------------------------------------------------------- report API


def test_generate_list_and_download(live):
    c = live["client"]
    g = live["generated"]
    assert (g["customer_id"], g["month"], g["langs"]) == (CUSTOMER, MONTH, ["zh", "en"])
    r = c.get("/api/v1/reports", headers=auth(live, "acme.user"))
    assert r.status_code == 200 and [(x["customer_id"], x["month"]) for x in r.json()] == [(CUSTOMER, MONTH)]
    pdf = c.get(r.json()[0]["pdf"]["zh"], headers=auth(live, "acme.user"))
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content[:5] == b"%PDF-" and "energyhost-acme-2026-02-zh.pdf" in pdf.headers["content-disposition"]
    html = c.get(f"/api/v1/reports/{CUSTOMER}/{MONTH}/html", params={"lang": "en"}, headers=auth(live, "acme.user"))
    assert html.status_code == 200 and "Monthly energy saving report" in html.text
    assert "default-src 'none'" in html.headers["content-security-policy"]
    fig = c.get(f"/api/v1/reports/{CUSTOMER}/{MONTH}", headers=auth(live, "acme.user")).json()
    assert fig["customer_id"] == CUSTOMER and fig["energy_kwh"] > 100_000 and fig["sites"][0]["site_id"] == SITE
    assert fig["workflow"]["available"] is True
    assert f"{fig['bill_yuan']:,.2f}" in html.text
    # the survey link is the public address (EH_PUBLIC_URL), never the address the staff called the API on
    assert os.environ.get("EH_PUBLIC_URL") or fig["survey_url"] == ""


def test_tenancy_other_customer_gets_404(live):
    c = live["client"]
    beta = auth(live, "beta.user")
    assert c.get("/api/v1/reports", headers=beta).json() == []
    for path in (f"/api/v1/reports/{CUSTOMER}/{MONTH}", f"/api/v1/reports/{CUSTOMER}/{MONTH}/pdf",
                 f"/api/v1/reports/{CUSTOMER}/{MONTH}/html?lang=zh", f"/api/v1/reports?customer_id={CUSTOMER}"):
        r = c.get(path, headers=beta)
        assert r.status_code == 404, (path, r.status_code)
    r = c.post("/api/v1/reports/generate", json={"customer_id": CUSTOMER, "month": MONTH}, headers=beta)
    assert r.status_code == 404
    r = c.post(f"/api/v1/reports/{CUSTOMER}/{MONTH}/send", json={}, headers=beta)
    assert r.status_code == 404
    # own customer, staff-only function: 403
    r = c.post("/api/v1/reports/generate", json={"customer_id": OTHER_CUSTOMER, "month": MONTH}, headers=beta)
    assert r.status_code == 403
    assert c.get("/api/v1/reports").status_code == 401


def test_bad_parameters_are_rejected(live):
    c = live["client"]
    boss = auth(live, "boss")
    assert c.get(f"/api/v1/reports/{CUSTOMER}/2026-13", headers=boss).status_code == 422
    assert c.get(f"/api/v1/reports/{CUSTOMER}/{MONTH}/pdf?lang=fr", headers=boss).status_code == 422
    assert c.get("/api/v1/reports/ACME%22;drop/2026-02", headers=boss).status_code == 422
    assert c.get(f"/api/v1/reports/{CUSTOMER}/2025-01", headers=boss).status_code == 404
    r = c.post("/api/v1/reports/generate", json={"customer_id": "nobody", "month": MONTH}, headers=boss)
    assert r.status_code == 404 and "nobody" in r.json()["detail"]
    r = c.post("/api/v1/reports/generate", json={"customer_id": CUSTOMER, "month": "2199-01"}, headers=boss)
    assert r.status_code == 422 and "future" in r.json()["detail"]
    r = c.post("/api/v1/reports/generate", json={"customer_id": CUSTOMER, "month": MONTH, "x": 1}, headers=boss)
    assert r.status_code == 422


def test_send_by_email_through_real_smtp(live, monkeypatch):
    ctl, sink = start_smtp()
    try:
        monkeypatch.setenv("EH_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("EH_SMTP_PORT", str(ctl.port))
        r = live["client"].post(f"/api/v1/reports/{CUSTOMER}/{MONTH}/send", json={"lang": "en"},
                                headers=auth(live, "eng1"))
        assert r.status_code == 200, r.text
        assert r.json()["to"] == ["energy@acme.example"]
    finally:
        ctl.stop()
    _, rcpt, raw = sink.messages[-1]
    msg = message_from_bytes(raw, policy=default_policy)
    assert rcpt == ["energy@acme.example"] and "monthly energy saving report" in msg["Subject"]
    (att,) = [p for p in msg.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert att.get_content()[:5] == b"%PDF-"
    listed = live["client"].get("/api/v1/reports", headers=auth(live, "boss")).json()
    assert next(x for x in listed if x["customer_id"] == CUSTOMER)["sent"] is True


# ---------------------------------------------------------------- web pages


def test_pages_are_served_with_csp(live):
    c = live["client"]
    for page in ("login", "console", "customer"):
        r = c.get(f"/web/{page}")
        assert r.status_code == 200 and "script-src 'self'" in r.headers["content-security-policy"]
        assert "/web/static/app.js" in r.text
    assert "告警监控台" in c.get("/web/console").text and "Alarm console" in c.get("/web/console?lang=en").text
    assert c.get("/web/static/console.js").headers["content-type"].startswith("text/javascript")
    assert c.get("/web/static/..%2Fmain.py").status_code == 404
    assert c.get("/web/static/nothere.js").status_code == 404


def _chromium(args: list[str], tmp_path, timeout: float = 90) -> subprocess.CompletedProcess:
    profile = tmp_path / f"chromium-{time.monotonic_ns()}"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--virtual-time-budget=20000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian package chromium not installed")
def test_alarm_console_renders_alarms_and_overdue_orders(live, tmp_path):
    url = f"{live['base']}/web/console?lang=en#token={live['tokens']['eng1']}"
    shot = tmp_path / "console.png"
    dom = _chromium(["--dump-dom", url], tmp_path).stdout
    assert 'data-loaded="1"' in dom, dom[-2000:]
    alarm = live["store"].alarms(open_only=True)[0]
    assert f'data-alarm-id="{alarm["id"]}"' in dom and "Bus over-voltage 250 V" in dom
    assert re.search(r'id="alarm-count"[^>]*>1<', dom)
    assert f'data-wo-id="{live["old_order"]}"' in dom and "Transformer fan noisy" in dom
    assert re.search(r'id="overdue-count"[^>]*>1<', dom)
    assert ">Ack<" in dom and ">Open work order<" in dom and "Wang Gong (engineer)" in dom
    _chromium([f"--screenshot={shot}", "--window-size=1280,800", url], tmp_path)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000     # a page with tables, not a blank one


@pytest.mark.skipif(CHROMIUM is None, reason="Debian package chromium not installed")
def test_customer_page_shows_own_sites_values_reports_and_survey(live, tmp_path):
    url = f"{live['base']}/web/customer?survey={MONTH}#token={live['tokens']['acme.user']}"
    dom = _chromium(["--dump-dom", url], tmp_path).stdout
    assert 'data-loaded="1"' in dom, dom[-2000:]
    assert f'data-site-id="{SITE}"' in dom and "ACME 一厂" in dom
    assert OTHER_SITE not in dom and "Beta" not in dom
    assert f'data-device-id="{METER}"' in dom and "active_power" in dom and "voltage_l1" in dom
    assert f'data-month="{MONTH}"' in dom and "中文 PDF" in dom
    assert re.search(rf'<option value="{MONTH}"', dom)
    shot = tmp_path / "customer.png"
    _chromium([f"--screenshot={shot}", "--window-size=1280,1000", url], tmp_path)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(CHROMIUM is None, reason="Debian package chromium not installed")
def test_login_page_without_token_stays_on_login(live, tmp_path):
    dom = _chromium(["--dump-dom", f"{live['base']}/web/console"], tmp_path).stdout
    assert 'data-page="login"' in dom and 'name="password"' in dom


class _Cdp:
    """Chrome DevTools Protocol over ``--remote-debugging-pipe`` (fds 3/4, NUL-delimited JSON): no extra library."""

    def __init__(self, tmp_path) -> None:
        import json
        import select

        self._json, self._select = json, select
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()

        def child_fds() -> None:            # runs in the child between fork and exec
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'cdp-profile'}", "--remote-debugging-pipe",
             "about:blank"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=child_fds)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        self.session: str | None = None

    def call(self, method: str, params: dict | None = None, timeout: float = 20.0) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if self.session and not method.startswith(("Target.", "Browser.")):
            msg["sessionId"] = self.session
        os.write(self._w, self._json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                reply = self._json.loads(raw)
                if reply.get("id") == self._id:
                    if "error" in reply:
                        raise RuntimeError(f"CDP {method}: {reply['error']}")
                    return reply["result"]
            left = deadline - time.monotonic()
            assert left > 0, f"CDP {method}: no answer in {timeout} s"
            ready, _, _ = self._select.select([self._r], [], [], left)
            if ready:
                chunk = os.read(self._r, 1 << 16)
                assert chunk, "chromium closed the DevTools pipe"
                self._buf += chunk

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", {"url": url})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def js(self, expression: str):
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        return r["result"].get("value")

    def wait(self, expression: str, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = self.js(expression)
            if v:
                return v
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expression!r}")

    def close(self) -> None:
        stop_process(self.proc, 10)
        os.close(self._w)
        os.close(self._r)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian package chromium not installed")
def test_console_ack_and_open_work_order_by_clicking(live, tmp_path):
    """Click Ack (with a note) and Open work order in the real page; the store records both, and the
    buttons that no longer apply go away."""
    store = live["store"]
    alarm = store.alarms(open_only=True)[0]
    row = f'tr[data-alarm-id="{alarm["id"]}"]'
    cdp = _Cdp(tmp_path)
    try:
        cdp.open(f"{live['base']}/web/console?lang=en#token={live['tokens']['eng1']}")
        cdp.wait("document.body && document.body.dataset.loaded === '1'")
        assert cdp.js("location.hash") == ""                         # the token left the address bar
        cdp.js(f"document.querySelector('{row} input.note').value = 'checked on site'; "
               f"document.querySelector('{row} button.ack').click(); true")
        cdp.wait(f"document.querySelector('{row}') && !document.querySelector('{row} button.ack')")
        a = store.alarm(alarm["id"])
        assert a["acked"] and a["acked_by"] == "eng1" and a["ack_note"] == "checked on site"
        cdp.js(f"document.querySelector('{row} button.wo').click(); true")
        cdp.wait("document.getElementById('open-count').textContent === '2'")
        orders = [w for w in store.work_orders() if w["alarm_id"] == alarm["id"]]
        assert len(orders) == 1 and orders[0]["title"] == "Bus over-voltage 250 V"
        assert orders[0]["severity"] == "major" and orders[0]["site_id"] == SITE
        assert f"Work order #{orders[0]['id']}" in cdp.js("document.getElementById('status').textContent")
        # one open order per alarm: the button is gone and the row names the order
        assert cdp.js(f"document.querySelector('{row} button.wo') === null")
        assert f"order #{orders[0]['id']}" in cdp.js(f"document.querySelector('{row}').textContent")
    finally:
        cdp.close()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian package chromium not installed")
def test_customer_answers_survey_of_the_report(live, tmp_path):
    cdp = _Cdp(tmp_path)
    try:
        cdp.open(f"{live['base']}/web/customer?lang=en&survey={MONTH}#token={live['tokens']['acme.user']}")
        cdp.wait("document.body && document.body.dataset.loaded === '1'")
        assert cdp.js("document.getElementById('survey-month').value") == MONTH
        cdp.js("document.querySelector('input[name=rating][value=\"4\"]').checked = true; "
               "document.querySelector('#survey textarea').value = '报告清楚 clear report'; "
               "document.querySelector('#survey button[type=submit]').click(); true")
        cdp.wait("document.getElementById('survey-result').textContent.length > 0")
        # the PDF button fetches with the bearer token and saves the file
        downloads = tmp_path / "downloads"
        downloads.mkdir()
        cdp.call("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        cdp.js(f"document.querySelector('tr[data-month=\"{MONTH}\"] button.pdf').click(); true")
        deadline = time.monotonic() + 20
        want = downloads / f"energyhost-{CUSTOMER}-{MONTH}-zh.pdf"
        while not want.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert want.read_bytes()[:5] == b"%PDF-"
    finally:
        cdp.close()
    (answer,) = live["store"].surveys([CUSTOMER], kind="monthly_report")
    assert (answer["ref"], answer["rating"], answer["comment"], answer["user_id"]) == (
        MONTH, 4, "报告清楚 clear report", "acme.user")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian package chromium not installed")
def test_survey_link_survives_sign_in(live, tmp_path):
    """The report's survey link opened without a session: sign in, land back on the survey month."""
    cdp = _Cdp(tmp_path)
    try:
        cdp.open(f"{live['base']}/web/customer?survey={MONTH}")
        cdp.wait("location.pathname === '/web/login' && document.body.dataset.ready === '1'")
        assert "next=" in cdp.js("location.search")
        cdp.js("document.querySelector('input[name=username]').value = 'acme.login'; "
               "document.querySelector('input[name=password]').value = 'acme-login-pass'; "
               "document.querySelector('#login button[type=submit]').click(); true")
        cdp.wait("location.pathname === '/web/customer' && document.body.dataset.loaded === '1'")
        assert cdp.js("location.search") == f"?survey={MONTH}"
        assert cdp.js("document.getElementById('survey-month').value") == MONTH
        # a forged next= pointing elsewhere is ignored
        cdp.js("sessionStorage.clear(); true")
        cdp.open(f"{live['base']}/web/login?next=%2F%2Fevil.example%2F")
        cdp.wait("!!document.getElementById('login') && document.body.dataset.ready === '1'")
        cdp.js("document.querySelector('input[name=username]').value = 'acme.login'; "
               "document.querySelector('input[name=password]').value = 'acme-login-pass'; "
               "document.querySelector('#login button[type=submit]').click(); true")
        cdp.wait("location.pathname === '/web/customer'")
        assert cdp.js("location.host") == live["base"].split("//", 1)[1]
    finally:
        cdp.close()


def test_concurrent_generation_is_capped(live):
    """More simultaneous generations than MAX_CONCURRENT_GENERATIONS answer 429 with Retry-After."""
    from concurrent.futures import ThreadPoolExecutor

    from api.routes.reports import MAX_CONCURRENT_GENERATIONS

    n = MAX_CONCURRENT_GENERATIONS + 3
    barrier = threading.Barrier(n)

    def one(_):
        with httpx.Client(base_url=live["base"], timeout=120) as c:
            barrier.wait(timeout=30)
            return c.post("/api/v1/reports/generate", json={"customer_id": OTHER_CUSTOMER, "month": MONTH,
                                                            "langs": ["zh"]}, headers=auth(live, "boss"))

    with ThreadPoolExecutor(max_workers=n) as pool:
        answers = list(pool.map(one, range(n)))
    codes = sorted(r.status_code for r in answers)
    assert set(codes) == {201, 429} and 1 <= codes.count(201) <= MAX_CONCURRENT_GENERATIONS
    assert all(r.headers["retry-after"] == "30" for r in answers if r.status_code == 429)


def test_generate_current_month_is_a_partial_report(live):
    """POST /reports/generate for the month in progress: archived as partial, never a month's saving."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    c = live["client"]
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    month = now.strftime("%Y-%m")
    r = c.post("/api/v1/reports/generate", json={"customer_id": OTHER_CUSTOMER, "month": month},
               headers=auth(live, "boss"))
    if now.day == 1:                                     # less than a day of the month behind us
        assert r.status_code == 422 and "has not started" in r.json()["detail"]
        return
    assert r.status_code == 201, r.text
    fig = c.get(f"/api/v1/reports/{OTHER_CUSTOMER}/{month}", headers=auth(live, "boss")).json()
    assert fig["partial"] is True and fig["days_covered"] < fig["days_in_month"]
    assert fig["savings"]["verdict"] != "verified"
    html = c.get(f"/api/v1/reports/{OTHER_CUSTOMER}/{month}/html", params={"lang": "en"}, headers=auth(live, "boss"))
    assert "Month in progress" in html.text
