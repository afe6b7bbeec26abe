"""The alarm store against a simple model, in any order of events and operator actions (hypothesis).

Rules: raise (a new activation), update of severity or evidence of the current activation
(what the follower sends with the first raise time), clear, shelve, unshelve, acknowledge,
comms loss (a comms alarm that suppresses the device's alarms by design, and its return),
the clock running on (a shelve expires), and a follower restart that replays every event
sent so far.  After every step the store must agree with the model on each key: open or not,
ISA-18.2 state, severity, evidence, suppression, activations; at most one open alarm per key;
and an automatic work order exactly for the keys whose open alarm was ever critical and not
suppressed.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from support.waiting import Clock
from support.workflow import CHEAP, NS, T0

from core.model import AlarmEvent
from workflow import Conflict, Store
from workflow.vocab import SEVERITIES

COMMS = "s1/gw1/comms_loss"
DEVICE_KEYS = ("s1/t1/overtemp", "s1/t2/overload")
KEYS = (*DEVICE_KEYS, COMMS)


@dataclass
class Model:
    """What the store should hold for one key's open alarm."""

    open: bool = False
    active: bool = False
    acked: bool = False
    raised_ns: int = 0
    severity: str = "major"
    evidence: dict | None = None
    suppressed_by: str | None = None
    shelved_until: int | None = None
    activations: int = 0
    work_order: bool = False             # the key has (had) its automatic work order

    def state(self, now: int) -> str:
        if not self.open:
            return "cleared"
        if self.shelved_until is not None and self.shelved_until > now:
            return "shelved"
        if self.suppressed_by is not None and self.active:
            return "suppressed-by-design"
        if self.active:
            return "active-acked" if self.acked else "active-unacked"
        return "rtn-unacked"


class AlarmStoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock(T0)
        self.store = Store("sqlite:///:memory:", clock=self.clock, password_cost=CHEAP)
        self.store.create_customer("c1", "Customer 1", manager="mgr1")
        self.store.create_site("s1", "c1", "Site 1")
        self.model = {k: Model() for k in KEYS}
        self.sent: list[AlarmEvent] = []

    def teardown(self) -> None:
        self.store.close()

    # ------------------------------------------------------------------ helpers
    def _event(self, key: str, cleared_ns: int | None = None) -> AlarmEvent:
        m = self.model[key]
        return AlarmEvent(key=key, type=key.rsplit("/", 1)[1], site_id="s1", device_id=key.split("/")[1],
                          severity=m.severity, raised_ns=m.raised_ns, cleared_ns=cleared_ns, message_zh="告警",
                          message_en="alarm", evidence=dict(m.evidence or {}), suppressed_by=m.suppressed_by)

    def _send(self, *events: AlarmEvent) -> None:
        self.store.upsert_alarm_events(list(events))
        self.sent.extend(events)
        self._work_order_rule()

    def _work_order_rule(self) -> None:
        for m in self.model.values():
            if m.open and m.severity == "critical" and m.suppressed_by is None:
                m.work_order = True

    def _suppression(self, key: str) -> str | None:
        comms = self.model[COMMS]
        return COMMS if key != COMMS and comms.open and comms.active else None

    def _tick(self) -> None:
        self.clock.advance(1)

    # ------------------------------------------------------------------ rules
    @rule(key=st.sampled_from(KEYS), severity=st.sampled_from(SEVERITIES), value=st.integers(0, 3))
    def raise_or_update(self, key: str, severity: str, value: int) -> None:
        """A raise when the condition is not active; else an update of the current activation."""
        self._tick()
        m = self.model[key]
        if not (m.open and m.active):
            m.raised_ns, m.active, m.acked = self.clock(), True, False
            m.activations = m.activations + 1 if m.open else 1
            m.open = True
        m.severity, m.evidence, m.suppressed_by = severity, {"v": value}, self._suppression(key)
        self._send(self._event(key))

    @rule(key=st.sampled_from(DEVICE_KEYS))
    def clear(self, key: str) -> None:
        self._clear(key)

    def _clear(self, key: str) -> None:
        m = self.model[key]
        if not (m.open and m.active):
            return
        self._tick()
        now = self.clock()
        ev = self._event(key, cleared_ns=now)
        m.active = False
        if m.acked or m.suppressed_by is not None or (m.shelved_until or 0) > now:
            m.open, m.shelved_until = False, None
        self._send(ev)

    @rule()
    def comms_loss(self) -> None:
        """The gateway goes silent: its comms alarm, and the follower marks the device alarms suppressed."""
        comms = self.model[COMMS]
        if comms.open and comms.active:
            return
        self.raise_or_update(COMMS, "major", 0)
        for k in DEVICE_KEYS:
            m = self.model[k]
            if m.open and m.active and m.suppressed_by is None:
                m.suppressed_by = COMMS
                self._send(self._event(k))

    @rule()
    def comms_back(self) -> None:
        """The gateway answers again: the store releases the suppressed alarms; the follower sends them too."""
        if not (self.model[COMMS].open and self.model[COMMS].active):
            return
        released = [k for k in DEVICE_KEYS if self.model[k].open and self.model[k].suppressed_by == COMMS]
        for k in released:
            self.model[k].suppressed_by = None
        self._clear(COMMS)
        self._send(*[self._event(k) for k in released if self.model[k].active])

    @rule(key=st.sampled_from(KEYS), minutes=st.integers(1, 480))
    def shelve(self, key: str, minutes: int) -> None:
        m = self.model[key]
        aid = self._open_id(key)
        until = self.clock() + minutes * 60 * NS
        if aid is None:
            return
        self.store.shelve_alarm(aid, "eng1", until, "maintenance")
        m.shelved_until = until

    @rule(key=st.sampled_from(KEYS))
    def unshelve(self, key: str) -> None:
        m = self.model[key]
        aid = self._open_id(key)
        if aid is None:
            return
        if m.state(self.clock()) != "shelved":
            try:
                self.store.unshelve_alarm(aid, "eng1")
            except Conflict:
                return
            raise AssertionError(f"{key}: unshelve of a {m.state(self.clock())} alarm was accepted")
        self.store.unshelve_alarm(aid, "eng1")
        m.shelved_until = None

    @rule(key=st.sampled_from(KEYS))
    def ack(self, key: str) -> None:
        m = self.model[key]
        aid = self._open_id(key)
        if aid is None:
            return
        if m.acked:
            try:
                self.store.ack_alarm(aid, "eng1")
            except Conflict:
                return
            raise AssertionError(f"{key}: a second acknowledgement was accepted")
        self.store.ack_alarm(aid, "eng1")
        m.acked = True
        if not m.active:
            m.open, m.shelved_until = False, None

    @rule(minutes=st.sampled_from([1, 60, 481]))
    def time_passes(self, minutes: int) -> None:
        self.clock.advance(minutes * 60)

    @precondition(lambda self: bool(self.sent))
    @rule()
    def follower_restart_and_replay(self) -> None:
        """A restarted follower re-sends every event it sent before, in order: nothing may change."""
        self.store.upsert_alarm_events(list(self.sent))

    def _open_id(self, key: str) -> int | None:
        rows = [a for a in self.store.alarms(open_only=True, limit=1000) if a["key"] == key]
        return rows[0]["id"] if rows else None

    # ------------------------------------------------------------------ the check
    @invariant()
    def store_agrees_with_model(self) -> None:
        now = self.clock()
        open_rows = self.store.alarms(open_only=True, limit=1000)
        assert len({a["key"] for a in open_rows}) == len(open_rows), "two open alarms for one key"
        by_key = {a["key"]: a for a in open_rows}
        orders = self.store.work_orders(limit=1000)
        for key, m in self.model.items():
            a = by_key.get(key)
            assert (a is not None) == m.open, (key, a, m)
            if a is not None:
                got = (a["state"], a["severity"], a["evidence"], a["suppressed_by"], a["activations"], a["acked"])
                want = (m.state(now), m.severity, m.evidence, m.suppressed_by, m.activations, m.acked)
                assert got == want, (key, got, want)
            keyed = [w for w in orders if w["alarm_id"] is not None
                     and self.store.alarm(w["alarm_id"])["key"] == key]
            assert len(keyed) == int(m.work_order), (key, len(keyed), m)


AlarmStoreMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=30, deadline=None,
                                               suppress_health_check=[HealthCheck.too_slow])
test_alarm_store_follows_the_model = AlarmStoreMachine.TestCase
