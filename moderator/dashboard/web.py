"""The dashboard's web app: shared state, rendering, access control and routes (aiohttp, jinja2
templates, no JS build). The handlers live in ``review_pages`` and ``account_pages``.

Access: every path but ``/login``, ``/health`` and ``/static`` needs a session; every POST needs the
session's CSRF token (the sign-in form its own double-submit token). Cookies are HttpOnly and
SameSite=Strict; a strict Content-Security-Policy allows only this origin's script and styles.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import jinja2
from aiohttp import web
from aiokafka import AIOKafkaProducer

from moderator.core.policy import Policy
from moderator.dashboard.accounts import Accounts, Session
from moderator.dashboard.indexer import Indexer
from moderator.dashboard.overview import GroupLag, label_name, percent
from moderator.dashboard.source import SourceReader
from moderator.dashboard.store import Store
from topics import TopicNames

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "moderator_session"
LOGIN_CSRF_COOKIE = "moderator_login_csrf"
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Dashboard:
    """Everything the handlers share; built by ``moderator.dashboard.server``."""

    store: Store
    accounts: Accounts
    indexer: Indexer
    reader: SourceReader
    producer: AIOKafkaProducer
    topics: TopicNames
    policy: Policy
    metrics_urls: list[str]
    group_lag: GroupLag
    cookie_secure: bool = False
    http: aiohttp.ClientSession | None = None
    failures: dict[str, deque[float]] = field(default_factory=dict)
    _facets: tuple[float, dict[str, list[str]]] = (0.0, {})

    def facets(self) -> dict[str, list[str]]:
        """The filter drop-downs' values, re-read at most every 30 s (they change slowly)."""
        read_at, values = self._facets
        if time.monotonic() - read_at > 30.0:
            values = self.store.facets()
            self._facets = (time.monotonic(), values)
        return values


KEY: web.AppKey[Dashboard] = web.AppKey("dashboard", Dashboard)

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(HERE / "templates")),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_env.filters["label"] = label_name
_env.filters["percent"] = percent
_env.filters["quote"] = lambda s: quote(str(s), safe="")
_env.filters["when"] = lambda ts: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(ts))) if ts else "–"


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    session: Session | None = request.get("session")
    body = _env.get_template(template).render(session=session, path=request.path, **context)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def safe_next(target: str | None) -> str:
    """Only same-site paths: an open redirect after sign-in is a phishing tool."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


# -- middleware ------------------------------------------------------------------------------------


@web.middleware
async def security(request: web.Request, handler: Handler) -> web.StreamResponse:
    dash = request.app[KEY]
    public = request.path in ("/login", "/health", "/favicon.ico") or request.path.startswith("/static/")
    session = dash.accounts.session(request.cookies.get(SESSION_COOKIE))
    request["session"] = session
    if not public and session is None:
        if request.path.startswith("/api/"):
            raise web.HTTPUnauthorized(text='{"error": "sign in first"}', content_type="application/json")
        raise web.HTTPSeeOther("/login?" + urlencode({"next": request.path_qs}))
    if request.method == "POST" and not public:
        assert session is not None
        form = await request.post()
        token = str(form.get("csrf", "")) or request.headers.get("X-CSRF-Token", "")
        if not secrets.compare_digest(token, session.csrf):
            raise web.HTTPForbidden(text="CSRF token missing or wrong; reload the page and try again")
    response = await handler(request)
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


async def health(request: web.Request) -> web.Response:
    dash = request.app[KEY]
    polled = time.time() - dash.indexer.last_poll if dash.indexer.last_poll else None
    ok = polled is not None and polled < 30
    body = {
        "status": "ok" if ok else "starting" if polled is None else "stalled",
        "seconds_since_index_poll": None if polled is None else round(polled, 1),
        "redis_overrides": dash.indexer.redis_ok,
        "skipped_records": dash.indexer.bad_records,
    }
    return web.json_response(body, status=200 if ok else 503)


async def no_content(request: web.Request) -> web.Response:
    """The browser's favicon request: answered, so it never lands on (and resets) the sign-in page."""
    return web.Response(status=204)


def build_app(dash: Dashboard) -> web.Application:
    # imported here: the page modules import this one for KEY, Dashboard and render
    from moderator.dashboard.account_pages import login, login_page, logout, users_change, users_page
    from moderator.dashboard.review_pages import decide, item_page, overview, queue, texts_api

    app = web.Application(middlewares=[security], client_max_size=64 * 1024)
    app[KEY] = dash
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/health", health)
    app.router.add_get("/favicon.ico", no_content)
    app.router.add_get("/", overview)
    app.router.add_get("/queue", queue)
    app.router.add_get("/item/{item_id:.+}", item_page)
    app.router.add_get("/api/texts", texts_api)
    app.router.add_post("/decide", decide)
    app.router.add_get("/users", users_page)
    app.router.add_post("/users", users_change)
    app.router.add_static("/static/", HERE / "static", append_version=True)
    return app
