"""Workflow store: migrations, access, ISA-18.2 alarm states, work orders, escalation, inspections, surveys."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from waiting import Clock

from core.config import load_fleet
from core.model import AlarmEvent
from core.services import free_port
from core.store import (
    MIGRATIONS,
    Conflict,
    Invalid,
    NotFound,
    Store,
    TimeLimits,
    hash_password,
    month_bounds_ns,
    verify_password,
)

ROOT = Path(__file__).resolve().parents[1]
NS = 10**9
T0 = 1_767_225_600 * NS          # 2026-01-01T00:00:00Z
CHEAP = {"n": 2**10, "r": 8, "p": 1}


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


PG_BIN = Path("/usr/local/bin")
_pg_db = itertools.count(1)


class Postgres:
    """A real PostgreSQL server on a free loopback port, run as the ``postgres`` user in its own temp dir.

    Trust authentication on 127.0.0.1 only (a throw-away test cluster); stopped by its PID.
    """

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="eh-pg-"))
        os.chmod(self.dir, 0o755)
        shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def _as_postgres(self, *cmd: str) -> list[str]:
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *cmd]

    def start(self) -> Postgres:
        import psycopg

        data = self.dir / "data"
        subprocess.run(self._as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "eh",
                                         "--no-sync", "-E", "UTF8"), check=True, capture_output=True, timeout=120)
        self.proc = subprocess.Popen(
            self._as_postgres(str(PG_BIN / "postgres"), "-D", str(data), "-p", str(self.port), "-k", str(self.dir),
                              "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                              "-c", "full_page_writes=off"),
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "pg.log", "wb"))
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=1, autocommit=True) as c:
                    pid = c.execute("SELECT pg_backend_pid(), current_setting('data_directory')").fetchone()
                    assert pid[1] == str(data), f"another server answers on port {self.port}"
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"postgres did not start: {(self.dir / 'pg.log').read_text()[-2000:]}") from None
                time.sleep(0.1)
        return self

    def url(self, db: str) -> str:
        return f"postgresql://eh@127.0.0.1:{self.port}/{db}"

    def create_database(self) -> str:
        import psycopg

        name = f"t{next(_pg_db)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        return name

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)         # fast shutdown
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _postgres_available() -> bool:
    return (PG_BIN / "postgres").exists() and shutil.which("setpriv") is not None and os.geteuid() == 0


@pytest.fixture(scope="session")
def postgres():
    if not _postgres_available():
        pytest.skip("PostgreSQL binaries or root (to run them as user postgres) not available")
    pg = Postgres().start()
    yield pg
    pg.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'wf.db'}"
    pg = request.getfixturevalue("postgres")
    return pg.url(pg.create_database())


@pytest.fixture
def store(store_url, clock) -> Store:
    s = Store(store_url, clock=clock, password_cost=CHEAP)
    s.seed_fleet(load_fleet(ROOT / "sites.example.toml"))
    s.create_user("admin1", "admin", password="admin-pass-1")
    s.create_user("eng1", "engineer", password="eng-pass-1", engineer_group="east")
    s.create_user("li.wei", "customer_manager", password="mgr-pass-1")
    s.create_user("zhang.min", "customer_manager", password="mgr-pass-2")
    s.create_user("acme.user", "customer", password="cust-pass-1", customer_id="acme")
    s.create_user("huadong.user", "customer", password="cust-pass-2", customer_id="huadong")
    yield s
    s.close()


def ev(key="acme-plant1/acme-plant1-t1-temp/overtemp", severity="major", raised=T0, cleared=None,
       site="acme-plant1", device="acme-plant1-t1-temp", suppressed_by=None) -> AlarmEvent:
    return AlarmEvent(key=key, type=key.rsplit("/", 1)[-1], site_id=site, device_id=device, severity=severity,
                      raised_ns=raised, cleared_ns=cleared, message_zh="繞組溫度過高", message_en="winding hot",
                      evidence={"temp_c": 131.0}, suppressed_by=suppressed_by)


def test_postgres_migrations_recorded_once(postgres, clock):
    url = postgres.url(postgres.create_database())
    s = Store(url, clock=clock)
    assert s.db.dialect == "postgresql" and s.schema_version() == len(MIGRATIONS)
    s.close()
    again = Store(url, clock=clock)
    assert again.schema_version() == len(MIGRATIONS)
    assert again.db.one("SELECT COUNT(*) AS n FROM schema_version")["n"] == len(MIGRATIONS)
    again.close()


def test_migrations_recorded_wal_and_foreign_keys(tmp_path, clock):
    path = tmp_path / "m.db"
    s = Store(f"sqlite:///{path}", clock=clock)
    assert s.schema_version() == len(MIGRATIONS)
    s.close()
    again = Store(f"sqlite:///{path}", clock=clock)        # re-opening applies nothing twice
    assert again.schema_version() == len(MIGRATIONS)
    again.close()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [v for v, in con.execute("SELECT version FROM schema_version ORDER BY version")] == \
        list(range(1, len(MIGRATIONS) + 1))
    con.close()
    with pytest.raises(Invalid, match="sqlite:///"):
        Store("mysql://x", clock=clock)


def test_seed_is_idempotent_and_keeps_edits(store):
    store.update_site("acme-plant1", name="Plant One (edited)")
    again = store.seed_fleet(load_fleet(ROOT / "sites.example.toml"))
    assert again == {"customers": 0, "sites": 0, "devices": 0}
    assert store.site("acme-plant1")["name"] == "Plant One (edited)"
    assert len(store.devices(site_id="acme-plant1")) == 12


def test_password_hash_and_tokens(store, clock):
    h = hash_password("s3cret-pass", n=2**10, r=8, p=1)
    assert h.startswith("scrypt$1024$8$1$") and verify_password("s3cret-pass", h)
    assert not verify_password("s3cret-pasS", h) and not verify_password("x", "md5$abc")
    assert store.authenticate("eng1", "eng-pass-1")["role"] == "engineer"
    assert store.authenticate("eng1", "wrong") is None and store.authenticate("nobody", "x") is None
    token, exp = store.issue_token("eng1", ttl_s=60)
    assert store.user_for_token(token)["id"] == "eng1"
    clock.advance(61)
    assert store.user_for_token(token) is None               # expired
    token2, _ = store.issue_token("eng1", ttl_s=60)
    store.revoke_token(token2)
    assert store.user_for_token(token2) is None
    key, info = store.create_api_key("eng1", "analytics job", ttl_s=3600)
    assert store.user_for_api_key(key)["id"] == "eng1"
    assert store.user_for_api_key(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    store.revoke_api_key(info["key_id"])
    assert store.user_for_api_key(key) is None
    store.update_user("eng1", active=False)
    assert store.authenticate("eng1", "eng-pass-1") is None


def test_customer_user_needs_customer(store):
    with pytest.raises(Invalid, match="customer_id"):
        store.create_user("c2", "customer")
    with pytest.raises(NotFound, match="nope"):
        store.create_user("c2", "customer", customer_id="nope")
    with pytest.raises(Invalid, match="role"):
        store.create_user("c2", "root")


def test_allowed_sites_per_role(store):
    assert store.allowed_sites(store.user("eng1")) == (None, None)
    assert store.allowed_sites(store.user("acme.user")) == (frozenset({"acme"}),
                                                            frozenset({"acme-plant1", "acme-office"}))
    assert store.allowed_sites(store.user("zhang.min"))[1] == frozenset({"huadong-coldstore"})


def test_alarm_isa_18_2_lifecycle(store, clock):
    out = store.upsert_alarm_events([ev()])
    assert out["raised"] == 1
    a = store.alarms(open_only=True)[0]
    assert a["state"] == "active-unacked" and a["evidence"] == {"temp_c": 131.0}
    assert store.upsert_alarm_events([ev()])["unchanged"] == 1          # resend: no change
    clock.advance(60)
    store.upsert_alarm_events([ev(cleared=T0 + 50 * NS)])
    assert store.alarm(a["id"])["state"] == "rtn-unacked"               # cleared but not acked: still open
    clock.advance(60)
    store.upsert_alarm_events([ev(raised=T0 + 100 * NS)])               # re-alarm reuses the open record
    a2 = store.alarm(a["id"])
    assert a2["state"] == "active-unacked" and a2["activations"] == 2
    store.ack_alarm(a["id"], "eng1", "checking fans")
    assert store.alarm(a["id"])["state"] == "active-acked"
    with pytest.raises(Conflict, match="already acknowledged"):
        store.ack_alarm(a["id"], "eng1")
    store.upsert_alarm_events([ev(raised=T0 + 100 * NS, cleared=T0 + 200 * NS)])
    assert store.alarm(a["id"])["state"] == "cleared"
    # a new raise after close opens a new record: still at most one open per key
    store.upsert_alarm_events([ev(raised=T0 + 300 * NS)])
    assert len(store.alarms(open_only=True)) == 1 and len(store.alarms()) == 2
    actions = [x["action"] for x in store.alarm_audit(a["id"])]
    assert actions == ["raise", "clear", "reactivate", "ack", "clear"]


def test_rtn_unacked_closes_on_ack(store):
    store.upsert_alarm_events([ev(raised=T0, cleared=T0 + NS)])         # a whole episode in one event
    a = store.alarms()[0]
    assert a["state"] == "rtn-unacked"
    assert store.ack_alarm(a["id"], "eng1")["state"] == "cleared"


def test_shelving_expires_and_is_bounded(store, clock):
    store.upsert_alarm_events([ev()])
    aid = store.alarms()[0]["id"]
    with pytest.raises(Invalid, match="reason"):
        store.shelve_alarm(aid, "eng1", clock() + 3600 * NS, " ")
    with pytest.raises(Invalid, match="8 h"):
        store.shelve_alarm(aid, "eng1", clock() + 9 * 3600 * NS, "maintenance")
    store.shelve_alarm(aid, "eng1", clock() + 3600 * NS, "fan replacement")
    assert store.alarm(aid)["state"] == "shelved"
    assert [a["id"] for a in store.alarms(state="shelved")] == [aid]
    clock.advance(3601)
    assert store.alarm(aid)["state"] == "active-unacked"                # shelve expired by itself
    assert store.alarm_audit(aid)[-1]["note"] == "fan replacement"


def test_suppressed_by_design(store):
    comms = "acme-plant1/acme-plant1-t1-temp/comms_lost"
    store.upsert_alarm_events([ev(key=comms, severity="major"), ev(suppressed_by=comms)])
    st = {a["key"]: a["state"] for a in store.alarms()}
    assert st[comms] == "active-unacked"
    assert st["acme-plant1/acme-plant1-t1-temp/overtemp"] == "suppressed-by-design"
    store.upsert_alarm_events([ev(key=comms, cleared=T0 + 10 * NS)])
    st = {a["key"]: a["state"] for a in store.alarms()}
    assert st["acme-plant1/acme-plant1-t1-temp/overtemp"] == "active-unacked"


def test_critical_alarm_opens_work_order_once(store, clock):
    out = store.upsert_alarm_events([ev(severity="critical")])
    assert out["work_orders"] == 1
    wo = store.work_orders()[0]
    assert wo["owner"] == "li.wei" and wo["state"] == "new" and wo["created_by"] == "system"
    assert wo["response_due_ns"] == clock() + 15 * 60 * NS and wo["repair_due_ns"] == clock() + 8 * 3600 * NS
    store.upsert_alarm_events([ev(severity="critical", cleared=T0 + NS)])
    store.ack_alarm(wo["alarm_id"], "eng1")
    store.upsert_alarm_events([ev(severity="critical", raised=T0 + 5 * NS)])   # new record, order still open
    assert len(store.work_orders()) == 1


def test_work_order_transitions_and_closing_rules(store, clock):
    store.upsert_alarm_events([ev(severity="major")])
    alarm = store.alarms()[0]
    wo = store.create_work_order(site_id="acme-plant1", title="hot winding", severity="major",
                                 created_by="eng1", alarm_id=alarm["id"])
    with pytest.raises(Conflict, match="already has an open work order"):
        store.create_work_order(site_id="acme-plant1", title="x", severity="major", created_by="eng1",
                                alarm_id=alarm["id"])
    with pytest.raises(Conflict, match="assign an engineer"):
        store.transition_work_order(wo["id"], "dispatched", "eng1")
    with pytest.raises(Invalid, match="not an active engineer"):
        store.assign_work_order(wo["id"], "acme.user", "eng1")
    store.assign_work_order(wo["id"], "eng1", "li.wei")
    with pytest.raises(Conflict, match="cannot go from 'new' to 'on_site'"):
        store.transition_work_order(wo["id"], "on_site", "eng1")
    clock.advance(600)
    store.transition_work_order(wo["id"], "dispatched", "eng1")
    clock.advance(3600)
    store.transition_work_order(wo["id"], "on_site", "eng1")
    clock.advance(3600)
    store.transition_work_order(wo["id"], "resolved", "eng1")
    with pytest.raises(Conflict, match="resolution note"):
        store.transition_work_order(wo["id"], "closed", "eng1")
    with pytest.raises(Conflict, match="still active"):
        store.transition_work_order(wo["id"], "closed", "eng1", "replaced fan")
    store.upsert_alarm_events([ev(severity="major", cleared=clock())])
    w = store.transition_work_order(wo["id"], "closed", "eng1", "replaced fan")
    assert w["state"] == "closed" and w["resolution_note"] == "replaced fan" and w["in_time"] is True
    assert w["dispatched_by"] == "eng1" and w["dispatched_ns"] == T0 + 600 * NS
    log = store.work_order_log(wo["id"])
    assert [(x["action"], x["to_state"]) for x in log] == [
        ("create", "new"), ("assign", None), ("transition", "dispatched"), ("transition", "on_site"),
        ("transition", "resolved"), ("transition", "closed")]


def test_escalation_with_controllable_clock(store, clock):
    wo = store.create_work_order(site_id="huadong-coldstore", title="compressor trip", severity="critical",
                                 created_by="eng1")
    assert store.escalate_overdue() == []
    clock.advance(15 * 60 + 1)                                  # response limit 15 min passed
    made = store.escalate_overdue()
    assert [(m["level"], m["notified"], m["stage"]) for m in made] == [(1, "zhang.min", "response")]
    assert store.escalate_overdue() == []                       # once per stage and level
    assert store.work_order(wo["id"])["overdue"] is True
    clock.advance(15 * 60)                                      # overdue by one more limit: admins
    made = store.escalate_overdue()
    assert [(m["level"], m["notified"]) for m in made] == [(2, "admin1")]
    assert store.work_order(wo["id"])["escalation_level"] == 2
    store.assign_work_order(wo["id"], "eng1", "zhang.min")
    store.transition_work_order(wo["id"], "dispatched", "eng1")
    w = store.work_order(wo["id"])
    assert w["response_ok"] is False and w["stage"] == "arrival" and w["overdue"] is False
    review = store.weekly_review(T0)
    assert review["total"]["open"] == 1 and review["by_customer"]["huadong"]["open"] == 1
    comp = store.customer_work_orders("huadong", *month_bounds_ns("2026-01"))["compliance"]
    assert comp["response"] == {"in_time": 0, "late": 1, "pending": 0, "ratio": 0.0}


def test_time_limits_from_toml(tmp_path):
    p = tmp_path / "limits.toml"
    p.write_text("admin_factor = 0.5\n[critical]\nresponse_min = 5\narrival_min = 60\nrepair_min = 240\n")
    tl = TimeLimits.from_toml(p)
    assert tl.limits["critical"].response_s == 300 and tl.admin_factor == 0.5
    p.write_text("[urgent]\nresponse_min = 5\n")
    with pytest.raises(Invalid, match="urgent"):
        TimeLimits.from_toml(p)


def test_inspections_missed_and_recorded(store, clock):
    plan = store.create_inspection_plan("acme-plant1", "weekly patrol", 7 * 86400,
                                        ["transformer temperature", "cabinet doors"], T0 + 86400 * NS, "eng1")
    assert plan["checklist"] == ["transformer temperature", "cabinet doors"]
    clock.advance(3 * 86400)                                    # due day 1, grace 1 day: missed at day 2
    assert store.refresh_inspections() == 1
    items = store.inspections(site_id="acme-plant1")
    assert [i["state"] for i in items] == ["scheduled", "missed"]
    with pytest.raises(Invalid, match="missing"):
        store.record_inspection(items[0]["id"], "eng1", {"cabinet doors": {"ok": True}})
    done = store.record_inspection(items[0]["id"], "eng1", {"cabinet doors": {"ok": True, "note": ""},
                                                            "transformer temperature": {"ok": False,
                                                                                        "note": "95 C"}})
    assert done["state"] == "done" and done["engineer"] == "eng1"
    assert len(store.inspections(state="scheduled")) == 1


def test_surveys(store):
    wo = store.create_work_order(site_id="acme-office", title="meter offline", severity="minor", created_by="eng1",
                                 assignee="eng1")
    with pytest.raises(Conflict, match="not closed"):
        store.add_survey("acme", "work_order", str(wo["id"]), 5, "", "acme.user")
    with pytest.raises(NotFound):
        store.add_survey("huadong", "work_order", str(wo["id"]), 5, "", "huadong.user")
    for st in ("dispatched", "on_site", "resolved"):
        store.transition_work_order(wo["id"], st, "eng1", "reset gateway" if st == "resolved" else "")
    store.transition_work_order(wo["id"], "closed", "eng1")
    store.add_survey("acme", "work_order", str(wo["id"]), 4, "fast", "acme.user")
    store.add_survey("acme", "monthly_report", "2026-01", 2, "unclear", "acme.user")
    with pytest.raises(Invalid, match="1..5"):
        store.add_survey("acme", "monthly_report", "2026-02", 6, "", "acme.user")
    with pytest.raises(Conflict, match="already answered"):
        store.add_survey("acme", "monthly_report", "2026-01", 3, "", "acme.user")
    res = store.survey_results(["acme"])
    assert res["count"] == 2 and res["mean_rating"] == 3.0 and res["distribution"]["4"] == 1
    assert res["by_kind"]["work_order"]["mean_rating"] == 4.0
    assert store.survey_results(["huadong"])["count"] == 0


def test_month_bounds():
    start, end = month_bounds_ns("2026-01", "Asia/Shanghai")
    assert start == T0 - 8 * 3600 * NS and end - start == 31 * 86400 * NS
    with pytest.raises(Invalid, match="YYYY-MM"):
        month_bounds_ns("2026-13")


def test_two_instances_on_postgres_keep_one_open_alarm_per_key(postgres):
    """Two stores (two API/analytics instances) racing on the same alarm keys and work order."""
    import threading

    url = postgres.url(postgres.create_database())
    clock = Clock(T0)
    a = Store(url, clock=clock, password_cost=CHEAP)
    b = Store(url, clock=clock, password_cost=CHEAP)
    a.seed_fleet(load_fleet(ROOT / "sites.example.toml"))
    a.create_user("eng1", "engineer", password="eng-pass-1")
    events = [ev(key=f"acme-plant1/d/k{i}", severity="critical") for i in range(30)]
    errors: list[BaseException] = []

    def push(s: Store) -> None:
        try:
            for _ in range(3):
                s.upsert_alarm_events(events)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(s,)) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(a.alarms(open_only=True, limit=1000)) == 30
    assert len(b.work_orders(limit=1000)) == 30              # one automatic order per critical alarm
    wo = a.work_orders(limit=1)[0]
    a.assign_work_order(wo["id"], "eng1", "eng1")
    results: list[str] = []

    def dispatch(s: Store) -> None:
        try:
            s.transition_work_order(wo["id"], "dispatched", "eng1")
            results.append("ok")
        except Conflict:
            results.append("conflict")

    threads = [threading.Thread(target=dispatch, args=(s,)) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == ["conflict", "ok"]
    assert [x["to_state"] for x in a.work_order_log(wo["id"]) if x["action"] == "transition"] == ["dispatched"]
    a.close()
    b.close()


def test_migration_from_version_1_applies_only_the_new_steps(tmp_path, clock):
    """A database created by schema 1 is upgraded in place, its data kept."""
    import core.store as cs

    path = tmp_path / "old.db"
    saved = cs.MIGRATIONS
    try:
        cs.MIGRATIONS = saved[:1]
        old = Store(f"sqlite:///{path}", clock=clock)
        old.create_customer("c1", "Customer 1")
        assert old.schema_version() == 1
        old.close()
    finally:
        cs.MIGRATIONS = saved
    new = Store(f"sqlite:///{path}", clock=clock)
    assert new.schema_version() == len(MIGRATIONS) and new.customer("c1")["name"] == "Customer 1"
    assert new.db.one("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'alarms_raised'")
    new.close()


def test_follower_severity_and_evidence_updates_reach_the_store(store, clock):
    """The follower re-sends an open alarm with its first raise time when severity or evidence change.

    A dry-type transformer trends towards 150 °C (major), then reaches 165 °C with its trip bit
    set (critical): the store must take the new severity and evidence and start what a new
    critical alarm starts (automatic work order, response clock, escalation).
    """
    from analytics.alarms import reconcile

    key = "acme-plant1/acme-plant1-t1-temp/overtemp"
    trend = ev(severity="major")._replace(evidence={"temp_c": 80.7, "forecast_c": 150.0})
    send, open_, done = reconcile({}, [trend], T0)
    store.upsert_alarm_events(send)
    assert store.work_orders() == []
    clock.advance(600)
    hot = trend._replace(severity="critical", evidence={"temp_c": 165.0, "trip": 1})
    send, open_, done = reconcile(open_, [hot], clock(), done)
    assert [(e.raised_ns, e.severity) for e in send] == [(T0, "critical")]       # same activation, new severity
    out = store.upsert_alarm_events(send)
    assert out["updated"] == 1 and out["work_orders"] == 1
    a = store.alarms(open_only=True)[0]
    assert (a["key"], a["severity"], a["evidence"], a["activations"]) == (key, "critical",
                                                                         {"temp_c": 165.0, "trip": 1}, 1)
    wo = store.work_orders()[0]
    assert (wo["alarm_id"], wo["severity"], wo["created_by"]) == (a["id"], "critical", "system")
    assert wo["response_due_ns"] == clock() + 15 * 60 * NS                       # the critical response clock
    clock.advance(15 * 60 + 1)
    assert [(m["level"], m["notified"]) for m in store.escalate_overdue()] == [(1, "li.wei")]
    # severity down and a new evidence reach the store too; the order stays open
    cooler = trend._replace(severity="minor", evidence={"temp_c": 120.0})
    assert store.upsert_alarm_events([cooler])["updated"] == 1
    assert store.alarm(a["id"])["severity"] == "minor" and store.alarm(a["id"])["evidence"] == {"temp_c": 120.0}
    assert store.upsert_alarm_events([cooler._replace(evidence={"temp_c": 118.5})])["updated"] == 1
    assert store.alarm(a["id"])["evidence"] == {"temp_c": 118.5}
    assert store.upsert_alarm_events([cooler._replace(evidence={"temp_c": 118.5})])["unchanged"] == 1
    assert len(store.work_orders()) == 1
    upd = [x for x in store.alarm_audit(a["id"]) if x["action"] == "update"]
    assert [x["detail"].get("severity") for x in upd] == [["major", "critical"], ["critical", "minor"], None]
    # the clear with the original raise time still closes the activation
    store.upsert_alarm_events([cooler._replace(cleared_ns=clock())])
    assert store.alarm(a["id"])["state"] == "rtn-unacked"


def test_critical_alarm_released_from_suppression_opens_its_work_order(store, clock):
    comms = "acme-plant1/acme-plant1-t1-temp/comms_lost"
    out = store.upsert_alarm_events([ev(key=comms), ev(severity="critical", suppressed_by=comms)])
    assert out["work_orders"] == 0                                   # suppressed by design: no order yet
    out = store.upsert_alarm_events([ev(key=comms, cleared=T0 + 10 * NS)])
    assert out["work_orders"] == 1
    assert [w["severity"] for w in store.work_orders()] == ["critical"]
