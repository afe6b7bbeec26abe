"""The web application in a real browser (Playwright driving Debian's chromium), one test per role,
every non-loopback request blocked and counted; screenshots at 1400 px and 390 px into
var/screenshots/.  Plus /docs offline and no CDN address in the pages' sources.
"""

from __future__ import annotations

import os
import re
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import pytest
from support.report_month import CUSTOMER, EV, METER, OTHER_SITE, PV, SITE
from support.web_live import (
    CHROMIUM,
    LiveApp,
    month_data,
    seed_store,
    shoot,
    write_data,
)

from core.influx import InfluxClient
from workflow import Store

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian package chromium not installed")
ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "api" / "static" / "vendor"


@pytest.fixture(scope="module")
def live(influxd, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("webapp")
    db = f"webapp_{os.getpid()}"
    influxd.create_database(db)
    influx = InfluxClient(influxd.url, db)
    now = time.time_ns()
    data = month_data(now)
    write_data(influx, data)
    store = Store(f"sqlite:///{tmp / 'wf.db'}", password_cost={"n": 2**10, "r": 8, "p": 1})
    seeded = seed_store(store, now)
    tokens = {u: store.issue_token(u, 3600)[0] for u in ("boss", "eng1", "li.wei", "acme.user", "beta.user")}
    app = LiveApp(store, influx)
    yield {"base": app.base, "store": store, "tokens": tokens, "data": data, **seeded}
    app.stop()
    store.close()
    influx.close()


def open_as(page, live, path: str, user: str) -> None:
    page.goto(f"{live['base']}{path}#token={live['tokens'][user]}")
    page.wait_for_selector("body[data-loaded='1']")


# ---------------------------------------------------------------- offline assets


def test_docs_work_offline_and_no_page_names_a_cdn(live, page):
    assert (VENDOR / "echarts.min.js").is_file() and (VENDOR / "swagger-ui-bundle.js").is_file(), \
        "run scripts/bootstrap.sh (it fetches the pinned browser assets)"
    page.goto(f"{live['base']}/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30000)
    assert "/api/v1/alarms" in page.content()
    assert page.blocked == []
    sources = [*(ROOT / "api" / "templates" / "web").glob("*.html"), *(ROOT / "api" / "static").glob("*.js"),
               *(ROOT / "api" / "static").glob("*.css"), ROOT / "api" / "routes" / "web.py"]
    html = httpx.get(f"{live['base']}/docs").text
    for text in [p.read_text() for p in sources] + [html]:
        assert not re.search(r"https?://(?!127\.0\.0\.1|localhost)", text)
    license_ = httpx.get(f"{live['base']}/web/vendor/echarts.LICENSE")
    assert license_.status_code == 200 and "Apache License" in license_.text
    assert httpx.get(f"{live['base']}/web/vendor/..%2Fapp.js").status_code == 404


# ---------------------------------------------------------------- engineer


def test_engineer_alarm_to_closed_work_order_by_clicking(live, page):
    store = live["store"]
    alarm = next(a for a in store.alarms(open_only=True) if a["type"] == "overvoltage")
    critical = next(a for a in store.alarms(open_only=True) if a["severity"] == "critical")
    row = f"tr[data-alarm-id='{alarm['id']}']"
    open_as(page, live, "/web/console?lang=en", "eng1")
    assert page.title().startswith("(1) ")                       # the critical alarm counted in the tab title
    # the critical alarm's order opened by itself: no "Open work order" button, its number instead
    crow = f"tr[data-alarm-id='{critical['id']}']"
    assert page.locator(f"{crow} button.wo").count() == 0 and "order #" in page.locator(crow).inner_text()
    assert page.locator(f"{row} .sev").inner_text() == "major"
    assert "active, unacknowledged" in page.locator(f"{row} td.state").inner_text()
    assert "ACME 一厂" in page.locator(row).inner_text() and "Asia/Shanghai" in page.locator(row).inner_text()
    assert page.locator(f"{row} span[title='{SITE}']").count() == 1
    # detail: measured against the limit, and the channel's trend around the alarm from the series API
    page.click(f"{row} button.detail")
    page.wait_for_selector("#trend[data-points]")
    detail = page.locator("#detail").inner_text()
    assert "measured 231.0–254.0 V against the limits 213.9–246.1 V" in detail
    assert int(page.get_attribute("#trend", "data-points")) > 50
    assert page.locator("#trend canvas").count() >= 1
    shoot(page, "console-detail")
    # ack with a note
    page.fill(f"{row} input.note", "checked on site")
    page.click(f"{row} button.ack")
    page.wait_for_selector(f"{row} button.ack", state="detached")
    a = store.alarm(alarm["id"])
    assert a["acked"] and a["acked_by"] == "eng1" and a["ack_note"] == "checked on site"
    # open a work order: the button goes away once the order exists
    page.click(f"{row} button.wo")
    page.wait_for_selector(f"{row} button.wo", state="detached")
    (wo,) = [w for w in store.work_orders() if w["alarm_id"] == alarm["id"]]
    wrow = f"tr[data-wo-id='{wo['id']}']"
    assert page.locator(wrow).count() == 1 and "new" in page.locator(f"{wrow} td.state").inner_text()
    assert page.locator(f"{wrow} button.to-dispatched").is_disabled()     # dispatch needs an assignee
    page.select_option(f"{wrow} select.assignee", "eng2")
    page.click(f"{wrow} button.assign")
    page.wait_for_selector(f"{wrow} button.to-dispatched:not([disabled])")
    assert "Zhao Gong" in page.locator(wrow).inner_text()
    for to, word in (("dispatched", "dispatched"), ("on_site", "on site")):
        page.click(f"{wrow} button.to-{to}")
        expect(page.locator(f"{wrow} td.state")).to_have_text(word)
    page.fill(f"{wrow} input.note", "tap changer reset")
    page.click(f"{wrow} button.to-resolved")
    expect(page.locator(f"{wrow} td.state")).to_have_text("resolved")
    # closing needs the alarm cleared: refused and shown, then cleared by analytics and closed
    page.click(f"{wrow} button.to-closed")
    page.wait_for_selector("#error:not([hidden])")
    assert "409" in page.inner_text("#error")
    from core.model import AlarmEvent

    store.upsert_alarm_events([AlarmEvent(
        key=alarm["key"], type=alarm["type"], site_id=SITE, device_id=METER, severity="major",
        raised_ns=alarm["raised_ns"], cleared_ns=time.time_ns(), message_zh="", message_en="", evidence={})])
    page.click(f"{wrow} button.to-closed")
    page.wait_for_selector(wrow, state="detached")
    w = store.work_order(wo["id"])
    assert w["state"] == "closed" and w["resolution_note"] == "tap changer reset"
    log = [r["to_state"] for r in store.work_order_log(wo["id"])]
    assert [s for s in log if s] == ["new", "dispatched", "on_site", "resolved", "closed"][-len([s for s in log if s]):]
    overdue = f"tr[data-wo-id='{live['old_order']}']"
    assert page.locator(overdue).count() == 1 and OTHER_SITE in (page.get_attribute(f"{overdue} span[title]", "title"))
    shoot(page, "console")
    assert page.blocked == []


def test_engineer_shelves_with_reason_and_unshelves(live, page):
    store = live["store"]
    from core.model import AlarmEvent

    now = time.time_ns()
    store.upsert_alarm_events([AlarmEvent(
        key=f"{SITE}/{METER}/pf", type="power_factor_low", site_id=SITE, device_id=METER, severity="minor",
        raised_ns=now - 600 * 10**9, cleared_ns=None, message_zh="功率因数偏低", message_en="Low power factor",
        evidence={"pf": {"min": 0.82, "max": 0.86, "mean": 0.84}, "limit": 0.9})])
    alarm = next(a for a in store.alarms(open_only=True) if a["type"] == "power_factor_low")
    row = f"tr[data-alarm-id='{alarm['id']}']"
    open_as(page, live, "/web/console?lang=zh", "eng1")
    assert page.locator(f"{row} .sev").inner_text() == "次要"
    page.click(f"{row} button.shelve")                              # no reason: refused in the page
    assert "原因" in page.inner_text("#error")
    page.fill(f"{row} input.note", "capacitor bank under repair")
    page.select_option(f"{row} select.shelve-min", "120")
    page.click(f"{row} button.shelve")
    page.wait_for_selector(f"{row} button.unshelve")
    a = store.alarm(alarm["id"])
    assert a["state"] == "shelved" and a["shelve_reason"] == "capacitor bank under repair"
    assert 119 * 60 <= (a["shelved_until_ns"] - now) / 1e9 <= 121 * 60 + 60
    assert "已搁置" in page.locator(f"{row} td.state").inner_text()
    page.click(f"{row} button.unshelve")
    page.wait_for_selector(f"{row} button.shelve")
    assert store.alarm(alarm["id"])["state"] != "shelved"


def test_customer_is_sent_to_their_page(live, page):
    page.goto(f"{live['base']}/web/console#token={live['tokens']['acme.user']}")
    page.wait_for_url(re.compile(r"/web/customer"))


# ---------------------------------------------------------------- customer


def _since(t: np.ndarray, x: np.ndarray, t0_ns: int) -> float:
    """Counter increase [kWh] from the last sample before ``t0_ns`` to the last sample."""
    before = np.nonzero(t < t0_ns)[0][-1]
    return float(x[-1] - x[before]) / 1000.0


def test_site_dashboard_figures_follow_the_counters_and_the_tariff(live):
    c = httpx.Client(base_url=live["base"], headers={"Authorization": f"Bearer {live['tokens']['acme.user']}"})
    d = c.get(f"/api/v1/dashboard/sites/{SITE}").json()
    data = live["data"]
    _, meter, t = data[METER]
    day0, month0 = (int(datetime.fromisoformat(d[k]["start"]).timestamp()) * 10**9 for k in ("today", "month"))
    assert datetime.fromtimestamp(day0 / 1e9, ZoneInfo("Asia/Shanghai")).strftime("%H:%M") == "00:00"
    assert abs(d["today"]["kwh"] - _since(t, meter["energy_import"], day0)) < 0.05
    assert abs(d["month"]["kwh"] - _since(t, meter["energy_import"], month0)) < 0.05
    for m in (d["today"], d["month"]):            # every 元 figure is the sum of kWh × price lines
        assert m["yuan"] == pytest.approx(sum(p["yuan"] for p in m["periods"]), abs=0.005)
        for p in m["periods"]:
            assert p["yuan"] == pytest.approx(round(p["kwh"] * p["price_yuan_per_kwh"], 2), abs=0.005)
    assert sum(x["kwh"] for x in d["month"]["days"]) == pytest.approx(d["month"]["kwh"], abs=0.05 * len(d["month"]["days"]))
    _, pv, _ = data[PV]
    assert abs(d["pv"]["month"]["yield_kwh"] - _since(t, pv["energy_export"], month0)) < 0.05
    exported = _since(t, meter["energy_export"], month0)
    assert d["pv"]["month"]["self_consumption"] == pytest.approx(
        (d["pv"]["month"]["yield_kwh"] - exported) / d["pv"]["month"]["yield_kwh"], abs=1e-3)
    peak = np.max(meter["active_power"][t >= month0]) / 1000
    assert d["demand"]["contract_kw"] == 600 and 0.8 * peak <= d["demand"]["max_kw"] <= peak + 0.1
    # tenancy: another customer's site is 404, as is a missing one
    beta = {"Authorization": f"Bearer {live['tokens']['beta.user']}"}
    assert c.get(f"/api/v1/dashboard/sites/{SITE}", headers=beta).status_code == 404
    assert c.get("/api/v1/dashboard/sites/nowhere").status_code == 404


def test_customer_reads_cost_opens_charts_and_rates_an_order(live, page):
    store = live["store"]
    page.goto(f"{live['base']}/web/login?lang=en")
    page.wait_for_selector("body[data-ready='1']")
    shoot(page, "login")
    page.fill("input[name=username]", "acme.user")
    page.fill("input[name=password]", "acme-pass-1")
    page.click("#login button[type=submit]")
    page.wait_for_url(re.compile(r"/web/customer"))
    page.wait_for_selector("body[data-loaded='1']")
    d = httpx.get(f"{live['base']}/api/v1/dashboard/sites/{SITE}",
                  headers={"Authorization": f"Bearer {live['tokens']['acme.user']}"}).json()
    today = page.inner_text("#today")
    assert f"¥{d['today']['yuan']:,.2f}" in today and "kWh ×" in today
    # transformer insulation life used this month (load model from the meter), as the API gives it
    ag = httpx.get(f"{live['base']}/api/v1/sites/{SITE}/transformer-ageing",
                   headers={"Authorization": f"Bearer {live['tokens']['acme.user']}"}).json()
    (row,) = ag["transformers"]
    cells = page.inner_text(f"#ageing tr[data-transformer='{row['transformer']}']")
    assert f"{row['days_consumed']:,.2f}" in cells and f"{row['covered_days']:,.2f}" in cells
    assert int(page.get_attribute("#daily-chart", "data-days")) == len(d["month"]["days"]) >= 1
    assert page.get_attribute("#power-chart", "data-series") == "2" and page.locator("#power-chart canvas").count()
    charger = page.inner_text(f"[data-device-id='{EV}']")
    assert "charger status" in charger and ("Available" in charger or "Charging" in charger)
    assert "voltage L1" in page.inner_text(f"[data-device-id='{METER}']")
    assert OTHER_SITE not in page.content()
    # a closed order of theirs is rated from its row
    alarm = next(a for a in store.alarms() if a["site_id"] == SITE)
    w = store.create_work_order(site_id=SITE, title="Capacitor bank checked", severity="minor", created_by="eng1",
                                assignee="eng1")
    for to in ("dispatched", "on_site", "resolved", "closed"):
        store.transition_work_order(w["id"], to, "eng1", "done" if to == "resolved" else "")
    assert alarm is not None
    page.reload()
    page.wait_for_selector("body[data-loaded='1']")
    page.click(f"tr[data-wo-id='{w['id']}'] button.rate")
    assert page.input_value("#survey-month") == f"wo-{w['id']}"
    page.check("input[name=rating][value='5']")
    page.fill("#survey textarea", "fast and clear")
    page.click("#survey button[type=submit]")
    expect(page.locator("#survey-result")).to_have_text("Thank you for your rating!")
    (answer,) = store.surveys([CUSTOMER], kind="work_order")
    assert (answer["ref"], answer["rating"], answer["comment"]) == (str(w["id"]), 5, "fast and clear")
    shoot(page, "customer")
    assert page.blocked == []


# ---------------------------------------------------------------- export


def _get(live, user: str, path: str) -> httpx.Response:
    return httpx.get(f"{live['base']}/api/v1{path}", headers={"Authorization": f"Bearer {live['tokens'][user]}"},
                     timeout=30)


def _csv(r: httpx.Response) -> list[dict]:
    import csv
    import io

    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv") and r.content[:3] == b"\xef\xbb\xbf"
    return list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))


