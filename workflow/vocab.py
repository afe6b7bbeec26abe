"""The workflow vocabulary: one home for every closed set of names the store and the API share.

The SQL ``CHECK`` constraints of :mod:`workflow.db` and the API's ``Literal`` types
(:mod:`api.models`) are built from these tuples, so a name is added in one place.
Severities are shared with analytics and live in :data:`core.model.SEVERITIES`, device kinds
in :data:`core.channels.DEVICE_KINDS`; both are re-exported here.

Alarm states follow ISA-18.2 (ANSI/ISA-18.2-2016 clause 11, the alarm state transition
diagram; IEC 62682:2014 clause 10)::

    active-unacked  --ack-->  active-acked  --clear-->  cleared (closed)
    active-unacked  --clear-> rtn-unacked   --ack---->  cleared (closed)
    rtn-unacked     --raise-> active-unacked (same record, activation counted)
    shelved               operator-set, with a reason and an expiry <= 8 h (ISA-18.2 clause 16.3)
    suppressed-by-design  logic-set (``AlarmEvent.suppressed_by``), e.g. the device's comms loss
"""

from __future__ import annotations

from core.channels import DEVICE_KINDS
from core.model import SEVERITIES

ROLES: tuple[str, ...] = ("admin", "engineer", "customer_manager", "customer")
STAFF_ROLES: tuple[str, ...] = ("admin", "engineer", "customer_manager")
ALARM_STATES: tuple[str, ...] = ("active-unacked", "active-acked", "rtn-unacked", "cleared", "shelved",
                                 "suppressed-by-design")
WO_STATES: tuple[str, ...] = ("new", "dispatched", "on_site", "resolved", "closed")
WO_NEXT: dict[str, str] = {"new": "dispatched", "dispatched": "on_site", "on_site": "resolved",
                           "resolved": "closed"}
INSPECTION_STATES: tuple[str, ...] = ("scheduled", "done", "missed")
SURVEY_KINDS: tuple[str, ...] = ("work_order", "monthly_report")
MAIL_STATES: tuple[str, ...] = ("pending", "sent", "no_address", "skipped", "dead")   # dead: gave up (dead letter)
TRANSPORTS: tuple[str, ...] = ("modbus", "mqtt")          # of devices registered through the API
SYSTEM = "system"                          # user id recorded for automatic actions

__all__ = ["ALARM_STATES", "DEVICE_KINDS", "INSPECTION_STATES", "MAIL_STATES", "ROLES", "SEVERITIES", "STAFF_ROLES",
           "SURVEY_KINDS", "SYSTEM", "TRANSPORTS", "WO_NEXT", "WO_STATES", "sql_list"]


def sql_list(values: tuple[str, ...]) -> str:
    """``('a','b')`` for an SQL ``IN`` of a CHECK constraint (the names hold no quote)."""
    assert all("'" not in v for v in values)
    return "(" + ",".join(f"'{v}'" for v in values) + ")"
