"""Web pages served by the API app: login, the engineers' console, the customer dashboard, the
customer managers' page and the fleet overview.

Plain HTML (Jinja2 templates under ``api/templates/web``) plus small scripts under
``api/static`` that call the JSON API with the bearer token kept in ``sessionStorage``.
No build step.  Pages carry a strict Content-Security-Policy (scripts and styles from
this origin only), so data shown in them can never run as script.

A token may be handed to a page in the URL *fragment* (``/web/console#token=...``):
the fragment never reaches the server or its logs, and the page removes it at once.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from reports.render import environment

router = APIRouter(prefix="/web", tags=["web"], include_in_schema=False)
docs_router = APIRouter(tags=["web"], include_in_schema=False)

STATIC = Path(__file__).resolve().parent.parent / "static"
#: third-party browser assets, fetched by scripts/bootstrap.sh (pinned npm packages, sha512-checked)
VENDOR = STATIC / "vendor"
VENDOR_FILES = {"echarts.min.js": "text/javascript; charset=utf-8",
                "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
                "swagger-ui.css": "text/css; charset=utf-8",
                "echarts.LICENSE": "text/plain; charset=utf-8",
                "swagger-ui-dist.LICENSE": "text/plain; charset=utf-8"}
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
_STATIC_NAME = re.compile(r"^[a-z0-9_-]{1,40}\.(js|css)$")
_MEDIA = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-store"}
PAGES = {"login": "web/login.html", "console": "web/console.html", "customer": "web/customer.html",
         "manager": "web/manager.html", "fleet": "web/fleet.html"}


def _page(name: str, lang: str) -> HTMLResponse:
    html = environment(TEMPLATES).get_template(PAGES[name]).render(lang=lang, page=name)
    return HTMLResponse(html, headers=HEADERS)


LangQuery = Query(default="zh", pattern="^(zh|en)$", description="page language")


@router.get("")
def web_root() -> RedirectResponse:
    return RedirectResponse("/web/login", status_code=307)


@router.get("/login", response_class=HTMLResponse)
def login_page(lang: str = LangQuery) -> HTMLResponse:
    """Sign-in form; customers go on to /web/customer, staff to /web/console."""
    return _page("login", lang)


@router.get("/console", response_class=HTMLResponse)
def console_page(lang: str = LangQuery) -> HTMLResponse:
    """Engineers' alarm console: active alarms (ack, open a work order) and overdue work orders."""
    return _page("console", lang)


@router.get("/customer", response_class=HTMLResponse)
def customer_page(lang: str = LangQuery) -> HTMLResponse:
    """Customer page: sites, latest values, monthly reports, satisfaction survey."""
    return _page("customer", lang)


@router.get("/manager", response_class=HTMLResponse)
def manager_page(lang: str = LangQuery) -> HTMLResponse:
    """Customer managers: my customers' status, escalations, weekly review, surveys, alarm KPIs."""
    return _page("manager", lang)


@router.get("/fleet", response_class=HTMLResponse)
def fleet_page(lang: str = LangQuery) -> HTMLResponse:
    """Staff: every site as a tile (online, alarms, today's energy and cost) and its energy flow."""
    return _page("fleet", lang)


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    """Scripts and styles of the pages (allow-listed names only)."""
    path = STATIC / name
    if not _STATIC_NAME.match(name) or not path.is_file():
        raise HTTPException(404, f"no static file {name[:60]!r}")
    return FileResponse(path, media_type=_MEDIA[name.rsplit(".", 1)[1]],
                        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})


@router.get("/vendor/{name}")
def vendor_file(name: str) -> FileResponse:
    """ECharts and Swagger UI, served from this origin so the pages and /docs work offline."""
    path = VENDOR / name
    if name not in VENDOR_FILES:
        raise HTTPException(404, f"no vendor file {name[:60]!r}")
    if not path.is_file():
        raise HTTPException(404, f"vendor file {name!r} missing: run scripts/bootstrap.sh")
    return FileResponse(path, media_type=VENDOR_FILES[name],
                        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=86400"})


@docs_router.get("/docs", response_class=HTMLResponse)
def swagger_docs(request: Request) -> HTMLResponse:
    """Swagger UI from this origin's own copy (no CDN, so it works offline)."""
    return get_swagger_ui_html(openapi_url=request.app.openapi_url or "/openapi.json",
                               title=f"{request.app.title} – docs",
                               swagger_js_url="/web/vendor/swagger-ui-bundle.js",
                               swagger_css_url="/web/vendor/swagger-ui.css",
                               swagger_favicon_url="data:,",
                               swagger_ui_parameters={"validatorUrl": None})