def _xlsx(r: httpx.Response) -> list[list]:
    import io

    from openpyxl import load_workbook

    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    return [list(row) for row in load_workbook(io.BytesIO(r.content), read_only=True).active.iter_rows(values_only=True)]


def test_exports_csv_and_xlsx_with_tenancy(live):
    store = live["store"]
    store.ack_alarm(next(a for a in store.alarms(open_only=True) if a["site_id"] == SITE)["id"], "eng1",
                    "=HYPERLINK(\"x\") staff only", None)
    staff = _csv(_get(live, "eng1", "/export/alarms?format=csv"))
    assert {r["site_id"] for r in staff} == {SITE} and len(staff) == len(store.alarms(limit=1000))
    assert any(r["ack_note"] == "'=HYPERLINK(\"x\") staff only" for r in staff)      # no formula runs
    mine = _csv(_get(live, "acme.user", "/export/alarms?format=csv"))
    assert len(mine) == len(staff) and all(r["ack_note"] == "" and r["acked_by"] == "" for r in mine)
    assert _csv(_get(live, "beta.user", "/export/alarms?format=csv")) == []
    assert _get(live, "beta.user", f"/export/alarms?site_id={SITE}").status_code == 404
    rows = _xlsx(_get(live, "eng1", "/export/workorders?format=xlsx"))
    assert rows[0][:4] == ["id", "site_id", "device_id", "alarm_id"]
    assert sorted(r[0] for r in rows[1:]) == sorted(w["id"] for w in store.work_orders(limit=1000))
    acme_orders = _xlsx(_get(live, "acme.user", "/export/workorders?format=xlsx"))
    assert {r[1] for r in acme_orders[1:]} == {SITE}
    series = _csv(_get(live, "acme.user", f"/export/telemetry/{METER}/series?channels=active_power,voltage_l1&format=csv"))
    api = _get(live, "acme.user", f"/telemetry/{METER}/series?channels=active_power,voltage_l1").json()
    assert len(series) == len(api["times"]) > 100 and list(series[0]) == ["time", "active_power", "voltage_l1"]
    assert float(series[5]["active_power"]) == pytest.approx(api["values"]["active_power"][5])
    assert _get(live, "beta.user", f"/export/telemetry/{METER}/series").status_code == 404
    assert _get(live, "eng1", "/export/alarms?format=pdf").status_code == 422
    store.add_survey(CUSTOMER, "monthly_report", "2026-02", 3, "@SUM(1) ok", "acme.user")
    surveys = _xlsx(_get(live, "li.wei", "/export/surveys?format=xlsx"))
    assert ["2026-02", 3, "'@SUM(1) ok"] in [r[3:6] for r in surveys[1:]]
    assert _get(live, "beta.user", f"/export/surveys?customer_id={CUSTOMER}").status_code == 404


