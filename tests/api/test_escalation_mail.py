"""Escalation e-mail (api/notify.py): overdue work orders are mailed to the customer manager (level 1)
and the admins (level 2) through a real aiosmtpd server on loopback, by the API's own background
sweep, with the store's controllable clock; SMTP down -> pending, retried, delivered exactly once;
a user without an address is recorded and visible, and mailed once an address is set."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support.smtp_sink import start_smtp
from support.waiting import Clock, wait_for

import workflow.db as store_mod
from api.auth import seed_demo_users
from api.main import create_app
from api.settings import ApiSettings
from core.config import load_fleet
from core.units import NS
from energyhost.devstack import free_port
from workflow import Store

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_767_225_600 * NS           # 2026-01-01 00:00 UTC = 08:00 Asia/Shanghai
CHEAP = {"n": 2**10, "r": 8, "p": 1}
SWEEP_S = 0.05


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Store (controllable clock) with the fleet and the demo users, SMTP settings pointing at a port."""
    clock = Clock(T0)
    store = Store(f"sqlite:///{tmp_path / 'wf.db'}", clock=clock, password_cost=CHEAP)
    fleet = load_fleet(ROOT / "sites.example.toml")
    store.seed_fleet(fleet)
    passwords = seed_demo_users(store, fleet, env={})
    port = free_port()
    monkeypatch.setenv("EH_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("EH_SMTP_PORT", str(port))
    monkeypatch.setenv("EH_SMTP_FROM", "alerts@energyhost.test")
    monkeypatch.setenv("EH_SMTP_TIMEOUT_S", "2")
    monkeypatch.setenv("EH_PUBLIC_URL", "https://ops.energyhost.test")
    app = create_app(ApiSettings(escalate_every_s=SWEEP_S, rate_limit=0), store=store, clock=clock)
    yield store, clock, app, port, passwords
    store.close()


def _token(c: TestClient, user: str, password: str) -> dict[str, str]:
    r = c.post("/api/v1/auth/token", json={"username": user, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_overdue_order_mails_manager_then_admins_once_each(env):
    store, clock, app, port, pw = env
    ctl, sink = start_smtp(port)
    try:
        wo = store.create_work_order(site_id="huadong-coldstore", title="compressor trip", severity="critical",
                                     created_by="engineer1")
        with TestClient(app) as c:                              # the lifespan runs the periodic sweep
            time.sleep(5 * SWEEP_S)
            assert sink.messages == []                           # not overdue yet: nobody is told
            clock.advance(15 * 60 + 61)                          # response limit 15 min, 61 s late
            assert wait_for(lambda: sink.to("zhang.min@example.invalid")), sink.messages
            [msg] = sink.to("zhang.min@example.invalid")
            assert sink.messages[0][0] == "alerts@energyhost.test"
            assert f"Work order #{wo['id']} overdue (response), escalation level 1" in msg["Subject"]
            assert msg["Message-ID"].startswith("<escalation-")
            body = msg.get_body(("plain",)).get_content()
            for text in (f"#{wo['id']} compressor trip", "huadong-coldstore", "Customer / 客户:     huadong",
                         "response (dispatch an engineer)", "2026-01-01 08:15:00 Asia/Shanghai",
                         "(2026-01-01 00:15:00 UTC)", "Overdue by / 超时:   1 min 1 s",
                         f"https://ops.energyhost.test/api/v1/workorders/{wo['id']}"):
                assert text in body, (text, body)
            [esc] = store.escalations(work_order_id=wo["id"])
            assert (esc["mail_state"], esc["mail_to"], esc["mail_attempts"]) == \
                ("sent", "zhang.min@example.invalid", 1)
            time.sleep(10 * SWEEP_S)                             # further sweeps: not sent again
            assert len(sink.messages) == 1
            clock.advance(15 * 60)                               # overdue by one more limit: the admins
            assert wait_for(lambda: sink.to("admin@example.invalid"))
            [adm] = sink.to("admin@example.invalid")
            assert "escalation level 2" in adm["Subject"]
            assert "level 2, admins" in adm.get_body(("plain",)).get_content()
            time.sleep(10 * SWEEP_S)
            assert [m[1] for m in sink.messages] == [["zhang.min@example.invalid"], ["admin@example.invalid"]]
            # visible through the API, with the delivery state
            got = c.get("/api/v1/workorders/escalations", headers=_token(c, "admin", pw["admin"])).json()
            mine = [(e["level"], e["notified"], e["mail_state"], e["mail_to"], e["mail_attempts"])
                    for e in got if e["work_order_id"] == wo["id"]]
            assert mine == [(1, "zhang.min", "sent", "zhang.min@example.invalid", 1),
                            (2, "admin", "sent", "admin@example.invalid", 1)]
            assert all(e["mail_sent_at"] for e in got if e["work_order_id"] == wo["id"])
    finally:
        ctl.stop()


def test_smtp_down_keeps_it_pending_then_delivers_exactly_once(env):
    store, clock, app, port, pw = env
    wo = store.create_work_order(site_id="acme-plant1", title="transformer overtemperature", severity="critical",
                                 created_by="engineer1")
    clock.advance(16 * 60)
    with TestClient(app) as c:                                  # nothing listens on the SMTP port
        assert wait_for(lambda: any(e["mail_attempts"] >= 2 for e in store.escalations(work_order_id=wo["id"])))
        [esc] = store.escalations(work_order_id=wo["id"])
        assert esc["mail_state"] == "pending" and esc["notified"] == "li.wei"
        assert f"127.0.0.1:{port}" in esc["mail_error"] and "failed" in esc["mail_error"]
        seen = c.get("/api/v1/workorders/escalations", headers=_token(c, "li.wei", pw["li.wei"])).json()
        assert [(e["mail_state"], e["mail_error"] != "") for e in seen] == [("pending", True)]
        ctl, sink = start_smtp(port)                                  # the server comes back
        try:
            assert wait_for(lambda: store.escalations(work_order_id=wo["id"])[0]["mail_state"] == "sent")
            time.sleep(10 * SWEEP_S)                             # many more sweeps
            assert [m[1] for m in sink.messages] == [["li.wei@example.invalid"]]
            [esc] = store.escalations(work_order_id=wo["id"])
            assert esc["mail_error"] == "" and esc["mail_attempts"] >= 3 and esc["mail_sent_ns"] == clock()
        finally:
            ctl.stop()


def test_user_without_address_is_recorded_visible_and_mailed_once_set(env):
    store, clock, app, port, pw = env
    ctl, sink = start_smtp(port)
    try:
        with TestClient(app) as c:
            admin = _token(c, "admin", pw["admin"])
            r = c.patch("/api/v1/users/li.wei", headers=admin, json={"email": "li.wei at example"})
            assert r.status_code == 422 and "email must be one address" in r.json()["detail"]
            r = c.patch("/api/v1/users/li.wei", headers=admin, json={"email": "ops@x.example\nBcc: evil@x.example"})
            assert r.status_code == 422
            assert c.patch("/api/v1/users/li.wei", headers=admin, json={"email": ""}).json()["email"] == ""
            wo = store.create_work_order(site_id="acme-office", title="door alarm", severity="critical",
                                         created_by="engineer1")
            clock.advance(16 * 60)
            assert wait_for(lambda: [e["mail_state"] for e in store.escalations(work_order_id=wo["id"])]
                              == ["no_address"])
            got = c.get("/api/v1/workorders/escalations", headers=admin, params={"notified": "li.wei"}).json()
            assert [(e["mail_state"], e["mail_error"]) for e in got] == \
                [("no_address", "user 'li.wei' has no e-mail address")]
            assert sink.messages == []
            r = c.patch("/api/v1/users/li.wei", headers=admin, json={"email": "li.wei@acme.example"})
            assert r.status_code == 200
            assert wait_for(lambda: sink.to("li.wei@acme.example"))
            time.sleep(10 * SWEEP_S)
            assert len(sink.messages) == 1
            assert store.escalations(work_order_id=wo["id"])[0]["mail_state"] == "sent"
    finally:
        ctl.stop()


def test_send_is_claimed_once_and_unconfigured_smtp_keeps_it_pending(env, monkeypatch):
    from api.notify import sweep_escalations

    store, clock, app, port, pw = env
    monkeypatch.delenv("EH_SMTP_HOST")
    wo = store.create_work_order(site_id="acme-plant1", title="x", severity="critical", created_by="engineer1")
    clock.advance(16 * 60)
    made = sweep_escalations(store)
    assert [(m["notified"], m["mail_state"], m["mail_attempts"]) for m in made] == [("li.wei", "pending", 0)]
    assert "EH_SMTP_HOST is not set" in made[0]["mail_error"]
    esc_id = made[0]["id"]
    assert store.claim_escalation_mail(esc_id) is True
    assert store.claim_escalation_mail(esc_id) is False           # a second sender keeps off
    clock.advance(301)                                             # the first died: its lease ran out
    assert store.claim_escalation_mail(esc_id) is True
    store.record_escalation_mail(esc_id, "sent", to="li.wei@example.invalid")
    assert store.claim_escalation_mail(esc_id) is False           # sent is final
    store.record_escalation_mail(esc_id, "pending", error="late failure report")
    assert store.escalations(work_order_id=wo["id"])[0]["mail_state"] == "sent"


def test_migration_marks_earlier_escalations_skipped(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    monkeypatch.setattr(store_mod, "MIGRATIONS", store_mod.MIGRATIONS[:2])
    old = Store(url, clock=Clock(T0), password_cost=CHEAP)
    # the registry and an order as schema 2 stored them (today's code writes columns of later migrations)
    old.db.run("INSERT INTO customers (id, name, created_ns) VALUES ('acme', 'ACME', ?)", (T0,))
    old.db.run("INSERT INTO sites (id, customer_id, name, created_ns) VALUES ('acme-plant1', 'acme', 'P1', ?)", (T0,))
    old.create_user("li.wei", "customer_manager", email="li.wei@example.invalid")
    wo = {"id": old.db.insert(
        "INSERT INTO work_orders (site_id, title, severity, state, created_ns, created_by, response_due_ns, "
        "arrival_due_ns, repair_due_ns, updated_ns) VALUES (?, 'x', 'critical', 'new', ?, 'system', ?, ?, ?, ?)",
        ("acme-plant1", T0, T0 + 900 * NS, T0 + 7200 * NS, T0 + 28800 * NS, T0))}
    old.db.run("INSERT INTO escalations (work_order_id, time_ns, stage, level, notified) VALUES (?, ?, ?, ?, ?)",
               (wo["id"], T0, "response", 1, "li.wei"))
    old.close()
    monkeypatch.undo()
    new = Store(url, clock=Clock(T0), password_cost=CHEAP)
    assert new.schema_version() >= 3
    [esc] = new.escalations()
    assert esc["mail_state"] == "skipped" and "before e-mail notification existed" in esc["mail_error"]
    assert new.escalation_mails_due() == []
    new.close()


def test_escalate_request_queues_the_mail_and_answers_at_once(env):
    """POST /workorders/escalate escalates and returns without sending: the e-mail waits as pending in
    the outbox (no attempt, no SMTP wait in the request) for the background sweep."""
    store, clock, app, port, pw = env
    wo = store.create_work_order(site_id="acme-plant1", title="breaker trip", severity="critical",
                                 created_by="engineer1")
    clock.advance(16 * 60)
    quiet = create_app(ApiSettings(escalate_every_s=0, rate_limit=0), store=store, clock=clock, background=False)
    with TestClient(quiet) as c:                           # no background sweep: nothing drains the outbox
        made = c.post("/api/v1/workorders/escalate", headers=_token(c, "admin", pw["admin"])).json()
    assert [(m["work_order_id"], m["notified"], m["mail_state"], m["mail_attempts"]) for m in made] == \
        [(wo["id"], "li.wei", "pending", 0)]             # queued, not tried inside the request
    assert store.escalations(work_order_id=wo["id"])[0]["mail_attempts"] == 0


def test_a_mail_failing_max_attempts_times_is_a_dead_letter_visible_in_the_api(env, monkeypatch):
    import api.notify as notify

    store, clock, app, port, pw = env
    monkeypatch.setattr(notify, "MAX_ATTEMPTS", 3)
    wo = store.create_work_order(site_id="acme-plant1", title="door alarm", severity="critical",
                                 created_by="engineer1")
    clock.advance(16 * 60)
    with TestClient(app) as c:                                  # nothing listens on the SMTP port
        assert wait_for(lambda: store.escalations(work_order_id=wo["id"])[0]["mail_state"] == "dead")
        time.sleep(10 * SWEEP_S)                                 # many more sweeps: never tried again
        [esc] = store.escalations(work_order_id=wo["id"])
        assert esc["mail_attempts"] == 3 and f"127.0.0.1:{port}" in esc["mail_error"]
        admin = _token(c, "admin", pw["admin"])
        dead = c.get("/api/v1/workorders/escalations", headers=admin, params={"mail_state": "dead"}).json()
        assert [(e["work_order_id"], e["mail_state"], e["mail_attempts"]) for e in dead] == [(wo["id"], "dead", 3)]
        assert c.get("/api/v1/workorders/escalations", headers=admin,
                     params={"mail_state": "sent"}).json() == []
