"""Accounts: users, passwords, bearer tokens, API keys and tenancy (which sites a user may see).

Passwords are hashed with scrypt; tokens and API-key secrets are stored as SHA-256 only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any

from workflow.db import NS, Conflict, Ctx, Invalid, NotFound, check_email, check_id, sql_in
from workflow.vocab import ROLES

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



class Accounts:
    """Users and their credentials; the tenancy rule (:meth:`allowed_sites`)."""

    def __init__(self, ctx: Ctx, password_cost: dict[str, int] | None = None) -> None:
        self.db, self.clock = ctx.db, ctx.clock
        self.password_cost = dict(password_cost or OWASP_SCRYPT)

    def create_user(self, user_id: str, role: str, *, password: str | None = None, name: str = "",
                    customer_id: str | None = None, engineer_group: str = "default", email: str = "") -> dict:
        """Create a user; a ``customer`` user must be bound to an existing ``customer_id``."""
        check_id("user id", user_id)
        if role not in ROLES:
            raise Invalid(f"role must be one of {ROLES}, got {role!r}")
        if (role == "customer") != (customer_id is not None):
            raise Invalid("customer_id is required for role 'customer' and only for it")
        if customer_id is not None and not self.db.one("SELECT id FROM customers WHERE id = ?", (customer_id,)):
            raise NotFound(f"customer {customer_id!r} does not exist")
        check_email(email)
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
            check_email(email)
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
        if row is None or not row["active"] or not row["password_hash"]:
            # the same scrypt work as a wrong password, so the time of a failure does not tell
            # which user names exist (or are deactivated)
            verify_password(password, self._dummy_hash())
            return None
        if not verify_password(password, row["password_hash"]):
            return None
        return self.user(user_id)

    def _dummy_hash(self) -> str:
        """A hash of a random secret at this store's password cost, made once."""
        cost = tuple(sorted(self.password_cost.items()))
        if getattr(self, "_dummy", (None,))[0] != cost:
            self._dummy = (cost, hash_password(secrets.token_urlsafe(16), **self.password_cost))
        return self._dummy[1]

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
        frag, params = sql_in("customer_id", customers)
        sites = [r["id"] for r in self.db.rows(f"SELECT id FROM sites WHERE {frag}", params)]
        return frozenset(customers), frozenset(sites)