def test_export_button_downloads_the_file(live, page, tmp_path):
    open_as(page, live, "/web/console?lang=en", "eng1")
    with page.expect_download() as dl:
        page.click("#exports .export-xlsx >> nth=1")              # work orders, Excel
    path = tmp_path / "wo.xlsx"
    dl.value.save_as(path)
    from openpyxl import load_workbook

    rows = list(load_workbook(path, read_only=True).active.iter_rows(values_only=True))
    assert rows[0][0] == "id" and len(rows) - 1 == len(live["store"].work_orders(limit=1000))
    assert dl.value.suggested_filename == "workorders.xlsx"


# ---------------------------------------------------------------- customer manager


def test_manager_sees_customers_and_opens_an_escalation(live, page):
    store = live["store"]
    critical = next(a for a in store.alarms() if a["severity"] == "critical")
    (wo,) = [w for w in store.work_orders() if w["alarm_id"] == critical["id"]]
    assert wo["owner"] == "li.wei"
    now = time.time_ns()
    store.db.run("UPDATE work_orders SET response_due_ns = ?, arrival_due_ns = ?, repair_due_ns = ? WHERE id = ?",
                 (now - 3600 * 10**9, now + 3600 * 10**9, now + 7200 * 10**9, wo["id"]))
    made = store.escalate_overdue()
    assert any(e["work_order_id"] == wo["id"] and e["notified"] == "li.wei" for e in made)
    page.goto(f"{live['base']}/web/login?lang=en")
    page.wait_for_selector("body[data-ready='1']")
    page.fill("input[name=username]", "li.wei")
    page.fill("input[name=password]", "li-wei-pass-1")
    page.click("#login button[type=submit]")
    page.wait_for_url(re.compile(r"/web/manager"))
    page.wait_for_selector("body[data-loaded='1']")
    tile = page.inner_text(f"[data-customer-id='{CUSTOMER}']")
    n_esc = len(store.escalations(work_order_id=wo["id"]))
    assert "ACME 精密机械" in tile and re.search(rf"escalations\s+{n_esc}\b", tile) and "(1 critical)" in tile
    assert re.search(r"open / overdue orders\s+1 / 1", tile)
    assert page.locator("[data-customer-id='beta']").count() == 0            # not one of li.wei's customers
    assert page.locator(f"#kpi tr[data-site-id='{SITE}'] td[class^='verdict-']").count() == 1
    assert "ACME 精密机械" in page.inner_text("#review tr.customer")          # the review names customers
    page.click(f"#escalations tr:has-text('#{wo['id']}') button.open")
    page.wait_for_selector(f"#order[data-wo-id='{wo['id']}']")
    order = page.inner_text("#order")
    assert "Charger faulted" in order and "late" in order and "overdue" in order
    shoot(page, "manager")
    assert page.blocked == []


