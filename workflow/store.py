"""The workflow store: the one object callers hold, composed of one aggregate per kind of record.

========================  ==================================================================
``store.accounts``        :class:`workflow.accounts.Accounts` — users, tokens, API keys, tenancy
``store.registry``        :class:`workflow.registry.Registry` — customers, sites, devices
``store.alarm_book``      :class:`workflow.alarms.Alarms` — ISA-18.2 alarms, audit, activations
``store.orders``          :class:`workflow.workorders.WorkOrders` — work orders, escalation, mail
``store.patrols``         :class:`workflow.inspections.Inspections` — patrol plans and results
``store.survey_book``     :class:`workflow.surveys.Surveys` — satisfaction surveys
``store.supply``          :class:`workflow.supply.Deliveries` — supplier delivery records
========================  ==================================================================

Every public method of the aggregates is also a method of the store (``store.alarm(7)`` is
``store.alarm_book.alarm(7)``), so callers need not know which aggregate holds a record.
The store also implements :class:`analytics.alarms.AlarmSink` (``record(events)``), through
which analytics writes alarm events without importing this package.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from core.model import AlarmEvent
from workflow.accounts import OWASP_SCRYPT, Accounts
from workflow.alarms import Alarms
from workflow.db import Clock, Ctx, Database, migrate, schema_version
from workflow.inspections import Inspections
from workflow.registry import Registry
from workflow.supply import Deliveries
from workflow.surveys import Surveys
from workflow.workorders import TimeLimits, WorkOrders


def _public(obj: object) -> list[str]:
    return [n for n in dir(type(obj)) if not n.startswith("_") and callable(getattr(type(obj), n))]


class Store:
    """The workflow database.

    Parameters
    ----------
    url
        ``sqlite:///path/to/file.db`` (default engine) or ``postgresql://user@host:port/db``.
    clock
        Callable returning "now" in ns since the epoch (UTC); default :func:`time.time_ns`.
    limits
        Service time limits per severity (:class:`workflow.workorders.TimeLimits`).
    password_cost
        scrypt parameters for new password hashes (default :data:`workflow.accounts.OWASP_SCRYPT`);
        tests may lower them, stored hashes carry their own.
    """

    def __init__(self, url: str, *, clock: Clock = time.time_ns, limits: TimeLimits | None = None,
                 password_cost: dict[str, int] | None = None) -> None:
        self.db = Database(url)
        self.clock = clock
        ctx = Ctx(self.db, clock)
        self.accounts = Accounts(ctx, password_cost or OWASP_SCRYPT)
        self.registry = Registry(ctx)
        self.alarm_book = Alarms(ctx)
        self.orders = WorkOrders(ctx, self.registry, limits)
        self.alarm_book.orders, self.orders.alarms = self.orders, self.alarm_book
        self.patrols = Inspections(ctx, self.registry, self.orders)
        self.survey_book = Surveys(ctx)
        self.supply = Deliveries(ctx)
        for agg in (self.accounts, self.registry, self.alarm_book, self.orders, self.patrols, self.survey_book,
                    self.supply):
            for name in _public(agg):
                assert not hasattr(self, name), f"two aggregates define {name!r}"
                setattr(self, name, getattr(agg, name))
        self.migrate()

    @property
    def limits(self) -> TimeLimits:
        return self.orders.limits

    @property
    def password_cost(self) -> dict[str, int]:
        return self.accounts.password_cost

    def migrate(self) -> int:
        """Apply pending migrations; return the schema version now in force."""
        return migrate(self.db, self.clock)

    def schema_version(self) -> int:
        return schema_version(self.db)

    def record(self, events: Iterable[AlarmEvent]) -> dict[str, int]:
        """:class:`analytics.alarms.AlarmSink`: store alarm raises, updates and clears."""
        return self.alarm_book.upsert_alarm_events(events)

    def close(self) -> None:
        self.db.close()
