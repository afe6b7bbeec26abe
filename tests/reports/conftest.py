"""Fixtures of the report tests: the synthetic month in a real influxd and a workflow store with its
alarms, orders and surveys (module-scoped: built once per test module that uses them)."""

from __future__ import annotations

import os

import pytest
from support.report_month import CUSTOMER, FEB10, MAR2, METER, SITE, fleet, synthetic_month, write_month
from support.waiting import Clock

from core.influx import InfluxClient
from core.model import AlarmEvent
from core.units import NS
from workflow import Store


@pytest.fixture(scope="module")
def month(influxd):
    """(client, data): the synthetic month written once for this module."""
    name = f"report_{os.getpid()}"
    influxd.create_database(name)
    client = InfluxClient(influxd.url, name)
    data = synthetic_month()
    write_month(client, data)
    yield client, data
    client.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Workflow store with one alarm raised and cleared, one order closed in time and one overdue."""
    clock = Clock(FEB10)
    s = Store(f"sqlite:///{tmp_path_factory.mktemp('wf') / 'wf.db'}", clock=clock,
              password_cost={"n": 2**10, "r": 8, "p": 1})
    s.seed_fleet(fleet())
    s.create_user("eng1", "engineer")
    key = f"{SITE}/{METER}/overvoltage"
    ev = AlarmEvent(key=key, type="overvoltage", site_id=SITE, device_id=METER, severity="major",
                    raised_ns=FEB10 + 11 * 3600 * NS, cleared_ns=None, message_zh="电压越限", message_en="overvoltage",
                    evidence={"voltage_v": 250.0})
    clock.t = FEB10 + 11 * 3600 * NS
    s.upsert_alarm_events([ev])
    alarm = s.alarms()[0]
    wo = s.create_work_order(site_id=SITE, title="overvoltage", severity="major", created_by="eng1",
                             alarm_id=alarm["id"], assignee="eng1")
    clock.advance(600)
    s.transition_work_order(wo["id"], "dispatched", "eng1")
    clock.advance(3600)
    s.transition_work_order(wo["id"], "on_site", "eng1")
    clock.advance(3600)
    s.transition_work_order(wo["id"], "resolved", "eng1", "tap changer reset")
    s.upsert_alarm_events([ev._replace(cleared_ns=clock())])
    s.transition_work_order(wo["id"], "closed", "eng1")
    clock.t = FEB10 + 2 * 86400 * NS
    s.create_work_order(site_id=SITE, title="meter display dark", severity="major", created_by="eng1")
    clock.t = FEB10 + 5 * 86400 * NS
    s.create_user("acme.buyer", "customer", customer_id=CUSTOMER)
    s.add_survey(CUSTOMER, "monthly_report", "2026-01", 4, "清楚", "acme.buyer")
    clock.advance(60)
    s.add_survey(CUSTOMER, "work_order", str(wo["id"]), 5, "fast", "acme.buyer")
    clock.t = MAR2                     # the second order was never dispatched: its response is late
    yield s
    s.close()
