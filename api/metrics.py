"""Prometheus metrics of the API: request counts and latency by route template, method and status.

One line in :func:`api.main.create_app` wires it (``instrument(app)``); it adds

* an ASGI middleware (pure ASGI, no ``BaseHTTPMiddleware`` overhead) that times every HTTP
  request and labels it with the *route template* (``/api/v1/alarms/{alarm_id}``), never the
  raw path, so label cardinality is bounded by the number of routes; unmatched paths count
  as ``route="<unmatched>"``;
* ``GET /metrics`` in the Prometheus text format (``prometheus_client``), from a registry of
  the app's own (several apps in one process, e.g. tests, never clash).

Exposed series::

    energyhost_api_requests_total{method, route, status}               counter
    energyhost_api_request_duration_seconds{method, route}             histogram [s]
    energyhost_api_requests_in_progress                                gauge

``token``: when given (``ApiSettings.metrics_token``, ``EH_METRICS_TOKEN``), ``/metrics`` answers 401 unless the request
carries ``Authorization: Bearer <token>``; without it the endpoint is open, as is usual for a
scrape target reachable only from the monitoring network.
"""

from __future__ import annotations

import hmac
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response

BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "<unmatched>"


class ApiMetrics:
    """The API's metric families in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("energyhost_api_requests", "HTTP requests by route template and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("energyhost_api_request_duration_seconds",
                                 "HTTP request latency [s] by route template", ["method", "route"],
                                 buckets=BUCKETS, registry=self.registry)
        self.in_progress = Gauge("energyhost_api_requests_in_progress", "HTTP requests being served",
                                 registry=self.registry)


class MetricsMiddleware:
    """ASGI middleware recording :class:`ApiMetrics` for every HTTP request."""

    def __init__(self, app, metrics: ApiMetrics, skip: tuple[str, ...] = ("/metrics",)) -> None:
        self.app = app
        self.metrics = metrics
        self.skip = skip

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.skip:
            await self.app(scope, receive, send)
            return
        status = [500]              # an exception escaping the app is a 500 to the client

        async def send_wrapper(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        m = self.metrics
        m.in_progress.inc()
        t0 = time.perf_counter()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            dt = time.perf_counter() - t0
            m.in_progress.dec()
            template = route_template(scope)
            method = scope.get("method", "GET")
            m.requests.labels(method, template, str(status[0])).inc()
            m.latency.labels(method, template).observe(dt)


def route_template(scope) -> str:
    """The matched route's full path template, or :data:`UNMATCHED`.

    FastAPI >= 0.16x keeps included routers nested: ``scope["route"]`` is then the inner route
    (path without the router prefix) and the full template is in FastAPI's effective route
    context; older versions flatten routes and ``scope["route"].path_format`` is already full.
    """
    fa = scope.get("fastapi")
    ctx = fa.get("effective_route_context") if isinstance(fa, dict) else None
    for obj in (getattr(ctx, "starlette_route", None), ctx, scope.get("route")):
        path = getattr(obj, "path_format", None)
        if isinstance(path, str) and path:
            return path
    return UNMATCHED


def instrument(app, *, token: str | None = None) -> ApiMetrics:
    """Add the middleware and ``GET /metrics`` to a FastAPI/Starlette ``app``; return the metrics.

    ``token`` None or empty: open endpoint.
    """
    token = token or None
    metrics = ApiMetrics()
    app.state.api_metrics = metrics

    async def metrics_endpoint(request: Request) -> Response:
        if token is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return Response("metrics token required\n", status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return metrics