# ---------------------------------------------------------------- fleet


def test_fleet_tiles_and_energy_flow(live, page):
    tiles = _get(live, "boss", "/dashboard/fleet").json()
    acme = next(t for t in tiles if t["site_id"] == SITE)
    assert acme["devices"] == 3 and acme["online"] == 3 and acme["alarms"].get("critical") == 1
    beta = next(t for t in tiles if t["site_id"] == OTHER_SITE)
    assert (beta["devices"], beta["online"], beta["today"]["kwh"]) == (1, 0, 0)   # it never sent data
    today = _get(live, "boss", f"/dashboard/sites/{SITE}").json()["today"]
    assert acme["today"]["kwh"] == today["kwh"] and acme["today"]["yuan"] == today["yuan"]
    assert [t["site_id"] for t in _get(live, "acme.user", "/dashboard/fleet").json()] == [SITE]
    flow = _get(live, "boss", f"/dashboard/sites/{SITE}/flow").json()
    links = {(x["source"], x["target"]): x["kw"] for x in flow["links"]}
    _, meter, _ = live["data"][METER]
    assert links[("grid", "acme-site-t1")] == pytest.approx(meter["active_power"][-1] / 1000, abs=0.01)
    assert (PV, "bus") in links and ("bus", EV) in links
    assert _get(live, "beta.user", f"/dashboard/sites/{SITE}/flow").status_code == 404
    assert _get(live, "acme.user", "/dashboard/customers").status_code == 403
    assert _get(live, "acme.user", "/dashboard/engineers").status_code == 403
    open_as(page, live, "/web/fleet?lang=en", "eng1")
    tile = page.inner_text(f".tile[data-site-id='{SITE}']")
    assert "3 / 3" in tile and "critical 1" in tile and f"¥{today['yuan']:,.2f}" in tile
    page.wait_for_selector("#flow[data-nodes] canvas")
    assert int(page.get_attribute("#flow", "data-nodes")) == len(flow["nodes"])
    shoot(page, "fleet")
    assert page.blocked == []
    page.goto(f"{live['base']}/web/fleet#token={live['tokens']['acme.user']}")
    page.wait_for_url(re.compile(r"/web/customer"))


