"""The FastAPI application factory.

``create_app(settings, store=..., influx=..., clock=...)`` builds the app from injected
parts, so tests, the benchmark and ``energyhost serve`` share one construction path::

    from api.main import create_app, build_app_from_env
    app = create_app(ApiSettings(), store=Store("sqlite:///var/eh.db"), influx=InfluxClient(url, "energyhost"))

API routes live under ``/api/v1`` (``api/routes/reports.py`` too); the web pages
(``api/routes/web.py``) under ``/web``; OpenAPI docs at ``/docs`` (``EH_DOCS=0`` hides them).
The app also runs a background sweep (every ``escalate_every_s``) that escalates overdue
work orders, flags missed patrols and alarms missed service commitments, using the injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from api.alarm_cache import AlarmListCache
from api.auth import LoginLimiter, RateLimiter
from api.deps import ForgetPrincipalsOnWrite, PrincipalCache
from api.metrics import instrument
from api.notify import sweep_escalations
from api.routes import (
    ageing,
    alarms,
    auth,
    commitments,
    dashboard,
    export,
    inspections,
    registry,
    reports,
    reviews,
    suppliers,
    surveys,
    telemetry,
    web,
    workorders,
)
from api.routes.telemetry import TtlCache
from api.settings import ApiSettings
from api.validation import document_422, validation_error_handler
from workflow import Conflict, Invalid, NotFound, Store, TimeLimits

log = logging.getLogger("energyhost.api")
API_PREFIX = "/api/v1"
MAX_BODY_BYTES = 1_000_000            # reliability.md §12: request body <= 1 MB
LOGIN_FAILS_PER_ADDRESS_FACTOR = 4    # failed logins per client address and minute: 4 x those per user name


def create_app(settings: ApiSettings | None = None, *, store: Store, influx: Any = None,
               clock: Callable[[], int] = time.time_ns, background: bool = True, fleet: Any = None) -> FastAPI:
    """Build the API application.

    Parameters
    ----------
    settings
        :class:`api.settings.ApiSettings` (default: built-in defaults).
    store
        The workflow store (:class:`workflow.Store`); its clock should be ``clock``.
    influx
        A :class:`core.influx.InfluxClient` (READ-only credentials recommended) or None (telemetry 503).
    clock
        Callable returning now [ns] (tests inject a controllable one).
    background
        Run the periodic escalation / missed-patrol sweep.
    fleet
        The :class:`core.config.Fleet` (used by the report routes; read from ``EH_FLEET`` when None).
    """
    settings = settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        task = None
        if background and settings.escalate_every_s > 0:
            task = asyncio.create_task(_sweep(store, settings.escalate_every_s, lambda: _breaches(app)))
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(title="energyhost API", version="0.1.0", lifespan=lifespan,
                  description="Energy hosting service: registry, telemetry, alarms (ISA-18.2), work orders "
                              "with time limits, inspections, surveys.",
                  docs_url=None, redoc_url=None,          # /docs: api/routes/web.py, no CDN
                  openapi_url="/openapi.json" if settings.docs else None,
                  # counted as the body arrives (chunked too): 413 once past the limit, before reading on
                  max_body_size=MAX_BODY_BYTES)
    _init_state(app, settings, store, influx, clock, fleet)
    _add_error_handlers(app)

    app.add_middleware(ForgetPrincipalsOnWrite, cache=app.state.principal_cache)

    api = APIRouter(prefix=API_PREFIX)
    for module in (auth, registry, telemetry, alarms, workorders, inspections, surveys, reports, dashboard, export,
                   commitments, reviews, suppliers, ageing):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(web.router)
    if settings.docs:
        app.include_router(web.docs_router)

    @app.get("/healthz", tags=["meta"])
    async def healthz() -> dict:
        """Liveness: the process answers and the store is reachable."""
        return {"ok": True, "schema_version": store.schema_version()}

    instrument(app, token=settings.metrics_token)   # Prometheus counts and latency by route and status, at /metrics
    return app


def _breaches(app: FastAPI) -> int:
    """Alarm missed service commitments (reports/commitments.py), once per customer, commitment and month."""
    from reports.commitments import sweep_breaches

    return sweep_breaches(app.state.store, app.state.settings.contracts_dir, reports.get_archive_of(app))


def _init_state(app: FastAPI, settings: ApiSettings, store: Store, influx: Any, clock: Callable[[], int],
                fleet: Any) -> None:
    """What the routes find on ``app.state``: settings, store, clients, limiters and caches."""
    app.state.settings = settings
    app.state.store = store
    app.state.influx = influx
    app.state.clock = clock
    if fleet is not None:
        app.state.fleet = fleet
    app.state.login_limiter = LoginLimiter(settings.login_max_fails, clock)
    app.state.login_address_limiter = LoginLimiter(LOGIN_FAILS_PER_ADDRESS_FACTOR * settings.login_max_fails, clock)
    app.state.rate_limiter = RateLimiter(settings.rate_limit, 2 * settings.rate_limit)
    app.state.telemetry_cache = TtlCache(settings.telemetry_cache_s)
    app.state.alarm_list_cache = AlarmListCache(int(settings.alarm_cache_mb * 2**20))
    app.state.principal_cache = PrincipalCache(settings.auth_cache_s, clock)


def _add_error_handlers(app: FastAPI) -> None:
    """422 for invalid bodies (documented in the schema), 404/409/422 for the workflow's errors."""
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    document_422(app)

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Conflict)
    async def conflict(_: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(Invalid)
    async def invalid(_: Request, exc: Invalid) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)


async def _sweep(store: Store, every_s: float, breaches: Callable[[], int] | None = None) -> None:
    while True:
        try:
            await asyncio.to_thread(sweep_escalations, store)      # escalate, then e-mail (api/notify.py)
            await asyncio.to_thread(store.refresh_inspections)
            if breaches is not None:
                await asyncio.to_thread(breaches)
        except Exception:  # keep sweeping; the error is logged
            log.exception("escalation / inspection sweep failed")
        await asyncio.sleep(every_s)


def build_app_from_env(fleet_path: str | None = None, *, seed_users: bool = True,
                       settings: ApiSettings | None = None) -> tuple[FastAPI, dict[str, str]]:
    """Build the app from the environment (``energyhost serve``).

    Opens the store (``EH_STORE_URL``), seeds the registry from ``fleet_path`` and, when
    ``seed_users``, the demo users; returns ``(app, generated passwords)`` so the caller
    can print the generated passwords once.
    """
    from api.auth import seed_demo_users
    from core.config import load_fleet
    from core.influx import InfluxClient

    settings = settings or ApiSettings.from_env()
    limits = TimeLimits.from_toml(settings.time_limits_file) if settings.time_limits_file else None
    store = Store(settings.store_url, limits=limits)
    generated: dict[str, str] = {}
    fleet = None
    if fleet_path:
        fleet = load_fleet(fleet_path)
        store.seed_fleet(fleet)
        if seed_users:
            generated = seed_demo_users(store, fleet)
    influx = InfluxClient.from_settings(settings.influx)
    return create_app(settings, store=store, influx=influx, fleet=fleet), generated
