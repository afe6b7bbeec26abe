"""The workflow store: users, registry, alarms, work orders, inspections and surveys.

One relational database holds every workflow record of energyhost.  SQLite (one file,
WAL mode, foreign keys on) is the default; PostgreSQL is used when the URL says so
(``postgresql://user@host/db``), for deployments that run several API instances.
The same SQL runs on both: placeholders are written ``?`` and rewritten to ``%s`` for
psycopg; auto-increment keys come from a per-dialect substitution in the migrations.

Schema migrations are numbered (:data:`MIGRATIONS`); every applied version is recorded
in ``schema_version`` and applied once, in order, in one transaction each.

Times are integers, ns since the epoch (UTC), like :class:`core.model.AlarmEvent`.
Every function that depends on "now" reads the injected ``clock`` (a callable
returning ns, default :func:`time.time_ns`) so escalation and expiry are testable.

Alarm states follow ISA-18.2 (ANSI/ISA-18.2-2016 clause 11, the alarm state
transition diagram; IEC 62682:2014 clause 10)::

    active-unacked  --ack-->  active-acked  --clear-->  cleared (closed)
    active-unacked  --clear-> rtn-unacked   --ack---->  cleared (closed)
    rtn-unacked     --raise-> active-unacked (same record, activation counted)
    shelved               operator-set, with a reason and an expiry <= 8 h (ISA-18.2 clause 16.3)
    suppressed-by-design  logic-set (``AlarmEvent.suppressed_by``), e.g. the device's comms loss

Error policy::

    StoreError           base class
      NotFound           the record does not exist (the API answers 404)
      Conflict           the operation is not allowed in the record's state (409)
      Invalid            a value is out of range or malformed (422)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import threading
import time
import tomllib
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from core.model import SEVERITIES, AlarmEvent

Clock = Callable[[], int]

ROLES: tuple[str, ...] = ("admin", "engineer", "customer_manager", "customer")
STAFF_ROLES: tuple[str, ...] = ("admin", "engineer", "customer_manager")
ALARM_STATES: tuple[str, ...] = ("active-unacked", "active-acked", "rtn-unacked", "cleared", "shelved",
                                 "suppressed-by-design")
WO_STATES: tuple[str, ...] = ("new", "dispatched", "on_site", "resolved", "closed")
WO_NEXT: dict[str, str] = {"new": "dispatched", "dispatched": "on_site", "on_site": "resolved",
                           "resolved": "closed"}
SURVEY_KINDS: tuple[str, ...] = ("work_order", "monthly_report")
MAX_SHELVE_NS = 8 * 3600 * 10**9          # one shift: ISA-18.2 clause 16.3 "shelving shall be time-limited"
NS = 10**9
SYSTEM = "system"                          # user id recorded for automatic actions


class StoreError(Exception):
    """Base class of workflow-store errors."""


class NotFound(StoreError):
    """The record does not exist (or is not visible)."""


class Conflict(StoreError):
    """The operation is not allowed in the record's current state."""


class Invalid(StoreError, ValueError):
    """A value is out of range or malformed; the message names it."""


# --------------------------------------------------------------------------- time limits
@dataclass(frozen=True)
class Limit:
    """Time limits of one severity [s], all measured from the order's creation."""

    response_s: int
    arrival_s: int
    repair_s: int


DEFAULT_LIMITS: dict[str, Limit] = {
    "critical": Limit(15 * 60, 2 * 3600, 8 * 3600),
    "major": Limit(30 * 60, 4 * 3600, 24 * 3600),
    "minor": Limit(2 * 3600, 24 * 3600, 72 * 3600),
    "warning": Limit(8 * 3600, 72 * 3600, 168 * 3600),
}


@dataclass(frozen=True)
class TimeLimits:
    """Per-severity service time limits (response, arrival, repair) and escalation policy.

    An overdue stage escalates to the customer manager (level 1) as soon as it is overdue,
    and to the admins (level 2) once it is overdue by ``admin_factor`` × the stage's limit.
    """

    limits: dict[str, Limit] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    admin_factor: float = 1.0

    def __post_init__(self) -> None:
        missing = set(SEVERITIES) - set(self.limits)
        if missing:
            raise Invalid(f"time limits: no limits for severities {sorted(missing)}")
        for sev, lim in self.limits.items():
            if not 0 < lim.response_s <= lim.arrival_s <= lim.repair_s:
                raise Invalid(f"time limits: {sev}: need 0 < response <= arrival <= repair, got {lim}")

    @classmethod
    def from_toml(cls, path: str | Path) -> TimeLimits:
        """Read ``[critical] response_min = 15, arrival_min = 120, repair_min = 480`` etc.

        Missing severities keep their defaults; ``admin_factor`` may be given at top level.
        """
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise Invalid(f"{p}: cannot read time limits: {exc}") from None
        limits = dict(DEFAULT_LIMITS)
        for key, table in raw.items():
            if key == "admin_factor":
                continue
            if key not in SEVERITIES or not isinstance(table, dict):
                raise Invalid(f"{p}: unknown severity table {key!r}; expected one of {SEVERITIES}")
            try:
                limits[key] = Limit(*(int(float(table[k]) * 60) for k in ("response_min", "arrival_min",
                                                                          "repair_min")))
            except (KeyError, TypeError, ValueError) as exc:
                raise Invalid(f"{p}: [{key}] needs numeric response_min, arrival_min, repair_min "
                              f"({exc})") from None
        return cls(limits=limits, admin_factor=float(raw.get("admin_factor", 1.0)))


# --------------------------------------------------------------------------- passwords and keys
OWASP_SCRYPT: dict[str, int] = {"n": 2**15, "r": 8, "p": 3}   # OWASP Password Storage Cheat Sheet (2023)