def test_new_critical_alarm_is_announced_unless_muted(live, page):
    from core.model import AlarmEvent

    store = live["store"]
    open_as(page, live, "/web/console?lang=zh", "eng1")
    before = page.title()
    n0 = int(re.match(r"\((\d+)\)", before).group(1)) if before.startswith("(") else 0
    assert page.get_attribute("body", "data-announced") is None         # what was there at load is not news

    def raise_critical(key: str) -> None:
        store.upsert_alarm_events([AlarmEvent(
            key=key, type="transformer_overtemp", site_id=SITE, device_id=METER, severity="critical",
            raised_ns=time.time_ns(), cleared_ns=None, message_zh="绕组超温", message_en="Winding over-temperature",
            evidence={"temperature_c": {"max": 151.0}, "limit_c": 150})])

    raise_critical(f"{SITE}/{METER}/overtemp-a")
    page.click("#refresh")
    expect(page.locator("body")).to_have_attribute("data-announced", "1")
    assert page.title().startswith(f"({n0 + 1}) ")
    assert page.get_attribute("body", "data-beeps") == "1"            # the tone was played (WebAudio)
    page.click("#mute")
    assert page.inner_text("#mute") == "声音:关"
    raise_critical(f"{SITE}/{METER}/overtemp-b")
    page.click("#refresh")
    expect(page.locator("body")).to_have_attribute("data-announced", "2")
    assert page.get_attribute("body", "data-beeps") == "1"            # muted: no second tone
    assert page.title().startswith(f"({n0 + 2}) ")
    shoot(page, "console-zh")
    page.click("#mute")                                                 # leave sound on for the next test


