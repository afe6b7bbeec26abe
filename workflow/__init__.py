"""Workflow of the energy-hosting service: accounts, registry, alarms, work orders, inspections, surveys.

Imports only :mod:`core`.  Callers hold one :class:`Store`; see :mod:`workflow.store`.
"""

from workflow.accounts import OWASP_SCRYPT, hash_password, verify_password
from workflow.db import MIGRATIONS, Conflict, Invalid, NotFound, StoreError, month_bounds_ns
from workflow.store import Store
from workflow.vocab import ALARM_STATES, ROLES, SEVERITIES, STAFF_ROLES, WO_STATES
from workflow.workorders import DEFAULT_LIMITS, Limit, TimeLimits

__all__ = ["ALARM_STATES", "DEFAULT_LIMITS", "MIGRATIONS", "OWASP_SCRYPT", "ROLES", "SEVERITIES", "STAFF_ROLES",
           "WO_STATES", "Conflict", "Invalid", "Limit", "NotFound", "Store", "StoreError", "TimeLimits",
           "hash_password", "month_bounds_ns", "verify_password"]
