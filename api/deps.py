"""FastAPI dependencies: the store, InfluxDB, settings, clock, the principal and its tenancy scope.

The dependencies are ``async``: they are cheap (an indexed lookup at most) and so run on
the event loop without a thread-pool hop per dependency.

Tenancy is enforced in ONE place: :func:`get_scope` resolves the authenticated user to
the set of customers and sites it may see (:class:`Scope`).  Every route takes a
:data:`ScopeDep`; every read goes through the store with ``scope.site_ids`` as filter,
and a record outside the scope answers 404 exactly like a record that does not exist
(OWASP API1:2023, broken object-level authorization).  Function-level rules (API5) are
:meth:`Scope.require_staff` / :meth:`Scope.require_role` (403), checked *after* the
object lookup so another tenant's object still answers 404.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.settings import ApiSettings
from workflow import STAFF_ROLES, NotFound, Store

bearer = HTTPBearer(auto_error=False, description="Token from POST /api/v1/auth/token")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key of a service account")


async def get_store(request: Request) -> Store:
    return request.app.state.store


async def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings


async def get_clock(request: Request) -> Callable[[], int]:
    return request.app.state.clock


async def get_influx(request: Request) -> Any:
    influx = request.app.state.influx
    if influx is None:
        raise HTTPException(503, "telemetry database is not configured")
    return influx


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
ClockDep = Annotated[Callable[[], int], Depends(get_clock)]
InfluxDep = Annotated[Any, Depends(get_influx)]

_UNAUTHORIZED = HTTPException(401, "not authenticated: give a valid bearer token or X-API-Key",
                              headers={"WWW-Authenticate": "Bearer"})


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class PrincipalCache:
    """Who a credential is, and what that user may see, remembered for at most ``ttl_s`` (<= 1 s).

    Saves the token lookup and the tenancy query of back-to-back reads by one console.  An entry
    is used only while both the monotonic clock and the app clock are less than ``ttl_s`` past
    its creation (an app clock moved past a token's expiry ends it at once).  A request with a
    method other than GET/HEAD/OPTIONS (logout, key revocation, user/customer/site edits, ...)
    neither reads nor fills the cache, and :class:`ForgetPrincipalsOnWrite` empties it when such a
    request starts and again when it has finished, so in this process a revocation is in force
    for the next request.  One done by another process or API instance takes effect within
    ``ttl_s``.  ``ttl_s <= 0`` = off.
    """

    def __init__(self, ttl_s: float, clock: Callable[[], int], size: int = 10_000) -> None:
        self.ttl_s, self.clock, self.size = min(ttl_s, 1.0), clock, size
        self._d: OrderedDict[Hashable, tuple[float, int, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        if self.ttl_s <= 0:
            return None
        with self._lock:
            hit = self._d.get(key)
            if hit is None:
                return None
            mono, at_ns, value = hit
            if 0 <= time.monotonic() - mono < self.ttl_s and 0 <= self.clock() - at_ns < self.ttl_s * 1e9:
                return value
            del self._d[key]
            return None

    def put(self, key: Hashable, value: Any) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            self._d[key] = (time.monotonic(), self.clock(), value)
            self._d.move_to_end(key)
            while len(self._d) > self.size:
                self._d.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()


_NO_CACHE = PrincipalCache(0, time.time_ns)      # an app built without create_app: no caching


class ForgetPrincipalsOnWrite:
    """Pure-ASGI middleware: empty the :class:`PrincipalCache` before and after every non-read request."""

    def __init__(self, app, cache: PrincipalCache) -> None:
        self.app = app
        self.cache = cache

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        self.cache.clear()
        try:
            await self.app(scope, receive, send)
        finally:
            self.cache.clear()


def _principal_cache(request: Request) -> PrincipalCache:
    """The app's principal cache for a read; none for a write (it may revoke, deactivate or re-scope:
    always from the store)."""
    if request.method not in SAFE_METHODS:
        return _NO_CACHE
    return getattr(request.app.state, "principal_cache", None) or _NO_CACHE


def _cached_user(cache: PrincipalCache, key: tuple, lookup: Callable[[], dict | None]) -> dict | None:
    """The user under ``key``: from ``cache``, else from ``lookup()`` (then cached); every request its own copy."""
    user = cache.get(key)
    if user is not None:
        return dict(user)
    user = lookup()
    if user is not None:
        cache.put(key, dict(user))
    return user


async def get_current_user(request: Request, store: StoreDep,
                           cred: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
                           api_key: Annotated[str | None, Security(api_key_header)]) -> dict:
    """The active user behind the bearer token or API key; 401 otherwise, 429 over the rate limit."""
    user = None
    cache = _principal_cache(request)
    if cred is not None and cred.scheme.lower() == "bearer":
        user = _cached_user(cache, ("token", cred.credentials), lambda: store.user_for_token(cred.credentials))
    elif api_key:
        user = _cached_user(cache, ("key", api_key), lambda: store.user_for_api_key(api_key))
    if user is None:
        raise _UNAUTHORIZED
    if not request.app.state.rate_limiter.allow(user["id"]):
        raise HTTPException(429, "rate limit exceeded for this user; slow down", headers={"Retry-After": "1"})
    return user


UserDep = Annotated[dict, Depends(get_current_user)]


@dataclass(frozen=True)
class Scope:
    """What the principal may see: ``None`` sets mean everything (admin, engineer)."""

    user: dict
    customer_ids: frozenset[str] | None
    site_ids: frozenset[str] | None

    @property
    def user_id(self) -> str:
        return self.user["id"]

    @property
    def role(self) -> str:
        return self.user["role"]

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    def sees_site(self, site_id: str) -> bool:
        return self.site_ids is None or site_id in self.site_ids

    def sees_customer(self, customer_id: str) -> bool:
        return self.customer_ids is None or customer_id in self.customer_ids

    def check_site(self, site_id: str) -> None:
        if not self.sees_site(site_id):
            raise HTTPException(404, f"site {site_id!r} does not exist")

    def check_customer(self, customer_id: str) -> None:
        if not self.sees_customer(customer_id):
            raise HTTPException(404, f"customer {customer_id!r} does not exist")

    def require_staff(self) -> None:
        """Engineer-side functions (ack, work orders, inspections): 403 for customer users."""
        if not self.is_staff:
            raise HTTPException(403, "this function is for service staff only")

    def require_role(self, *roles: str) -> None:
        if self.role not in roles:
            raise HTTPException(403, f"this function needs one of the roles {list(roles)}")


async def get_scope(request: Request, user: UserDep, store: StoreDep) -> Scope:
    """THE tenancy dependency: principal → allowed customer and site ids."""
    cache = _principal_cache(request)
    key = ("scope", user["id"], user["role"], user["customer_id"])
    allowed = cache.get(key)
    if allowed is None:
        allowed = store.allowed_sites(user)
        cache.put(key, allowed)
    customers, sites = allowed
    return Scope(user=user, customer_ids=customers, site_ids=sites)


ScopeDep = Annotated[Scope, Depends(get_scope)]


def check_filters(scope: Scope, store: Store, site_id: str | None = None, device_id: str | None = None) -> None:
    """A list filter naming an unknown site or device, or one outside the scope, answers 404 like a path."""
    if site_id is not None:
        scope.check_site(site_id)
        store.site(site_id)
    if device_id is not None:
        try:
            dev = store.device(device_id)
        except NotFound:
            dev = None
        if dev is None or not scope.sees_site(dev["site_id"]):
            raise HTTPException(404, f"device {device_id!r} does not exist")