def test_inspection_plan_and_results_recorded_in_the_console(live, page):
    store = live["store"]
    open_as(page, live, "/web/console?lang=en", "eng1")
    page.click("details summary")
    page.select_option("#plan-form select[name=site_id]", SITE)
    page.fill("#plan-form input[name=name]", "Monthly switchroom patrol")
    page.fill("#plan-form input[name=interval_days]", "30")
    page.fill("#plan-form input[name=checklist]", "busbar temperature, relay panel, fire extinguisher")
    page.click("#plan-form button[type=submit]")
    page.wait_for_selector("#inspections tr[data-inspection-id]")
    (plan,) = [p for p in store.inspection_plans() if p["name"] == "Monthly switchroom patrol"]
    assert plan["checklist"] == ["busbar temperature", "relay panel", "fire extinguisher"]
    row = page.locator("#inspections tr[data-inspection-id]").first
    iid = int(row.get_attribute("data-inspection-id"))
    row.locator("button.record").click()
    row.locator("input[name='relay panel']").uncheck()
    row.locator("input[name=note]").fill("relay panel door lock broken")
    row.locator("button[type=submit]").click()
    page.wait_for_selector(f"#inspections tr[data-inspection-id='{iid}']", state="detached")
    done = store.inspection(iid)
    assert done["state"] == "done" and done["engineer"] == "eng1" and done["note"] == "relay panel door lock broken"
    assert {k: v["ok"] for k, v in done["results"].items()} == {
        "busbar temperature": True, "relay panel": False, "fire extinguisher": True}
    assert page.blocked == []


def test_customer_page_in_chinese_shows_labels_and_states_in_words(live, page):
    open_as(page, live, "/web/customer?lang=zh", "acme.user")
    meter = page.inner_text(f"[data-device-id='{METER}']")
    assert "有功功率" in meter and "电压 L1" in meter and "kW" in meter and "电表" in meter
    charger = page.inner_text(f"[data-device-id='{EV}']")
    assert "充电桩状态" in charger and ("空闲" in charger or "充电中" in charger)
    today = page.inner_text("#today")
    assert "今日用电" in today and re.search(r"(谷|平|峰|尖峰)\s", today)
    assert "Asia/Shanghai" in page.inner_text("#demand")
    shoot(page, "customer-zh")
    assert page.blocked == []
