"""Login throttling and demo user seeding.

Passwords are hashed by :func:`workflow.hash_password` (scrypt); bearer tokens are
opaque random strings stored as SHA-256 with an expiry (:meth:`workflow.Store.issue_token`),
so there is no signing key to leak and no ``alg`` header to forge; API keys
(``ehk_<id>_<secret>``) serve service accounts such as the analytics job.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable

from core.units import NS
from workflow import Conflict, Store


class LoginLimiter:
    """At most ``max_fails`` failed logins per user name in ``window_s`` (OWASP API2:2023)."""

    def __init__(self, max_fails: int, clock: Callable[[], int], window_s: float = 60.0) -> None:
        self.max_fails, self.clock, self.window_ns = max_fails, clock, int(window_s * NS)
        self._fails: dict[str, deque[int]] = defaultdict(deque)
        self._lock = threading.Lock()

    def blocked(self, username: str) -> bool:
        now = self.clock()
        with self._lock:
            q = self._fails.get(username)
            if not q:
                return False
            while q and q[0] <= now - self.window_ns:
                q.popleft()
            return len(q) >= self.max_fails

    def failed(self, username: str) -> None:
        with self._lock:
            if len(self._fails) > 100_000:          # bounded memory under a user-name spray
                self._fails.clear()
            self._fails[username].append(self.clock())

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._fails.pop(username, None)


class RateLimiter:
    """Token bucket per principal: ``rate`` requests/s sustained, bursts of ``burst`` (OWASP API4:2023).

    ``rate <= 0`` disables it.  Memory is bounded: idle buckets are dropped when the table grows.
    """

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] | None = None) -> None:
        self.rate, self.burst = rate, max(burst, 1.0)
        self.clock = clock or time.monotonic
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        if self.rate <= 0:
            return True
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            ok = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if ok else tokens, now)
            if len(self._buckets) > 100_000:
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 60}
            return ok


def _env_name(user_id: str) -> str:
    return "EH_PASSWORD_" + re.sub(r"[^A-Za-z0-9]", "_", user_id).upper()


def seed_demo_users(store: Store, fleet, env: dict[str, str] | None = None) -> dict[str, str]:
    """Create the demo users that do not exist yet; return ``{user id: generated password}``.

    Users: ``admin``, ``engineer1``, every customer's manager (``customer_manager``) and one
    customer user ``<customer id>-user`` per customer.  A password comes from the
    environment variable ``EH_PASSWORD_<ID>`` (e.g. ``EH_PASSWORD_ACME_USER``) or is
    generated and returned so the caller can print it once: never stored in the repository.
    Each gets the demo e-mail address ``<id>@example.invalid`` (RFC 2606: never delivered
    anywhere), which escalation mails go to; set real ones with ``PATCH /users/{id}``.
    """
    e = os.environ if env is None else env
    wanted: list[tuple[str, str, str | None]] = [("admin", "admin", None), ("engineer1", "engineer", None)]
    for c in fleet.customers:
        if c.manager:
            wanted.append((c.manager, "customer_manager", None))
        wanted.append((f"{c.id}-user", "customer", c.id))
    generated: dict[str, str] = {}
    for uid, role, cid in wanted:
        password = e.get(_env_name(uid))
        if not password:
            password = secrets.token_urlsafe(12)
            gen = True
        else:
            gen = False
        try:
            store.create_user(uid, role, password=password, customer_id=cid, name=uid,
                              email=f"{uid}@example.invalid")
        except Conflict:
            continue
        if gen:
            generated[uid] = password
    return generated
