"""Service commitments in the real browser: the customer's scorecards (this and last month, in words,
the records behind each miss) and the manager's count of missed commitments per customer.
Screenshots at 1400 px and 390 px into var/screenshots/ (``commitments-*``, ``manager-commitments-*``).
"""

from __future__ import annotations

import os
import re
import time

import httpx
import pytest
from support.report_month import CUSTOMER, EV, SITE, TZ
from support.web_live import CHROMIUM, LiveApp, month_data, seed_store, shoot, write_data

from core.influx import InfluxClient
from core.model import AlarmEvent
from core.units import NS
from reports.archive import ReportArchive
from workflow import Store, month_bounds_ns
from workflow.commitment_records import local_month, previous_month

pytest.importorskip("playwright")
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian package chromium not installed")
MIN = 60 * NS


def _critical(store: Store, key: str, raised_ns: int) -> int:
    store.record([AlarmEvent(key=key, type="trip", site_id=SITE, device_id=EV, severity="critical",
                             raised_ns=raised_ns, cleared_ns=None, message_zh="跳闸", message_en="tripped", evidence={})])
    return next(a["id"] for a in store.alarms(limit=500) if a["key"] == key)


@pytest.fixture(scope="module")
def live(influxd, tmp_path_factory):
    """A store whose clock runs at real time plus an offset: acks can be made in last month."""
    tmp = tmp_path_factory.mktemp("webcommit")
    db = f"webcommit_{os.getpid()}"
    influxd.create_database(db)
    influx = InfluxClient(influxd.url, db)
    now = time.time_ns()
    write_data(influx, month_data(now))
    offset = [0]
    store = Store(f"sqlite:///{tmp / 'wf.db'}", clock=lambda: time.time_ns() + offset[0],
                  password_cost={"n": 2**10, "r": 8, "p": 1})
    seed_store(store, now)
    this = local_month(now, TZ)
    last = previous_month(this)
    # last month: a critical alarm acknowledged after 5 min (kept)
    start_last, _ = month_bounds_ns(last, TZ)
    old = _critical(store, f"{SITE}/{EV}/trip-old", start_last + 86400 * NS)
    offset[0] = start_last + 86400 * NS + 5 * MIN - time.time_ns()
    store.ack_alarm(old, "eng1")
    offset[0] = 0
    # this month: a critical alarm acknowledged after 40 min (missed)
    new = _critical(store, f"{SITE}/{EV}/trip-new", time.time_ns() - 40 * MIN)
    store.ack_alarm(new, "eng1")
    app = LiveApp(store, influx)
    archive = ReportArchive(tmp / "reports")
    start_this, _ = month_bounds_ns(this, TZ)
    archive.mark_sent(CUSTOMER, last, ["energy@acme.example"], start_this + 86400 * NS)
    app.server.config.app.state.report_archive = archive
    tokens = {u: store.issue_token(u, 3600)[0] for u in ("li.wei", "acme.user")}
    yield {"base": app.base, "store": store, "tokens": tokens, "this": this, "last": last, "new": new}
    app.stop()
    store.close()
    influx.close()


def _card(live, user: str, month: str) -> dict:
    r = httpx.get(f"{live['base']}/api/v1/commitments/{CUSTOMER}?month={month}",
                  headers={"Authorization": f"Bearer {live['tokens'][user]}"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_customer_sees_this_and_last_month_in_words_with_the_cases(live, page, lang):  # noqa: F811
    page.goto(f"{live['base']}/web/customer?lang={lang}#token={live['tokens']['acme.user']}")
    page.wait_for_selector("body[data-loaded='1']")
    page.wait_for_selector("#commitments:not([hidden])")
    this, last = _card(live, "acme.user", live["this"]), _card(live, "acme.user", live["last"])
    for which, card in (("this", this), ("last", last)):
        for c in card["commitments"]:
            row = page.locator(f"#commit-{which} tr[data-commitment='{c['id']}']")
            assert row.get_attribute("data-status") == c["status"]
            assert row.locator("td").nth(2).inner_text() == (c["status_zh"] if lang == "zh" else c["status_en"])
    ack_now = page.inner_text("#commit-this tr[data-commitment='ack-critical']")
    ref = f"告警 {live['new']}" if lang == "zh" else f"alarm {live['new']}"
    assert ref in ack_now and re.search(r"40\.0 (分钟|min)", ack_now)
    assert page.locator("#commit-last tr[data-commitment='ack-critical']").get_attribute("data-status") == "kept"
    assert page.locator("#commit-this tr[data-commitment='report']").get_attribute("data-status") == "kept"
    assert live["this"] in page.inner_text("#commitments h3 >> nth=0")
    assert page.locator("#letter button.letter").count() == 2
    with page.expect_download() as dl:
        page.locator("#letter button.letter").first.click()
    path = dl.value.path()
    assert dl.value.suggested_filename == f"commitments-{CUSTOMER}-zh.pdf"
    assert open(path, "rb").read(5) == b"%PDF-"
    shoot(page, f"commitments-{lang}")
    assert page.blocked == []


def test_manager_sees_missed_commitments_per_customer(live, page):  # noqa: F811
    page.goto(f"{live['base']}/web/manager?lang=en#token={live['tokens']['li.wei']}")
    page.wait_for_selector("body[data-loaded='1']")
    card = _card(live, "li.wei", live["this"])
    assert card["missed"] >= 1
    tile = page.inner_text(f"[data-customer-id='{CUSTOMER}']")
    assert re.search(rf"commitments missed this month\s+{card['missed']} of {len(card['commitments'])}", tile)
    year = live["this"][:4]
    with page.expect_download() as dl:
        page.click(f"[data-customer-id='{CUSTOMER}'] button.review")
    assert dl.value.suggested_filename == f"review-{CUSTOMER}-{year}-en.pdf"
    assert open(dl.value.path(), "rb").read(5) == b"%PDF-"
    shoot(page, "manager-commitments")
    assert page.blocked == []
