"""Commitments API test helpers: the demo users' passwords, an app with a contracts folder, a late ack."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings
from core.units import NS
from reports.archive import ReportArchive
from support.workflow import T0, ev

ROOT = Path(__file__).resolve().parents[2]
PASSWORDS = {"admin1": "admin-pass-1", "li.wei": "mgr-pass-1", "zhang.min": "mgr-pass-2",
             "acme.user": "cust-pass-1", "huadong.user": "cust-pass-2"}
MONTH = "2026-01"


def _app(store, clock, contracts: Path, tmp_path: Path, **kw):
    settings = ApiSettings(escalate_every_s=kw.pop("every", 0), rate_limit=0, token_ttl_s=7 * 86400,
                           contracts_dir=str(contracts))
    app = create_app(settings, store=store, clock=clock, background=kw.pop("background", False))
    app.state.report_archive = ReportArchive(tmp_path / "reports")
    return app


def _login(client: TestClient) -> dict[str, dict[str, str]]:
    out = {}
    for user, pw in PASSWORDS.items():
        r = client.post("/api/v1/auth/token", json={"username": user, "password": pw})
        assert r.status_code == 200, r.text
        out[user] = {"Authorization": f"Bearer {r.json()['access_token']}"}
    return out


def _late_critical_ack(store, clock, minutes: float) -> int:
    clock.t = T0 + 3600 * NS
    store.record([ev(key="acme-plant1/acme-plant1-t1-temp/trip", severity="critical", raised=clock.t)])
    aid = next(a["id"] for a in store.alarms() if a["key"] == "acme-plant1/acme-plant1-t1-temp/trip")
    clock.advance(minutes * 60)
    store.ack_alarm(aid, "eng1")
    return aid