def hash_password(password: str, *, n: int = 2**15, r: int = 8, p: int = 3) -> str:
    """Hash ``password`` with scrypt (RFC 7914) and a 16-byte random salt.

    The default cost (N = 2^15, r = 8, p = 3) is one of the OWASP Password Storage Cheat
    Sheet's equivalent minimum scrypt configurations.

    The result ``scrypt$n$r$p$salt_hex$hash_hex`` carries its own parameters, so they can be
    raised later without invalidating stored hashes.
    """
    if not password:
        raise Invalid("password must not be empty")
    salt = secrets.token_bytes(16)
    dk = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${dk.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    """Constant-time check of ``password`` against a :func:`hash_password` string."""
    if not stored or not password:
        return False
    try:
        algo, n, r, p, salt, dk = stored.split("$")
        if algo != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=256 * 1024 * 1024, dklen=len(dk) // 2)
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(got.hex(), dk)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --------------------------------------------------------------------------- database adapter
_SERIAL = {"sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
           "postgresql": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"}
_FLOAT = {"sqlite": "REAL", "postgresql": "DOUBLE PRECISION"}


class _Database:
    """One connection guarded by a lock; ``?`` placeholders; rows as dicts."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.lock = threading.RLock()
        self._depth = 0
        if url.startswith("sqlite:///"):
            path = url[len("sqlite:///"):]
            if not path:
                raise Invalid(f"store URL {url!r}: no file path")
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.dialect = "sqlite"
            self.conn: Any = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA busy_timeout=10000")
        elif url.startswith(("postgresql://", "postgres://")):
            try:
                import psycopg
                from psycopg.rows import dict_row
            except ImportError as exc:  # pragma: no cover - depends on the installation
                raise Invalid(f"store URL {url.split('@')[-1]!r} needs the 'psycopg' package: {exc}") from None
            self.dialect = "postgresql"
            self.conn = psycopg.connect(url, row_factory=dict_row, autocommit=True)
            self._pg_tx: Any = None
        else:
            raise Invalid(f"store URL must start with sqlite:/// or postgresql://, got {url.split('@')[-1]!r}")

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    @contextmanager
    def tx(self) -> Iterator[None]:
        """A transaction (re-entrant: inner blocks join the outer one)."""
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._depth = 1
            try:
                if self.dialect == "sqlite":
                    self.conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield
                    except BaseException:
                        self.conn.execute("ROLLBACK")
                        raise
                    self.conn.execute("COMMIT")
                else:
                    with self.conn.transaction():
                        yield
            finally:
                self._depth = 0

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.lock:
            cur = self.conn.execute(self._sql(sql), tuple(params))
            if cur.description is None:
                return []
            if self.dialect == "postgresql":
                return cur.fetchall()
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        r = self.rows(sql, params)
        return r[0] if r else None

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute a statement; return the number of rows changed."""
        with self.lock:
            return self.conn.execute(self._sql(sql), tuple(params)).rowcount

    def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute an INSERT ... RETURNING id; return the id."""
        row = self.one(sql + " RETURNING id", params)
        assert row is not None
        return int(row["id"])

    def close(self) -> None:
        with self.lock:
            self.conn.close()


# --------------------------------------------------------------------------- migrations
MIGRATIONS: list[tuple[int, str, list[str | dict[str, str]]]] = [
    (1, "users, registry, alarms, work orders, inspections, surveys", [
        """CREATE TABLE customers (
            id TEXT PRIMARY KEY, name TEXT NOT NULL, manager TEXT NOT NULL DEFAULT '',
            email TEXT NOT NULL DEFAULT '', created_ns BIGINT NOT NULL)""",
        """CREATE TABLE users (
            id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '',
            role TEXT NOT NULL CHECK (role IN ('admin','engineer','customer_manager','customer')),
            customer_id TEXT REFERENCES customers(id),
            engineer_group TEXT NOT NULL DEFAULT 'default', email TEXT NOT NULL DEFAULT '',
            password_hash TEXT, active INTEGER NOT NULL DEFAULT 1, created_ns BIGINT NOT NULL,
            CHECK ((role = 'customer') = (customer_id IS NOT NULL)))""",
        """CREATE TABLE sessions (
            token_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            created_ns BIGINT NOT NULL, expires_ns BIGINT NOT NULL)""",
        "CREATE INDEX sessions_expiry ON sessions(expires_ns)",
        """CREATE TABLE api_keys (
            id {serial}, key_id TEXT NOT NULL UNIQUE, key_hash TEXT NOT NULL,
            user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE, name TEXT NOT NULL DEFAULT '',
            created_ns BIGINT NOT NULL, expires_ns BIGINT, revoked_ns BIGINT)""",
        """CREATE TABLE sites (
            id TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id),
            name TEXT NOT NULL, timezone TEXT NOT NULL DEFAULT 'Asia/Shanghai',
            tariff TEXT NOT NULL DEFAULT '', voltage_level_kv {float}, nominal_voltage_v {float},
            pv_capacity_kwp {float}, contract_demand_kw {float},
            engineer_group TEXT NOT NULL DEFAULT 'default', created_ns BIGINT NOT NULL)""",
        "CREATE INDEX sites_customer ON sites(customer_id)",
        """CREATE TABLE devices (
            id TEXT PRIMARY KEY, site_id TEXT NOT NULL REFERENCES sites(id),
            kind TEXT NOT NULL CHECK (kind IN ('meter','transformer','pv_inverter','ev_charger')),
            transport TEXT NOT NULL, profile TEXT, name TEXT NOT NULL DEFAULT '',
            host TEXT, port INTEGER, unit_id INTEGER, gateway TEXT,
            poll_interval_s {float} NOT NULL DEFAULT 5, rated_power_kw {float}, created_ns BIGINT NOT NULL)""",
        "CREATE INDEX devices_site ON devices(site_id)",
        """CREATE TABLE alarms (
            id {serial}, key TEXT NOT NULL, type TEXT NOT NULL,
            site_id TEXT NOT NULL REFERENCES sites(id), device_id TEXT,
            severity TEXT NOT NULL CHECK (severity IN ('critical','major','minor','warning')),
            first_raised_ns BIGINT NOT NULL, raised_ns BIGINT NOT NULL, cleared_ns BIGINT,
            active INTEGER NOT NULL, acked INTEGER NOT NULL DEFAULT 0,
            acked_ns BIGINT, acked_by TEXT, ack_note TEXT NOT NULL DEFAULT '',
            shelved_until_ns BIGINT, shelved_by TEXT, shelve_reason TEXT NOT NULL DEFAULT '',
            suppressed_by TEXT, closed_ns BIGINT, activations INTEGER NOT NULL DEFAULT 1,
            message_zh TEXT NOT NULL DEFAULT '', message_en TEXT NOT NULL DEFAULT '',
            evidence TEXT NOT NULL DEFAULT '{}', updated_ns BIGINT NOT NULL)""",
        "CREATE UNIQUE INDEX alarms_one_open_per_key ON alarms(key) WHERE closed_ns IS NULL",
        "CREATE INDEX alarms_site_time ON alarms(site_id, first_raised_ns)",
        """CREATE TABLE alarm_activations (
            alarm_id BIGINT NOT NULL REFERENCES alarms(id), key TEXT NOT NULL,
            raised_ns BIGINT NOT NULL, cleared_ns BIGINT, PRIMARY KEY (key, raised_ns))""",
        "CREATE INDEX alarm_activations_time ON alarm_activations(raised_ns)",
        """CREATE TABLE alarm_audit (
            id {serial}, alarm_id BIGINT NOT NULL REFERENCES alarms(id), time_ns BIGINT NOT NULL,
            user_id TEXT, action TEXT NOT NULL, note TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT '{}')""",
        "CREATE INDEX alarm_audit_alarm ON alarm_audit(alarm_id)",
        """CREATE TABLE work_orders (
            id {serial}, site_id TEXT NOT NULL REFERENCES sites(id), device_id TEXT,
            alarm_id BIGINT REFERENCES alarms(id), title TEXT NOT NULL, description TEXT NOT NULL DEFAULT '',
            severity TEXT NOT NULL CHECK (severity IN ('critical','major','minor','warning')),
            state TEXT NOT NULL CHECK (state IN ('new','dispatched','on_site','resolved','closed')),
            owner TEXT NOT NULL DEFAULT '', assignee TEXT REFERENCES users(id),
            created_ns BIGINT NOT NULL, created_by TEXT NOT NULL,
            response_due_ns BIGINT NOT NULL, arrival_due_ns BIGINT NOT NULL, repair_due_ns BIGINT NOT NULL,
            dispatched_ns BIGINT, dispatched_by TEXT, on_site_ns BIGINT, on_site_by TEXT,
            resolved_ns BIGINT, resolved_by TEXT, closed_ns BIGINT, closed_by TEXT,
            resolution_note TEXT NOT NULL DEFAULT '', escalation_level INTEGER NOT NULL DEFAULT 0,
            updated_ns BIGINT NOT NULL)""",
        "CREATE INDEX work_orders_site ON work_orders(site_id, created_ns)",
        """CREATE TABLE work_order_log (
            id {serial}, work_order_id BIGINT NOT NULL REFERENCES work_orders(id), time_ns BIGINT NOT NULL,
            user_id TEXT NOT NULL, action TEXT NOT NULL, from_state TEXT, to_state TEXT,
            note TEXT NOT NULL DEFAULT '')""",
        "CREATE INDEX work_order_log_wo ON work_order_log(work_order_id)",
        """CREATE TABLE escalations (
            id {serial}, work_order_id BIGINT NOT NULL REFERENCES work_orders(id), time_ns BIGINT NOT NULL,
            stage TEXT NOT NULL, level INTEGER NOT NULL, notified TEXT NOT NULL,
            UNIQUE (work_order_id, stage, level, notified))""",
        """CREATE TABLE inspection_plans (
            id {serial}, site_id TEXT NOT NULL REFERENCES sites(id), name TEXT NOT NULL,
            interval_s BIGINT NOT NULL, grace_s BIGINT NOT NULL, checklist TEXT NOT NULL,
            first_due_ns BIGINT NOT NULL, active INTEGER NOT NULL DEFAULT 1,
            created_ns BIGINT NOT NULL, created_by TEXT NOT NULL)""",
        """CREATE TABLE inspections (
            id {serial}, plan_id BIGINT NOT NULL REFERENCES inspection_plans(id),
            site_id TEXT NOT NULL REFERENCES sites(id), due_ns BIGINT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('scheduled','done','missed')),
            done_ns BIGINT, engineer TEXT, results TEXT NOT NULL DEFAULT '{}', note TEXT NOT NULL DEFAULT '',
            UNIQUE (plan_id, due_ns))""",
        """CREATE TABLE surveys (
            id {serial}, customer_id TEXT NOT NULL REFERENCES customers(id),
            kind TEXT NOT NULL CHECK (kind IN ('work_order','monthly_report')), ref TEXT NOT NULL,
            rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5), comment TEXT NOT NULL DEFAULT '',
            user_id TEXT NOT NULL, created_ns BIGINT NOT NULL, UNIQUE (kind, ref, user_id))""",
    ]),
    (2, "index for the newest-first alarm list", [
        "CREATE INDEX alarms_raised ON alarms(raised_ns DESC, id DESC)",
    ]),
    (3, "e-mail delivery state of each escalation", [
        # pending -> sent, or no_address (re-checked every sweep); escalations made before this
        # migration were never mailed and are marked skipped, so an upgrade does not send old news
        "ALTER TABLE escalations ADD COLUMN mail_state TEXT NOT NULL DEFAULT 'pending'",
        "ALTER TABLE escalations ADD COLUMN mail_to TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE escalations ADD COLUMN mail_attempts INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE escalations ADD COLUMN mail_error TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE escalations ADD COLUMN mail_sent_ns BIGINT",
        "ALTER TABLE escalations ADD COLUMN mail_claim_ns BIGINT",
        "UPDATE escalations SET mail_state = 'skipped', "
        "mail_error = 'escalated before e-mail notification existed (schema 3)'",
        "CREATE INDEX escalations_mail ON escalations(mail_state)",
    ]),
    (4, "alarm change counter (bumped by triggers on every alarm write) and shelve-expiry index", [
        "CREATE TABLE change_counters (name TEXT PRIMARY KEY, n BIGINT NOT NULL)",
        "INSERT INTO change_counters (name, n) VALUES ('alarms', 0)",
        "CREATE INDEX alarms_shelved_until ON alarms(shelved_until_ns) WHERE shelved_until_ns IS NOT NULL",
        # SQLite: one writer at a time; a row trigger per kind of write
        *({"sqlite": f"CREATE TRIGGER alarms_changed_{op.lower()} AFTER {op} ON alarms BEGIN "
                     f"UPDATE change_counters SET n = n + 1 WHERE name = 'alarms'; END"}
          for op in ("INSERT", "UPDATE", "DELETE")),
        # PostgreSQL: a deferred constraint trigger bumps the counter at commit, after every other row
        # lock of the transaction is taken, so two writers never wait on each other across the counter row
        {"postgresql": "CREATE FUNCTION eh_alarms_changed() RETURNS trigger LANGUAGE plpgsql AS "
                       "$$ BEGIN UPDATE change_counters SET n = n + 1 WHERE name = 'alarms'; RETURN NULL; END $$"},
        {"postgresql": "CREATE CONSTRAINT TRIGGER alarms_changed AFTER INSERT OR UPDATE OR DELETE ON alarms "
                       "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION eh_alarms_changed()"},
    ]),
]


# --------------------------------------------------------------------------- helpers
def _json(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, sort_keys=True, default=str)


def _in(column: str, values: Collection[Any] | None) -> tuple[str, list[Any]]:
    """SQL fragment ``column IN (?, ...)``; ``None`` means no restriction; empty matches nothing."""
    if values is None:
        return "1=1", []
    values = list(values)
    if not values:
        return "1=0", []
    return f"{column} IN ({','.join('?' * len(values))})", values


def month_bounds_ns(month: str, tz: str = "Asia/Shanghai") -> tuple[int, int]:
    """Start and end [ns] of calendar month ``YYYY-MM`` in time zone ``tz``."""
    m = re.fullmatch(r"(\d{4})-(\d{2})", month)
    if not m or not 1 <= int(m[2]) <= 12:
        raise Invalid(f"month must be YYYY-MM, got {month!r}")
    y, mo = int(m[1]), int(m[2])
    zone = ZoneInfo(tz)
    start = datetime(y, mo, 1, tzinfo=zone)
    end = datetime(y + (mo == 12), mo % 12 + 1, 1, tzinfo=zone)
    return int(start.timestamp()) * NS, int(end.timestamp()) * NS


ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
# one plain address (no display name, no list, nothing that could end a header line)
EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
MAIL_STATES: tuple[str, ...] = ("pending", "sent", "no_address", "skipped")


def _check_email(value: str) -> str:
    """'' (no address) or one plain ``local@domain`` address; :class:`Invalid` otherwise."""
    if value and (not isinstance(value, str) or not EMAIL_RE.match(value)):
        raise Invalid(f"email must be one address like name@example.com (or empty), got {value!r}")
    return value


def _check_id(what: str, value: str) -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise Invalid(f"{what} must match [a-z0-9][a-z0-9_.-]{{0,63}}, got {value!r}")
    return value


# --------------------------------------------------------------------------- the store
class Store:
    """The workflow database.

    Parameters
    ----------
    url
        ``sqlite:///path/to/file.db`` (default engine) or ``postgresql://user@host:port/db``.
    clock
        Callable returning "now" in ns since the epoch (UTC); default :func:`time.time_ns`.
    limits
        Service time limits per severity (:class:`TimeLimits`).
    password_cost
        scrypt parameters for new password hashes (default :data:`OWASP_SCRYPT`); tests may
        lower them, stored hashes carry their own.
    """

    def __init__(self, url: str, *, clock: Clock = time.time_ns, limits: TimeLimits | None = None,
                 password_cost: dict[str, int] | None = None) -> None:
        self.db = _Database(url)
        self.clock = clock
        self.limits = limits or TimeLimits()
        self.password_cost = dict(password_cost or OWASP_SCRYPT)
        self.migrate()

    # ----------------------------------------------------------------- schema
    def migrate(self) -> int:
        """Apply pending migrations; return the schema version now in force."""
        d = self.db.dialect
        with self.db.tx():
            if d == "postgresql":
                self.db.run("SELECT pg_advisory_xact_lock(4242001)")
            self.db.run("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                        "description TEXT NOT NULL, applied_ns BIGINT NOT NULL)")
            row = self.db.one("SELECT MAX(version) AS v FROM schema_version")
            current = int(row["v"]) if row and row["v"] is not None else 0
            for version, description, statements in MIGRATIONS:
                if version <= current:
                    continue
                for stmt in statements:
                    if isinstance(stmt, dict):          # a dialect-specific statement
                        if d not in stmt:
                            continue
                        stmt = stmt[d]
                    self.db.run(stmt.replace("{serial}", _SERIAL[d]).replace("{float}", _FLOAT[d]))
                self.db.run("INSERT INTO schema_version (version, description, applied_ns) VALUES (?, ?, ?)",
                            (version, description, self.clock()))
                current = version
        return current

    def schema_version(self) -> int:
        row = self.db.one("SELECT MAX(version) AS v FROM schema_version")
        return int(row["v"] or 0) if row else 0

    def close(self) -> None:
        self.db.close()

    # ----------------------------------------------------------------- users and access
    def create_user(self, user_id: str, role: str, *, password: str | None = None, name: str = "",
                    customer_id: str | None = None, engineer_group: str = "default", email: str = "") -> dict:
        """Create a user; a ``customer`` user must be bound to an existing ``customer_id``."""
        _check_id("user id", user_id)
        if role not in ROLES:
            raise Invalid(f"role must be one of {ROLES}, got {role!r}")
        if (role == "customer") != (customer_id is not None):
            raise Invalid("customer_id is required for role 'customer' and only for it")
        if customer_id is not None and not self.db.one("SELECT id FROM customers WHERE id = ?", (customer_id,)):
            raise NotFound(f"customer {customer_id!r} does not exist")
        _check_email(email)
        pw = hash_password(password, **self.password_cost) if password else None
        with self.db.tx():
            if self.db.one("SELECT id FROM users WHERE id = ?", (user_id,)):
                raise Conflict(f"user {user_id!r} already exists")
            self.db.run("INSERT INTO users (id, name, role, customer_id, engineer_group, email, password_hash, "
                        "created_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (user_id, name, role, customer_id, engineer_group, email, pw, self.clock()))
        return self.user(user_id)

    def user(self, user_id: str) -> dict:
        row = self.db.one("SELECT id, name, role, customer_id, engineer_group, email, active, created_ns "
                          "FROM users WHERE id = ?", (user_id,))
        if row is None:
            raise NotFound(f"user {user_id!r} does not exist")
        return row

    def users(self, role: str | None = None) -> list[dict]:
        sql = "SELECT id, name, role, customer_id, engineer_group, email, active, created_ns FROM users"
        if role is not None:
            return self.db.rows(sql + " WHERE role = ? ORDER BY id", (role,))
        return self.db.rows(sql + " ORDER BY id")

    def update_user(self, user_id: str, *, name: str | None = None, engineer_group: str | None = None,
                    email: str | None = None, active: bool | None = None,
                    password: str | None = None) -> dict:
        self.user(user_id)
        if email is not None:
            _check_email(email)
        sets: list[str] = []
        params: list[Any] = []
        for col, val in (("name", name), ("engineer_group", engineer_group), ("email", email)):
            if val is not None:
                sets.append(f"{col} = ?")
                params.append(val)
        if active is not None:
            sets.append("active = ?")
            params.append(int(active))
        if password is not None:
            sets.append("password_hash = ?")
            params.append(hash_password(password, **self.password_cost))
        if sets:
            with self.db.tx():
                self.db.run(f"UPDATE users SET {', '.join(sets)} WHERE id = ?", (*params, user_id))
                if active is False or password is not None:
                    self.db.run("DELETE FROM sessions WHERE user_id = ?", (user_id,))
        return self.user(user_id)

    def authenticate(self, user_id: str, password: str) -> dict | None:
        """Return the user if ``password`` is right and the user active, else None."""
        row = self.db.one("SELECT password_hash, active FROM users WHERE id = ?", (user_id,))
        if row is None:
            verify_password(password, hash_password("x" * 12, n=2**10))   # similar work for unknown users
            return None
        if not row["active"] or not verify_password(password, row["password_hash"]):
            return None
        return self.user(user_id)

    def issue_token(self, user_id: str, ttl_s: float) -> tuple[str, int]:
        """Create an opaque bearer token valid ``ttl_s`` seconds; return (token, expires_ns).

        Only the token's SHA-256 is stored, so a database dump does not leak live tokens.
        """
        if not 0 < ttl_s <= 7 * 86400:
            raise Invalid(f"token lifetime must be 0..7 days, got {ttl_s} s")
        token = "eht_" + secrets.token_urlsafe(32)
        now = self.clock()
        exp = now + int(ttl_s * NS)
        with self.db.tx():
            self.db.run("DELETE FROM sessions WHERE expires_ns < ?", (now,))
            self.db.run("INSERT INTO sessions (token_hash, user_id, created_ns, expires_ns) VALUES (?, ?, ?, ?)",
                        (_token_hash(token), user_id, now, exp))
        return token, exp

    def revoke_token(self, token: str) -> None:
        with self.db.tx():
            self.db.run("DELETE FROM sessions WHERE token_hash = ?", (_token_hash(token),))

    def user_for_token(self, token: str) -> dict | None:
        """The active user owning an unexpired token, else None."""
        row = self.db.one(
            "SELECT u.id, u.name, u.role, u.customer_id, u.engineer_group, u.email, u.active, u.created_ns "
            "FROM sessions s JOIN users u ON u.id = s.user_id "
            "WHERE s.token_hash = ? AND s.expires_ns > ? AND u.active = 1",
            (_token_hash(token), self.clock()))
        return row

    def create_api_key(self, user_id: str, name: str = "", ttl_s: float | None = None) -> tuple[str, dict]:
        """Create an API key for a (service) user; the secret is returned once and stored hashed."""
        self.user(user_id)
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        now = self.clock()
        exp = now + int(ttl_s * NS) if ttl_s else None
        with self.db.tx():
            self.db.run("INSERT INTO api_keys (key_id, key_hash, user_id, name, created_ns, expires_ns) "
                        "VALUES (?, ?, ?, ?, ?, ?)", (key_id, _token_hash(secret), user_id, name, now, exp))
        return f"ehk_{key_id}_{secret}", self.api_key(key_id)

    def api_key(self, key_id: str) -> dict:
        row = self.db.one("SELECT key_id, user_id, name, created_ns, expires_ns, revoked_ns FROM api_keys "
                          "WHERE key_id = ?", (key_id,))
        if row is None:
            raise NotFound(f"API key {key_id!r} does not exist")
        return row

    def revoke_api_key(self, key_id: str) -> None:
        self.api_key(key_id)
        with self.db.tx():
            self.db.run("UPDATE api_keys SET revoked_ns = ? WHERE key_id = ?", (self.clock(), key_id))

    def user_for_api_key(self, key: str) -> dict | None:
        m = re.fullmatch(r"ehk_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})", key or "")
        if not m:
            return None
        row = self.db.one("SELECT key_hash, user_id, expires_ns, revoked_ns FROM api_keys WHERE key_id = ?",
                          (m[1],))
        if row is None or row["revoked_ns"] is not None:
            return None
        if row["expires_ns"] is not None and row["expires_ns"] <= self.clock():
            return None
        if not hmac.compare_digest(row["key_hash"], _token_hash(m[2])):
            return None
        user = self.user(row["user_id"])
        return user if user["active"] else None

    # ----------------------------------------------------------------- tenancy
    def allowed_sites(self, user: dict) -> tuple[frozenset[str] | None, frozenset[str] | None]:
        """(customer ids, site ids) a user may see; ``(None, None)`` means everything.

        admin and engineer: everything; customer_manager: the customers they manage;
        customer: their own customer.
        """
        role = user["role"]
        if role in ("admin", "engineer"):
            return None, None
        if role == "customer_manager":
            customers = [r["id"] for r in self.db.rows("SELECT id FROM customers WHERE manager = ?", (user["id"],))]
        elif role == "customer":
            customers = [user["customer_id"]]
        else:  # pragma: no cover - the CHECK constraint forbids it
            customers = []
        frag, params = _in("customer_id", customers)
        sites = [r["id"] for r in self.db.rows(f"SELECT id FROM sites WHERE {frag}", params)]
        return frozenset(customers), frozenset(sites)

    # ----------------------------------------------------------------- registry
    def seed_fleet(self, fleet: Any) -> dict[str, int]:
        """Insert customers, sites and devices of a :class:`core.config.Fleet` that are not yet stored.

        Existing records are left as they are (they may have been edited through the API).
        """
        now = self.clock()
        n = {"customers": 0, "sites": 0, "devices": 0}
        with self.db.tx():
            for c in fleet.customers:
                n["customers"] += self.db.run(
                    "INSERT INTO customers (id, name, manager, email, created_ns) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (id) DO NOTHING", (c.id, c.name, c.manager, c.email, now))
                for s in c.sites:
                    n["sites"] += self.db.run(
                        "INSERT INTO sites (id, customer_id, name, timezone, tariff, voltage_level_kv, "
                        "nominal_voltage_v, pv_capacity_kwp, contract_demand_kw, created_ns) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                        (s.id, c.id, s.name, s.timezone, s.tariff, s.voltage_level_kv, s.nominal_voltage_v,
                         s.pv_capacity_kwp, s.contract_demand_kw, now))
                    for dv in s.devices:
                        n["devices"] += self.db.run(
                            "INSERT INTO devices (id, site_id, kind, transport, profile, name, host, port, "
                            "unit_id, gateway, poll_interval_s, rated_power_kw, created_ns) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                            (dv.id, s.id, dv.kind, dv.transport, dv.profile, dv.name, dv.host, dv.port,
                             dv.unit_id, dv.gateway, dv.poll_interval_s, dv.rated_power_kw, now))
        return n

    def customers(self, customer_ids: Collection[str] | None = None) -> list[dict]:
        frag, params = _in("id", customer_ids)
        return self.db.rows(f"SELECT * FROM customers WHERE {frag} ORDER BY id", params)

    def customer(self, customer_id: str) -> dict:
        row = self.db.one("SELECT * FROM customers WHERE id = ?", (customer_id,))
        if row is None:
            raise NotFound(f"customer {customer_id!r} does not exist")
        return row

    def create_customer(self, customer_id: str, name: str, manager: str = "", email: str = "") -> dict:
        _check_id("customer id", customer_id)
        with self.db.tx():
            if self.db.one("SELECT id FROM customers WHERE id = ?", (customer_id,)):
                raise Conflict(f"customer {customer_id!r} already exists")
            self.db.run("INSERT INTO customers (id, name, manager, email, created_ns) VALUES (?, ?, ?, ?, ?)",
                        (customer_id, name, manager, email, self.clock()))
        return self.customer(customer_id)

    def update_customer(self, customer_id: str, **values: Any) -> dict:
        return self._update("customers", customer_id, values, ("name", "manager", "email"))

    def sites(self, site_ids: Collection[str] | None = None, customer_id: str | None = None) -> list[dict]:
        frag, params = _in("id", site_ids)
        if customer_id is not None:
            frag += " AND customer_id = ?"
            params.append(customer_id)
        return self.db.rows(f"SELECT * FROM sites WHERE {frag} ORDER BY id", params)

    def site(self, site_id: str) -> dict:
        row = self.db.one("SELECT * FROM sites WHERE id = ?", (site_id,))
        if row is None:
            raise NotFound(f"site {site_id!r} does not exist")
        return row

    def create_site(self, site_id: str, customer_id: str, name: str, **values: Any) -> dict:
        _check_id("site id", site_id)
        self.customer(customer_id)
        cols = ("timezone", "tariff", "voltage_level_kv", "nominal_voltage_v", "pv_capacity_kwp",
                "contract_demand_kw", "engineer_group")
        extra = {k: v for k, v in values.items() if k in cols and v is not None}
        if "timezone" in extra:
            self._check_tz(extra["timezone"])
        with self.db.tx():
            if self.db.one("SELECT id FROM sites WHERE id = ?", (site_id,)):
                raise Conflict(f"site {site_id!r} already exists")
            names = ["id", "customer_id", "name", "created_ns", *extra]
            self.db.run(f"INSERT INTO sites ({', '.join(names)}) VALUES ({','.join('?' * len(names))})",
                        (site_id, customer_id, name, self.clock(), *extra.values()))
        return self.site(site_id)

    def update_site(self, site_id: str, **values: Any) -> dict:
        if values.get("timezone") is not None:
            self._check_tz(values["timezone"])
        return self._update("sites", site_id, values, ("name", "timezone", "tariff", "voltage_level_kv",
                                                        "nominal_voltage_v", "pv_capacity_kwp",
                                                        "contract_demand_kw", "engineer_group"))

    @staticmethod
    def _check_tz(tz: str) -> None:
        try:
            ZoneInfo(tz)
        except Exception:
            raise Invalid(f"unknown time zone {tz!r}") from None

    def devices(self, site_ids: Collection[str] | None = None, site_id: str | None = None,
                kind: str | None = None) -> list[dict]:
        frag, params = _in("site_id", site_ids)
        if site_id is not None:
            frag += " AND site_id = ?"
            params.append(site_id)
        if kind is not None:
            frag += " AND kind = ?"
            params.append(kind)
        return self.db.rows(f"SELECT d.*, s.customer_id FROM devices d JOIN sites s ON s.id = d.site_id "
                            f"WHERE {frag.replace('site_id', 'd.site_id')} ORDER BY d.id", params)

    def device(self, device_id: str) -> dict:
        row = self.db.one("SELECT d.*, s.customer_id FROM devices d JOIN sites s ON s.id = d.site_id "
                          "WHERE d.id = ?", (device_id,))
        if row is None:
            raise NotFound(f"device {device_id!r} does not exist")
        return row

    def create_device(self, device_id: str, site_id: str, kind: str, transport: str, **values: Any) -> dict:
        _check_id("device id", device_id)
        self.site(site_id)
        if kind not in ("meter", "transformer", "pv_inverter", "ev_charger"):
            raise Invalid(f"device kind must be meter, transformer, pv_inverter or ev_charger, got {kind!r}")
        if transport not in ("modbus", "mqtt"):
            raise Invalid(f"transport must be 'modbus' or 'mqtt', got {transport!r}")
        cols = ("profile", "name", "host", "port", "unit_id", "gateway", "poll_interval_s", "rated_power_kw")
        extra = {k: v for k, v in values.items() if k in cols and v is not None}
        with self.db.tx():
            if self.db.one("SELECT id FROM devices WHERE id = ?", (device_id,)):
                raise Conflict(f"device {device_id!r} already exists")
            names = ["id", "site_id", "kind", "transport", "created_ns", *extra]
            self.db.run(f"INSERT INTO devices ({', '.join(names)}) VALUES ({','.join('?' * len(names))})",
                        (device_id, site_id, kind, transport, self.clock(), *extra.values()))
        return self.device(device_id)

    def update_device(self, device_id: str, **values: Any) -> dict:
        self._update("devices", device_id, values, ("name", "profile", "host", "port", "unit_id", "gateway",
                                                    "poll_interval_s", "rated_power_kw"))
        return self.device(device_id)

    def _update(self, table: str, ident: str, values: dict[str, Any], allowed: tuple[str, ...]) -> dict:
        unknown = set(values) - set(allowed)
        if unknown:
            raise Invalid(f"{table}: cannot change {sorted(unknown)}; changeable: {allowed}")
        sets = {k: v for k, v in values.items() if v is not None}
        with self.db.tx():
            if not self.db.one(f"SELECT id FROM {table} WHERE id = ?", (ident,)):
                raise NotFound(f"{table[:-1]} {ident!r} does not exist")
            if sets:
                self.db.run(f"UPDATE {table} SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
                            (*sets.values(), ident))
        return self.db.one(f"SELECT * FROM {table} WHERE id = ?", (ident,)) or {}

    # ----------------------------------------------------------------- alarms
    _STATE_SQL = ("CASE WHEN a.closed_ns IS NOT NULL THEN 'cleared' "
                  "WHEN a.shelved_until_ns IS NOT NULL AND a.shelved_until_ns > ? THEN 'shelved' "
                  "WHEN a.suppressed_by IS NOT NULL AND a.active = 1 THEN 'suppressed-by-design' "
                  "WHEN a.active = 1 AND a.acked = 1 THEN 'active-acked' "
                  "WHEN a.active = 1 THEN 'active-unacked' ELSE 'rtn-unacked' END")

    def upsert_alarm_events(self, events: Iterable[AlarmEvent]) -> dict[str, int]:
        """Store alarm raises, updates and clears from analytics; idempotent.

        Dedup by ``key``: at most one open alarm per key.  A raise for a key with an open
        alarm updates it (a new activation if the alarm had returned to normal); a clear
        returns it to normal (ISA-18.2: ``rtn-unacked`` if not yet acknowledged, else closed
        as ``cleared``).  An event for the current activation (same key and raise time) with
        another severity, evidence, message or suppression updates the open alarm.  Re-sending
        an event already stored changes nothing.  An open critical alarm that is not suppressed
        by design has an automatic work order: raised as critical, updated to critical or
        released from suppression, it opens one unless the key has an open order already.

        Returns counts: ``raised``, ``reactivated``, ``updated``, ``cleared``, ``unchanged``,
        ``work_orders``.
        """
        out = {"raised": 0, "reactivated": 0, "updated": 0, "cleared": 0, "unchanged": 0, "work_orders": 0}
        with self.db.tx():
            if self.db.dialect == "postgresql":       # several API / analytics instances: one writer at a time
                self.db.run("SELECT pg_advisory_xact_lock(4242002)")
            for ev in events:
                self._apply_event(ev, out)
        return out

    def _check_event(self, ev: AlarmEvent) -> None:
        if ev.severity not in SEVERITIES:
            raise Invalid(f"alarm {ev.key!r}: severity must be one of {SEVERITIES}, got {ev.severity!r}")
        if not self.db.one("SELECT id FROM sites WHERE id = ?", (ev.site_id,)):
            raise NotFound(f"alarm {ev.key!r}: site {ev.site_id!r} does not exist")
        if ev.cleared_ns is not None and ev.cleared_ns < ev.raised_ns:
            raise Invalid(f"alarm {ev.key!r}: cleared_ns {ev.cleared_ns} before raised_ns {ev.raised_ns}")

    def _apply_event(self, ev: AlarmEvent, out: dict[str, int]) -> None:
        self._check_event(ev)
        now = self.clock()
        seen = self.db.one("SELECT alarm_id, cleared_ns FROM alarm_activations WHERE key = ? AND raised_ns = ?",
                           (ev.key, ev.raised_ns))
        if seen is not None:
            updated = seen["cleared_ns"] is None and self._update_current(seen["alarm_id"], ev, now, out)
            if ev.cleared_ns is not None and seen["cleared_ns"] is None:
                out["work_orders"] += self._clear(seen["alarm_id"], ev, now)
                out["cleared"] += 1
            elif not updated:
                out["unchanged"] += 1
            return
        if ev.raised_ns < (self._last_cleared(ev.key) or -1):
            out["unchanged"] += 1           # an old activation arriving after a newer one was cleared
            return
        open_ = self.db.one("SELECT id FROM alarms WHERE key = ? AND closed_ns IS NULL", (ev.key,))
        if open_ is None:
            alarm_id = self.db.insert(
                "INSERT INTO alarms (key, type, site_id, device_id, severity, first_raised_ns, raised_ns, active, "
                "suppressed_by, message_zh, message_en, evidence, updated_ns) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)",
                (ev.key, ev.type, ev.site_id, ev.device_id, ev.severity, ev.raised_ns, ev.raised_ns,
                 ev.suppressed_by, ev.message_zh, ev.message_en, _json(ev.evidence), now))
            self._audit(alarm_id, SYSTEM, "raise", detail={"raised_ns": ev.raised_ns})
            out["raised"] += 1
        else:
            alarm_id = open_["id"]
            self.db.run("UPDATE alarms SET raised_ns = ?, cleared_ns = NULL, active = 1, acked = 0, "
                        "activations = activations + 1, severity = ?, suppressed_by = ?, message_zh = ?, "
                        "message_en = ?, evidence = ?, updated_ns = ? WHERE id = ?",
                        (ev.raised_ns, ev.severity, ev.suppressed_by, ev.message_zh, ev.message_en,
                         _json(ev.evidence), now, alarm_id))
            self._audit(alarm_id, SYSTEM, "reactivate", detail={"raised_ns": ev.raised_ns})
            out["reactivated"] += 1
        out["work_orders"] += self._auto_work_order(alarm_id)
        self.db.run("INSERT INTO alarm_activations (alarm_id, key, raised_ns) VALUES (?, ?, ?)",
                    (alarm_id, ev.key, ev.raised_ns))
        if ev.cleared_ns is not None:
            out["work_orders"] += self._clear(alarm_id, ev, now)
            out["cleared"] += 1

    def _update_current(self, alarm_id: int, ev: AlarmEvent, now: int, out: dict[str, int]) -> bool:
        """Take a new severity, evidence, message or suppression of the open alarm's current activation."""
        a = self.db.one("SELECT raised_ns, closed_ns, severity, suppressed_by, message_zh, message_en, evidence "
                        "FROM alarms WHERE id = ?", (alarm_id,))
        if a is None or a["closed_ns"] is not None or a["raised_ns"] != ev.raised_ns:
            return False
        new = {"severity": ev.severity, "suppressed_by": ev.suppressed_by, "message_zh": ev.message_zh,
               "message_en": ev.message_en, "evidence": _json(ev.evidence)}
        changed = {k: v for k, v in new.items() if a[k] != v}
        if not changed:
            return False
        self.db.run(f"UPDATE alarms SET {', '.join(f'{k} = ?' for k in changed)}, updated_ns = ? WHERE id = ?",
                    (*changed.values(), now, alarm_id))
        detail: dict[str, Any] = {k: [a[k], v] for k, v in changed.items() if k in ("severity", "suppressed_by")}
        if "evidence" in changed:
            detail["evidence"] = ev.evidence
        self._audit(alarm_id, SYSTEM, "update", detail=detail)
        out["updated"] += 1
        out["work_orders"] += self._auto_work_order(alarm_id)
        return True

    def _auto_work_order(self, alarm_id: int) -> int:
        """Open the automatic work order of an open, critical, not suppressed alarm; 1 if one was opened.

        One open order per alarm key: a key whose order is still open gets no second one.
        """
        a = self.db.one("SELECT key, site_id, device_id, severity, suppressed_by, closed_ns, type, message_zh, "
                        "message_en FROM alarms WHERE id = ?", (alarm_id,))
        if (a is None or a["closed_ns"] is not None or a["severity"] != "critical"
                or a["suppressed_by"] is not None or not self._no_open_order_for_key(a["key"])):
            return 0
        self._create_work_order(site_id=a["site_id"], device_id=a["device_id"], alarm_id=alarm_id,
                                title=a["message_en"] or a["type"], description=a["message_zh"],
                                severity="critical", created_by=SYSTEM)
        return 1

    def _last_cleared(self, key: str) -> int | None:
        row = self.db.one("SELECT MAX(cleared_ns) AS c FROM alarm_activations WHERE key = ?", (key,))
        return row["c"] if row else None

    def _no_open_order_for_key(self, key: str) -> bool:
        return self.db.one("SELECT w.id FROM work_orders w JOIN alarms a ON a.id = w.alarm_id "
                           "WHERE a.key = ? AND w.state <> 'closed'", (key,)) is None

    def _clear(self, alarm_id: int, ev: AlarmEvent, now: int) -> int:
        """Return the alarm's current activation to normal; return the work orders this opened."""
        a = self.db.one("SELECT * FROM alarms WHERE id = ?", (alarm_id,))
        assert a is not None
        self.db.run("UPDATE alarm_activations SET cleared_ns = ? WHERE key = ? AND raised_ns = ?",
                    (ev.cleared_ns, ev.key, ev.raised_ns))
        if a["closed_ns"] is not None or a["raised_ns"] != ev.raised_ns:
            return 0                     # a clear of an older activation: the current one stays
        shelved = a["shelved_until_ns"] is not None and a["shelved_until_ns"] > now
        close = bool(a["acked"]) or a["suppressed_by"] is not None or shelved
        self.db.run("UPDATE alarms SET active = 0, cleared_ns = ?, closed_ns = ?, updated_ns = ? WHERE id = ?",
                    (ev.cleared_ns, now if close else None, now, alarm_id))
        self._audit(alarm_id, SYSTEM, "clear", detail={"cleared_ns": ev.cleared_ns, "closed": close})
        # alarms suppressed by this one come back into annunciation (ISA-18.2 clause 17 designed suppression);
        # a critical one among them starts what a new critical alarm starts
        back = self.db.rows("SELECT id FROM alarms WHERE suppressed_by = ? AND closed_ns IS NULL", (a["key"],))
        self.db.run("UPDATE alarms SET suppressed_by = NULL, updated_ns = ? WHERE suppressed_by = ? "
                    "AND closed_ns IS NULL", (now, a["key"]))
        return sum(self._auto_work_order(r["id"]) for r in back)

    def _audit(self, alarm_id: int, user_id: str | None, action: str, note: str = "",
               detail: dict | None = None) -> None:
        self.db.run("INSERT INTO alarm_audit (alarm_id, time_ns, user_id, action, note, detail) "
                    "VALUES (?, ?, ?, ?, ?, ?)", (alarm_id, self.clock(), user_id, action, note, _json(detail or {})))

    def _alarm_row(self, r: dict, raw_evidence: bool = False) -> dict:
        if not raw_evidence:
            r["evidence"] = json.loads(r["evidence"])
        r["active"] = bool(r["active"])
        r["acked"] = bool(r["acked"])
        return r

    def alarm(self, alarm_id: int, site_ids: Collection[str] | None = None) -> dict:
        """One alarm with its derived ISA-18.2 ``state``; NotFound if absent or outside ``site_ids``."""
        frag, params = _in("a.site_id", site_ids)
        row = self.db.one(f"SELECT a.*, s.customer_id, {self._STATE_SQL} AS state FROM alarms a "
                          f"JOIN sites s ON s.id = a.site_id WHERE a.id = ? AND {frag}",
                          (self.clock(), alarm_id, *params))
        if row is None:
            raise NotFound(f"alarm {alarm_id} does not exist")
        return self._alarm_row(row)

    def alarms(self, site_ids: Collection[str] | None = None, *, site_id: str | None = None,
               device_id: str | None = None, severity: str | None = None, state: str | None = None,
               customer_id: str | None = None, since_ns: int | None = None, until_ns: int | None = None,
               open_only: bool = False, limit: int = 100, offset: int = 0,
               raw_evidence: bool = False) -> list[dict]:
        """Alarms visible in ``site_ids`` (None = all), newest first, filtered.

        ``since_ns``/``until_ns`` select alarms whose life [first raise, close] overlaps the interval.
        ``raw_evidence`` leaves ``evidence`` as the stored JSON text (for a caller that only re-encodes it).
        """
        if state is not None and state not in ALARM_STATES:
            raise Invalid(f"state must be one of {ALARM_STATES}, got {state!r}")
        if severity is not None and severity not in SEVERITIES:
            raise Invalid(f"severity must be one of {SEVERITIES}, got {severity!r}")
        now = self.clock()
        frag, params = _in("a.site_id", site_ids)
        where = [frag]
        for col, val in (("a.site_id", site_id), ("a.device_id", device_id), ("a.severity", severity),
                         ("s.customer_id", customer_id)):
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        if since_ns is not None:
            where.append("(a.closed_ns IS NULL OR a.closed_ns >= ?)")
            params.append(since_ns)
        if until_ns is not None:
            where.append("a.first_raised_ns < ?")
            params.append(until_ns)
        if open_only:
            where.append("a.closed_ns IS NULL")
        sql = (f"SELECT a.*, s.customer_id, {self._STATE_SQL} AS state FROM alarms a "
               f"JOIN sites s ON s.id = a.site_id WHERE {' AND '.join(where)}")
        if state is not None:
            sql = f"SELECT * FROM ({sql}) t WHERE state = ?"
            params.append(state)
        sql += " ORDER BY raised_ns DESC, id DESC LIMIT ? OFFSET ?"
        return [self._alarm_row(r, raw_evidence) for r in self.db.rows(sql, (now, *params, int(limit), int(offset)))]

    def alarms_version(self) -> int:
        """A counter that changes with every committed write to the alarms table, by any process.

        Database triggers bump it (migration 4), so it covers every instance sharing the
        database.  Read it *before* reading the alarms it is to validate.
        """
        row = self.db.one("SELECT n FROM change_counters WHERE name = 'alarms'")
        return int(row["n"]) if row else 0

    def next_shelve_expiry_ns(self, now_ns: int) -> int | None:
        """The earliest shelve expiry after ``now_ns``: when a derived alarm state next changes by itself."""
        row = self.db.one("SELECT MIN(shelved_until_ns) AS t FROM alarms WHERE shelved_until_ns > ?", (now_ns,))
        return int(row["t"]) if row and row["t"] is not None else None

    def ack_alarm(self, alarm_id: int, user_id: str, note: str = "",
                  site_ids: Collection[str] | None = None) -> dict:
        """Acknowledge: active-unacked → active-acked; rtn-unacked → cleared (closed)."""
        with self.db.tx():
            a = self.alarm(alarm_id, site_ids)
            if a["state"] == "cleared":
                raise Conflict(f"alarm {alarm_id} is already cleared")
            if a["acked"]:
                raise Conflict(f"alarm {alarm_id} is already acknowledged")
            now = self.clock()
            close = not a["active"]
            n = self.db.run("UPDATE alarms SET acked = 1, acked_ns = ?, acked_by = ?, ack_note = ?, closed_ns = ?, "
                            "updated_ns = ? WHERE id = ? AND acked = 0 AND active = ?",
                            (now, user_id, note, now if close else None, now, alarm_id, int(a["active"])))
            if n != 1:
                raise Conflict(f"alarm {alarm_id} changed concurrently; reload and retry")
            self._audit(alarm_id, user_id, "ack", note, {"closed": close})
        return self.alarm(alarm_id)

    def shelve_alarm(self, alarm_id: int, user_id: str, until_ns: int, reason: str,
                     site_ids: Collection[str] | None = None) -> dict:
        """Shelve an open alarm until ``until_ns`` (at most 8 h ahead, ISA-18.2 clause 16.3); reason required."""
        now = self.clock()
        if not reason or not reason.strip():
            raise Invalid("shelving needs a reason")
        if not now < until_ns <= now + MAX_SHELVE_NS:
            raise Invalid(f"shelve expiry must be in the future and at most 8 h ahead "
                          f"(got {(until_ns - now) / 3.6e12:.2f} h)")
        with self.db.tx():
            a = self.alarm(alarm_id, site_ids)
            if a["state"] == "cleared":
                raise Conflict(f"alarm {alarm_id} is cleared; only open alarms can be shelved")
            self.db.run("UPDATE alarms SET shelved_until_ns = ?, shelved_by = ?, shelve_reason = ?, updated_ns = ? "
                        "WHERE id = ?", (until_ns, user_id, reason, now, alarm_id))
            self._audit(alarm_id, user_id, "shelve", reason, {"until_ns": until_ns})
        return self.alarm(alarm_id)

    def unshelve_alarm(self, alarm_id: int, user_id: str, site_ids: Collection[str] | None = None) -> dict:
        with self.db.tx():
            a = self.alarm(alarm_id, site_ids)
            if a["state"] != "shelved":
                raise Conflict(f"alarm {alarm_id} is not shelved (state {a['state']})")
            now = self.clock()
            self.db.run("UPDATE alarms SET shelved_until_ns = NULL, updated_ns = ? WHERE id = ?", (now, alarm_id))
            self._audit(alarm_id, user_id, "unshelve")
        return self.alarm(alarm_id)

    def alarm_audit(self, alarm_id: int) -> list[dict]:
        rows = self.db.rows("SELECT time_ns, user_id, action, note, detail FROM alarm_audit WHERE alarm_id = ? "
                            "ORDER BY id", (alarm_id,))
        for r in rows:
            r["detail"] = json.loads(r["detail"])
        return rows

    def alarm_activations(self, site_ids: Collection[str] | None, start_ns: int, end_ns: int) -> list[dict]:
        """Activations (raise times) in [start, end) with key, site, severity and engineer group."""
        frag, params = _in("a.site_id", site_ids)
        return self.db.rows(
            f"SELECT v.key, v.raised_ns, v.cleared_ns, a.site_id, a.severity, a.type, a.suppressed_by, "
            f"s.engineer_group "
            f"FROM alarm_activations v JOIN alarms a ON a.id = v.alarm_id JOIN sites s ON s.id = a.site_id "
            f"WHERE {frag} AND v.raised_ns >= ? AND v.raised_ns < ? ORDER BY v.raised_ns",
            (*params, start_ns, end_ns))

    # ----------------------------------------------------------------- work orders
    def _create_work_order(self, *, site_id: str, device_id: str | None, alarm_id: int | None, title: str,
                           description: str, severity: str, created_by: str, assignee: str | None = None) -> int:
        site = self.site(site_id)
        owner = self.customer(site["customer_id"])["manager"]
        lim = self.limits.limits[severity]
        now = self.clock()
        wo = self.db.insert(
            "INSERT INTO work_orders (site_id, device_id, alarm_id, title, description, severity, state, owner, "
            "created_ns, created_by, response_due_ns, arrival_due_ns, repair_due_ns, updated_ns) "
            "VALUES (?, ?, ?, ?, ?, ?, 'new', ?, ?, ?, ?, ?, ?, ?)",
            (site_id, device_id, alarm_id, title, description, severity, owner, now, created_by,
             now + lim.response_s * NS, now + lim.arrival_s * NS, now + lim.repair_s * NS, now))
        self._wo_log(wo, created_by, "create", None, "new", description)
        if assignee is not None:
            self._assign(wo, assignee, created_by)
        return wo

    def create_work_order(self, *, site_id: str, title: str, severity: str, created_by: str,
                          device_id: str | None = None, alarm_id: int | None = None, description: str = "",
                          assignee: str | None = None) -> dict:
        """Create a work order by hand or from an alarm; due times from :attr:`limits`."""
        if severity not in SEVERITIES:
            raise Invalid(f"severity must be one of {SEVERITIES}, got {severity!r}")
        if not title.strip():
            raise Invalid("title must not be empty")
        with self.db.tx():
            self.site(site_id)
            if device_id is not None:
                dev = self.device(device_id)
                if dev["site_id"] != site_id:
                    raise Invalid(f"device {device_id!r} is not on site {site_id!r}")
            if alarm_id is not None:
                a = self.alarm(alarm_id)
                if a["site_id"] != site_id:
                    raise Invalid(f"alarm {alarm_id} is not on site {site_id!r}")
                if self.db.one("SELECT id FROM work_orders WHERE alarm_id = ? AND state <> 'closed'", (alarm_id,)):
                    raise Conflict(f"alarm {alarm_id} already has an open work order")
            wo = self._create_work_order(site_id=site_id, device_id=device_id, alarm_id=alarm_id, title=title,
                                         description=description, severity=severity, created_by=created_by,
                                         assignee=assignee)
        return self.work_order(wo)

    def _wo_log(self, wo: int, user_id: str, action: str, from_state: str | None, to_state: str | None,
                note: str = "") -> None:
        self.db.run("INSERT INTO work_order_log (work_order_id, time_ns, user_id, action, from_state, to_state, "
                    "note) VALUES (?, ?, ?, ?, ?, ?, ?)", (wo, self.clock(), user_id, action, from_state,
                                                          to_state, note))

    def _assign(self, wo: int, engineer: str, by: str) -> None:
        u = self.db.one("SELECT role, active FROM users WHERE id = ?", (engineer,))
        if u is None or u["role"] != "engineer" or not u["active"]:
            raise Invalid(f"assignee {engineer!r} is not an active engineer")
        self.db.run("UPDATE work_orders SET assignee = ?, updated_ns = ? WHERE id = ?", (engineer, self.clock(), wo))
        self._wo_log(wo, by, "assign", None, None, engineer)

    def assign_work_order(self, wo_id: int, engineer: str, by: str, site_ids: Collection[str] | None = None) -> dict:
        with self.db.tx():
            w = self.work_order(wo_id, site_ids)
            if w["state"] in ("resolved", "closed"):
                raise Conflict(f"work order {wo_id} is {w['state']}; it cannot be reassigned")
            self._assign(wo_id, engineer, by)
        return self.work_order(wo_id)

    def transition_work_order(self, wo_id: int, to_state: str, by: str, note: str = "",
                              site_ids: Collection[str] | None = None) -> dict:
        """Move a work order one step along new → dispatched → on_site → resolved → closed.

        Dispatching needs an assignee; closing needs a resolution note (``note``, or the one
        given when resolving) and, for an order opened from an alarm, the alarm's condition
        cleared (returned to normal).
        """
        if to_state not in WO_STATES:
            raise Invalid(f"state must be one of {WO_STATES}, got {to_state!r}")
        with self.db.tx():
            w = self.work_order(wo_id, site_ids)
            if WO_NEXT.get(w["state"]) != to_state:
                raise Conflict(f"work order {wo_id}: cannot go from {w['state']!r} to {to_state!r} "
                               f"(next allowed: {WO_NEXT.get(w['state'])!r})")
            now = self.clock()
            sets = {f"{to_state}_ns": now, f"{to_state}_by": by, "state": to_state, "updated_ns": now}
            if to_state == "dispatched" and not w["assignee"]:
                raise Conflict(f"work order {wo_id}: assign an engineer before dispatching")
            if to_state == "resolved" and note.strip():
                sets["resolution_note"] = note
            if to_state == "closed":
                resolution = note.strip() or w["resolution_note"].strip()
                if not resolution:
                    raise Conflict(f"work order {wo_id}: closing needs a resolution note")
                sets["resolution_note"] = resolution
                if w["alarm_id"] is not None:
                    a = self.alarm(w["alarm_id"])
                    if a["active"]:
                        raise Conflict(f"work order {wo_id}: alarm {w['alarm_id']} is still active; "
                                       f"it must be cleared before closing")
            n = self.db.run(f"UPDATE work_orders SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ? AND state = ?",
                            (*sets.values(), wo_id, w["state"]))
            if n != 1:                                # another instance moved it meanwhile
                raise Conflict(f"work order {wo_id} changed state concurrently; reload and retry")
            self._wo_log(wo_id, by, "transition", w["state"], to_state, note)
        return self.work_order(wo_id)

    def _wo_row(self, r: dict, now: int) -> dict:
        stage = {"new": "response", "dispatched": "arrival", "on_site": "repair"}.get(r["state"])
        r["due_ns"] = r[f"{stage}_due_ns"] if stage else None
        r["stage"] = stage
        r["overdue"] = bool(stage and now > r["due_ns"])
        for st, done in (("response", "dispatched_ns"), ("arrival", "on_site_ns"), ("repair", "resolved_ns")):
            due = r[f"{st}_due_ns"]
            r[f"{st}_ok"] = (r[done] <= due) if r[done] is not None else (False if now > due else None)
        r["in_time"] = None if r["state"] not in ("resolved", "closed") else bool(
            r["response_ok"] and r["arrival_ok"] and r["repair_ok"])
        return r

    _WO_SELECT = "SELECT w.*, s.customer_id, s.engineer_group FROM work_orders w JOIN sites s ON s.id = w.site_id"

    def work_order(self, wo_id: int, site_ids: Collection[str] | None = None) -> dict:
        """One work order with due time of its current stage, overdue flag and per-stage compliance."""
        frag, params = _in("w.site_id", site_ids)
        row = self.db.one(f"{self._WO_SELECT} WHERE w.id = ? AND {frag}", (wo_id, *params))
        if row is None:
            raise NotFound(f"work order {wo_id} does not exist")
        return self._wo_row(row, self.clock())

    def work_orders(self, site_ids: Collection[str] | None = None, *, site_id: str | None = None,
                    state: str | None = None, assignee: str | None = None, customer_id: str | None = None,
                    overdue: bool | None = None, created_from_ns: int | None = None,
                    created_to_ns: int | None = None, limit: int = 100, offset: int = 0) -> list[dict]:
        if state is not None and state not in WO_STATES:
            raise Invalid(f"state must be one of {WO_STATES}, got {state!r}")
        frag, params = _in("w.site_id", site_ids)
        where = [frag]
        for col, val in (("w.site_id", site_id), ("w.state", state), ("w.assignee", assignee),
                         ("s.customer_id", customer_id)):
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        if created_from_ns is not None:
            where.append("w.created_ns >= ?")
            params.append(created_from_ns)
        if created_to_ns is not None:
            where.append("w.created_ns < ?")
            params.append(created_to_ns)
        now = self.clock()
        if overdue is not None:
            expr = ("((w.state = 'new' AND w.response_due_ns < ?) OR (w.state = 'dispatched' AND "
                    "w.arrival_due_ns < ?) OR (w.state = 'on_site' AND w.repair_due_ns < ?))")
            where.append(expr if overdue else f"NOT {expr}")
            params += [now, now, now]
        rows = self.db.rows(f"{self._WO_SELECT} WHERE {' AND '.join(where)} ORDER BY w.id DESC LIMIT ? OFFSET ?",
                            (*params, int(limit), int(offset)))
        return [self._wo_row(r, now) for r in rows]

    def work_order_log(self, wo_id: int) -> list[dict]:
        return self.db.rows("SELECT time_ns, user_id, action, from_state, to_state, note FROM work_order_log "
                            "WHERE work_order_id = ? ORDER BY id", (wo_id,))

    def escalate_overdue(self) -> list[dict]:
        """Escalate every overdue open order; return the escalations made now.

        Level 1 goes to the site's customer manager as soon as a stage is overdue; level 2
        goes to every active admin once it is overdue by ``admin_factor`` × the stage limit.
        Each (order, stage, level, person) is escalated once.
        """
        now = self.clock()
        made: list[dict] = []
        with self.db.tx():
            admins = [r["id"] for r in self.db.rows("SELECT id FROM users WHERE role = 'admin' AND active = 1")]
            for w in self.work_orders(overdue=True, limit=100000):
                stage, due = w["stage"], w["due_ns"]
                allowed = due - w["created_ns"]
                targets: list[tuple[int, str]] = [(1, w["owner"])] if w["owner"] else []
                if now > due + self.limits.admin_factor * allowed:
                    targets += [(2, a) for a in admins]
                for level, person in targets:
                    n = self.db.run("INSERT INTO escalations (work_order_id, time_ns, stage, level, notified) "
                                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                                    (w["id"], now, stage, level, person))
                    if n:
                        made.append({"work_order_id": w["id"], "stage": stage, "level": level, "notified": person,
                                     "time_ns": now})
                        self._wo_log(w["id"], SYSTEM, "escalate", w["state"], w["state"],
                                     f"{stage} overdue: level {level} to {person}")
                top = max((lv for lv, _ in targets), default=0)
                if top > w["escalation_level"]:
                    self.db.run("UPDATE work_orders SET escalation_level = ? WHERE id = ?", (top, w["id"]))
        return made

    def escalations(self, notified: str | None = None, work_order_id: int | None = None,
                    site_ids: Collection[str] | None = None) -> list[dict]:
        """Escalations with their order's ``site_id``, oldest first; ``site_ids`` (None = all) limits them
        to the orders of those sites."""
        frag, params = _in("w.site_id", site_ids)
        where = [frag]
        if notified is not None:
            where.append("e.notified = ?")
            params.append(notified)
        if work_order_id is not None:
            where.append("e.work_order_id = ?")
            params.append(work_order_id)
        return self.db.rows(f"SELECT e.id, e.work_order_id, w.site_id, e.time_ns, e.stage, e.level, e.notified, "
                            f"e.mail_state, e.mail_to, e.mail_attempts, e.mail_error, e.mail_sent_ns "
                            f"FROM escalations e JOIN work_orders w ON w.id = e.work_order_id "
                            f"WHERE {' AND '.join(where)} ORDER BY e.id", params)

    # e-mail delivery of escalations (the sender is api/notify.py; SMTP lives outside core)
    def escalation_mails_due(self, limit: int = 100) -> list[dict]:
        """Escalations whose e-mail is not sent yet (``pending``, or ``no_address`` to re-check), oldest
        first, with what a message needs: the order, its site and customer, the stage's due time and
        the addressee's e-mail (``''`` when the user has none or does not exist)."""
        return self.db.rows(
            "SELECT e.id, e.work_order_id, e.time_ns, e.stage, e.level, e.notified, e.mail_state, e.mail_attempts, "
            "e.mail_claim_ns, w.title, w.severity, w.state AS wo_state, w.created_ns, w.response_due_ns, "
            "w.arrival_due_ns, w.repair_due_ns, w.site_id, s.name AS site_name, s.timezone, s.customer_id, "
            "c.name AS customer_name, COALESCE(u.email, '') AS email, u.id AS user_id "
            "FROM escalations e JOIN work_orders w ON w.id = e.work_order_id JOIN sites s ON s.id = w.site_id "
            "JOIN customers c ON c.id = s.customer_id LEFT JOIN users u ON u.id = e.notified "
            "WHERE e.mail_state IN ('pending', 'no_address') ORDER BY e.id LIMIT ?", (int(limit),))

    def claim_escalation_mail(self, escalation_id: int, lease_s: float = 300.0) -> bool:
        """Take the right to send one escalation's e-mail; False if it is sent or another sender holds
        it (a claim older than ``lease_s`` is taken over: its sender died mid-send)."""
        now = self.clock()
        with self.db.tx():
            n = self.db.run("UPDATE escalations SET mail_claim_ns = ? WHERE id = ? "
                            "AND mail_state IN ('pending', 'no_address') "
                            "AND (mail_claim_ns IS NULL OR mail_claim_ns < ?)",
                            (now, escalation_id, now - int(lease_s * NS)))
        return n == 1

    def record_escalation_mail(self, escalation_id: int, state: str, *, to: str = "", error: str = "",
                               attempted: bool = True) -> None:
        """Record the outcome of a delivery: ``sent`` (to ``to``), ``pending`` (failed; ``error`` says
        why; retried next sweep) or ``no_address``.  A sent escalation is never changed again."""
        if state not in ("sent", "pending", "no_address"):
            raise Invalid(f"mail state must be sent, pending or no_address, got {state!r}")
        with self.db.tx():
            self.db.run("UPDATE escalations SET mail_state = ?, mail_to = ?, mail_error = ?, "
                        "mail_attempts = mail_attempts + ?, mail_sent_ns = ?, mail_claim_ns = NULL "
                        "WHERE id = ? AND mail_state <> 'sent'",
                        (state, to, error[:1000], int(attempted), self.clock() if state == "sent" else None,
                         escalation_id))

    def weekly_review(self, start_ns: int, site_ids: Collection[str] | None = None) -> dict:
        """Review of the week [start, start + 7 d): open, overdue and closed-in-time orders, by engineer and customer."""
        end = start_ns + 7 * 86400 * NS
        now = self.clock()
        frag, params = _in("w.site_id", site_ids)
        rows = [self._wo_row(r, min(now, end)) for r in self.db.rows(
            f"{self._WO_SELECT} WHERE {frag} AND w.created_ns < ? AND (w.closed_ns IS NULL OR w.closed_ns >= ?)",
            (*params, end, start_ns))]

        def blank() -> dict:
            return {"open": 0, "overdue": 0, "closed": 0, "closed_in_time": 0}

        total, by_eng, by_cust = blank(), {}, {}
        for r in rows:
            is_open = r["closed_ns"] is None or r["closed_ns"] >= end
            closed = not is_open
            for agg in (total, by_eng.setdefault(r["assignee"] or "(unassigned)", blank()),
                        by_cust.setdefault(r["customer_id"], blank())):
                agg["open"] += is_open
                agg["overdue"] += bool(is_open and r["overdue"])
                agg["closed"] += closed
                agg["closed_in_time"] += bool(closed and r["in_time"])
        return {"start_ns": start_ns, "end_ns": end, "total": total, "by_engineer": by_eng, "by_customer": by_cust,
                "orders": rows}

    # ----------------------------------------------------------------- reads for reports
    def customer_alarms(self, customer_id: str, start_ns: int, end_ns: int) -> list[dict]:
        """Alarms of a customer first raised in [start, end), oldest first."""
        rows = self.db.rows(f"SELECT a.*, s.customer_id, {self._STATE_SQL} AS state FROM alarms a "
                            f"JOIN sites s ON s.id = a.site_id WHERE s.customer_id = ? AND a.first_raised_ns >= ? "
                            f"AND a.first_raised_ns < ? ORDER BY a.first_raised_ns, a.id",
                            (self.clock(), customer_id, start_ns, end_ns))
        return [self._alarm_row(r) for r in rows]

    def customer_work_orders(self, customer_id: str, start_ns: int, end_ns: int) -> dict:
        """Work orders of a customer created in [start, end) with time-limit compliance.

        Returns ``{"orders": [...], "compliance": {...}}`` where compliance counts, per stage
        (response, arrival, repair), orders in time / late / pending and the in-time ratio.
        """
        orders = self.work_orders(customer_id=customer_id, created_from_ns=start_ns, created_to_ns=end_ns,
                                  limit=100000)
        comp: dict[str, Any] = {}
        for st in ("response", "arrival", "repair"):
            ok = sum(1 for o in orders if o[f"{st}_ok"] is True)
            late = sum(1 for o in orders if o[f"{st}_ok"] is False)
            comp[st] = {"in_time": ok, "late": late, "pending": len(orders) - ok - late,
                        "ratio": ok / (ok + late) if ok + late else None}
        done = [o for o in orders if o["in_time"] is not None]
        comp["closed_or_resolved"] = len(done)
        comp["all_stages_in_time"] = sum(1 for o in done if o["in_time"])
        return {"orders": orders, "compliance": comp}

    # ----------------------------------------------------------------- inspections
    def create_inspection_plan(self, site_id: str, name: str, interval_s: int, checklist: list[str],
                               first_due_ns: int, created_by: str, grace_s: int = 86400) -> dict:
        """A patrol (巡檢) plan: every ``interval_s`` from ``first_due_ns``; missed after ``grace_s``."""
        if not checklist or not all(isinstance(c, str) and c.strip() for c in checklist):
            raise Invalid("checklist must be a non-empty list of non-empty item texts")
        if len(set(checklist)) != len(checklist):
            raise Invalid("checklist items must be unique")
        if not 3600 <= interval_s <= 366 * 86400:
            raise Invalid(f"interval must be 1 h .. 366 d, got {interval_s} s")
        if not 0 <= grace_s <= interval_s:
            raise Invalid(f"grace must be 0 .. interval, got {grace_s} s")
        with self.db.tx():
            self.site(site_id)
            pid = self.db.insert(
                "INSERT INTO inspection_plans (site_id, name, interval_s, grace_s, checklist, first_due_ns, "
                "created_ns, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (site_id, name, interval_s, grace_s, _json(checklist), first_due_ns, self.clock(), created_by))
            self.db.run("INSERT INTO inspections (plan_id, site_id, due_ns, state) VALUES (?, ?, ?, 'scheduled')",
                        (pid, site_id, first_due_ns))
        return self.inspection_plan(pid)

    def inspection_plan(self, plan_id: int, site_ids: Collection[str] | None = None) -> dict:
        frag, params = _in("site_id", site_ids)
        row = self.db.one(f"SELECT * FROM inspection_plans WHERE id = ? AND {frag}", (plan_id, *params))
        if row is None:
            raise NotFound(f"inspection plan {plan_id} does not exist")
        row["checklist"] = json.loads(row["checklist"])
        return row

    def inspection_plans(self, site_ids: Collection[str] | None = None, site_id: str | None = None) -> list[dict]:
        frag, params = _in("site_id", site_ids)
        if site_id is not None:
            frag += " AND site_id = ?"
            params.append(site_id)
        rows = self.db.rows(f"SELECT * FROM inspection_plans WHERE {frag} ORDER BY id", params)
        for r in rows:
            r["checklist"] = json.loads(r["checklist"])
        return rows

    def refresh_inspections(self) -> int:
        """Flag missed patrols (not done by due + grace) and schedule the next ones; return how many were missed."""
        now = self.clock()
        missed = 0
        with self.db.tx():
            for p in self.db.rows("SELECT * FROM inspection_plans WHERE active = 1"):
                for _ in range(1000):          # bounded catch-up after a long outage
                    last = self.db.one("SELECT * FROM inspections WHERE plan_id = ? ORDER BY due_ns DESC LIMIT 1",
                                       (p["id"],))
                    assert last is not None
                    if last["state"] == "scheduled" and now > last["due_ns"] + p["grace_s"] * NS:
                        self.db.run("UPDATE inspections SET state = 'missed' WHERE id = ?", (last["id"],))
                        missed += 1
                        last["state"] = "missed"
                    if last["state"] != "scheduled":
                        nxt = last["due_ns"] + p["interval_s"] * NS
                        self.db.run("INSERT INTO inspections (plan_id, site_id, due_ns, state) "
                                    "VALUES (?, ?, ?, 'scheduled') ON CONFLICT DO NOTHING", (p["id"], p["site_id"], nxt))
                        if nxt + p["grace_s"] * NS < now:
                            continue
                    break
        return missed

    def inspections(self, site_ids: Collection[str] | None = None, *, site_id: str | None = None,
                    state: str | None = None, limit: int = 100, offset: int = 0) -> list[dict]:
        frag, params = _in("i.site_id", site_ids)
        if site_id is not None:
            frag += " AND i.site_id = ?"
            params.append(site_id)
        if state is not None:
            if state not in ("scheduled", "done", "missed"):
                raise Invalid(f"state must be scheduled, done or missed, got {state!r}")
            frag += " AND i.state = ?"
            params.append(state)
        rows = self.db.rows(f"SELECT i.*, p.name AS plan_name, p.checklist FROM inspections i "
                            f"JOIN inspection_plans p ON p.id = i.plan_id WHERE {frag} "
                            f"ORDER BY i.due_ns DESC, i.id DESC LIMIT ? OFFSET ?", (*params, int(limit), int(offset)))
        for r in rows:
            r["checklist"] = json.loads(r["checklist"])
            r["results"] = json.loads(r["results"])
        return rows

    def inspection(self, inspection_id: int, site_ids: Collection[str] | None = None) -> dict:
        frag, params = _in("i.site_id", site_ids)
        row = self.db.one(f"SELECT i.*, p.name AS plan_name, p.checklist FROM inspections i "
                          f"JOIN inspection_plans p ON p.id = i.plan_id WHERE i.id = ? AND {frag}",
                          (inspection_id, *params))
        if row is None:
            raise NotFound(f"inspection {inspection_id} does not exist")
        row["checklist"] = json.loads(row["checklist"])
        row["results"] = json.loads(row["results"])
        return row

    def record_inspection(self, inspection_id: int, engineer: str, results: dict[str, dict], note: str = "",
                          site_ids: Collection[str] | None = None) -> dict:
        """Record a patrol's results: one ``{"ok": bool, "note": str}`` per checklist item, all items required."""
        with self.db.tx():
            i = self.inspection(inspection_id, site_ids)
            if i["state"] == "done":
                raise Conflict(f"inspection {inspection_id} is already recorded")
            missing = [c for c in i["checklist"] if c not in results]
            extra = [k for k in results if k not in i["checklist"]]
            if missing or extra:
                raise Invalid(f"inspection {inspection_id}: results must cover exactly the checklist; "
                              f"missing {missing}, unknown {extra}")
            for k, v in results.items():
                if not isinstance(v, dict) or not isinstance(v.get("ok"), bool):
                    raise Invalid(f"inspection {inspection_id}: item {k!r} needs {{'ok': true|false, 'note': ...}}")
            now = self.clock()
            self.db.run("UPDATE inspections SET state = 'done', done_ns = ?, engineer = ?, results = ?, note = ? "
                        "WHERE id = ?", (now, engineer, _json(results), note, inspection_id))
            p = self.inspection_plan(i["plan_id"])
            self.db.run("INSERT INTO inspections (plan_id, site_id, due_ns, state) VALUES (?, ?, ?, 'scheduled') "
                        "ON CONFLICT DO NOTHING", (p["id"], p["site_id"], i["due_ns"] + p["interval_s"] * NS))
        return self.inspection(inspection_id)

    # ----------------------------------------------------------------- surveys
    def add_survey(self, customer_id: str, kind: str, ref: str, rating: int, comment: str, user_id: str) -> dict:
        """A satisfaction survey answer (rating 1–5) after a closed work order or a monthly report (``YYYY-MM``)."""
        if kind not in SURVEY_KINDS:
            raise Invalid(f"survey kind must be one of {SURVEY_KINDS}, got {kind!r}")
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            raise Invalid(f"rating must be an integer 1..5, got {rating!r}")
        if len(comment) > 4000:
            raise Invalid("comment must be at most 4000 characters")
        with self.db.tx():
            if kind == "work_order":
                if not str(ref).isdigit():
                    raise Invalid(f"work order survey ref must be a work order id, got {ref!r}")
                w = self.db.one("SELECT w.state, s.customer_id FROM work_orders w JOIN sites s ON s.id = w.site_id "
                                "WHERE w.id = ?", (int(ref),))
                if w is None or w["customer_id"] != customer_id:
                    raise NotFound(f"work order {ref} does not exist")
                if w["state"] != "closed":
                    raise Conflict(f"work order {ref} is not closed yet")
            else:
                month_bounds_ns(ref)
            if self.db.one("SELECT id FROM surveys WHERE kind = ? AND ref = ? AND user_id = ?", (kind, ref, user_id)):
                raise Conflict(f"a survey for {kind} {ref} was already answered by {user_id!r}")
            sid = self.db.insert("INSERT INTO surveys (customer_id, kind, ref, rating, comment, user_id, created_ns) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (customer_id, kind, str(ref), rating, comment, user_id, self.clock()))
        return self.db.one("SELECT * FROM surveys WHERE id = ?", (sid,)) or {}

    def surveys(self, customer_ids: Collection[str] | None = None, start_ns: int | None = None,
                end_ns: int | None = None, kind: str | None = None) -> list[dict]:
        frag, params = _in("customer_id", customer_ids)
        if start_ns is not None:
            frag += " AND created_ns >= ?"
            params.append(start_ns)
        if end_ns is not None:
            frag += " AND created_ns < ?"
            params.append(end_ns)
        if kind is not None:
            frag += " AND kind = ?"
            params.append(kind)
        return self.db.rows(f"SELECT * FROM surveys WHERE {frag} ORDER BY created_ns, id", params)

    def survey_results(self, customer_ids: Collection[str] | None = None, start_ns: int | None = None,
                       end_ns: int | None = None) -> dict:
        """Count, mean rating and distribution (1..5) of survey answers, overall and per kind."""
        rows = self.surveys(customer_ids, start_ns, end_ns)

        def summary(rs: list[dict]) -> dict:
            dist = {str(k): sum(1 for r in rs if r["rating"] == k) for k in range(1, 6)}
            return {"count": len(rs), "mean_rating": (sum(r["rating"] for r in rs) / len(rs)) if rs else None,
                    "distribution": dist}

        out = summary(rows)
        out["by_kind"] = {k: summary([r for r in rows if r["kind"] == k]) for k in SURVEY_KINDS}
        out["answers"] = rows
        return out
