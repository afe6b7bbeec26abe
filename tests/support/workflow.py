"""Workflow-store test data shared by the test modules (a shared module, not a test module)."""

from __future__ import annotations

from pathlib import Path

from core.config import load_fleet
from core.model import AlarmEvent
from core.units import NS
from workflow import Store

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_767_225_600 * NS          # 2026-01-01T00:00:00Z
CHEAP = {"n": 2**10, "r": 8, "p": 1}


def seeded_store(url: str, clock) -> Store:
    """A store with the example fleet and one user of each role (two customer managers, two customers)."""
    s = Store(url, clock=clock, password_cost=CHEAP)
    s.seed_fleet(load_fleet(ROOT / "sites.example.toml"))
    s.create_user("admin1", "admin", password="admin-pass-1")
    s.create_user("eng1", "engineer", password="eng-pass-1", engineer_group="east")
    s.create_user("li.wei", "customer_manager", password="mgr-pass-1")
    s.create_user("zhang.min", "customer_manager", password="mgr-pass-2")
    s.create_user("acme.user", "customer", password="cust-pass-1", customer_id="acme")
    s.create_user("huadong.user", "customer", password="cust-pass-2", customer_id="huadong")
    return s


def ev(key="acme-plant1/acme-plant1-t1-temp/overtemp", severity="major", raised=T0, cleared=None,
       site="acme-plant1", device="acme-plant1-t1-temp", suppressed_by=None) -> AlarmEvent:
    return AlarmEvent(key=key, type=key.rsplit("/", 1)[-1], site_id=site, device_id=device, severity=severity,
                      raised_ns=raised, cleared_ns=cleared, message_zh="繞組溫度過高", message_en="winding hot",
                      evidence={"temp_c": 131.0}, suppressed_by=suppressed_by)
