"""An open alarm's measured value reaches the store when it moves, not only when severity/suppression do."""

from __future__ import annotations

from support.workflow import T0

from analytics import alarms as al
from core.model import Finding

S = 10**9
KEY = "acme-plant1/acme-plant1-t1-meter/low_power_factor"


def _events(now_ns: int, pf: float) -> list:
    f = Finding(type="low_power_factor", site_id="acme-plant1", device_id="acme-plant1-t1-meter",
                start_ns=T0, end_ns=now_ns, severity="minor", evidence={"pf_mean": pf, "limit": 0.85},
                explanation_zh=f"功率因数 {pf:.2f}", explanation_en=f"Power factor {pf:.2f}")
    return al.findings_to_events([f], now_ns=now_ns)


def _stored(store) -> dict:
    [row] = [a for a in store.alarms(open_only=True) if a["key"] == KEY]
    return row


def test_a_moved_measurement_updates_the_stored_alarm(store):
    open_, done, sent_at = {}, {}, {}
    steps = [(10, 0.80, True),      # raise
             (15, 0.70, False),     # moved, but the last send was 5 s ago: held back
             (80, 0.70, True),      # a minute on: the new value is sent
             (150, 0.702, False),   # within the deadband: nothing to send
             (300, 0.50, True)]     # moved again
    for at_s, pf, expect_send in steps:
        now = T0 + at_s * S
        out, open_, done = al.reconcile(open_, _events(now, pf), now, done, last_sent=sent_at)
        assert bool(out) is expect_send, (at_s, pf, out)
        if out:
            store.record(out)
        assert _stored(store)["evidence"]["pf_mean"] == {10: 0.80, 15: 0.80, 80: 0.70, 150: 0.70, 300: 0.50}[at_s]
    assert _stored(store)["raised_ns"] == T0 and "0.50" in _stored(store)["message_en"]


def test_without_a_send_record_a_material_change_is_sent_at_once():
    now = T0 + 10 * S
    out, open_, done = al.reconcile({}, _events(now, 0.80), now)
    out, open_, done = al.reconcile(open_, _events(now + S, 0.60), now + S, done)
    assert [e.evidence["pf_mean"] for e in out] == [0.60] and open_[KEY].evidence["pf_mean"] == 0.60
    out, _, _ = al.reconcile(open_, _events(now + 2 * S, 0.601), now + 2 * S, done)
    assert out == []
