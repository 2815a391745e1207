"""The dashboard's pages and its one JSON endpoint: aiohttp, jinja2 templates, no JS build.

Access: every path but ``/login``, ``/health`` and ``/static`` needs a session; every POST needs the
session's CSRF token (the sign-in form its own double-submit token). Cookies are HttpOnly and
SameSite=Strict; a strict Content-Security-Policy allows only this origin's script and styles.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import jinja2
import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer

from moderator.dashboard.accounts import Accounts, Session
from moderator.dashboard.indexer import Indexer
from moderator.dashboard.overview import GroupLag, build_overview, label_name, percent, read_lag, scrape
from moderator.dashboard.source import SourceReader
from moderator.dashboard.store import SORTS, STATUSES, Item, QueueFilter, Store
from moderator.policy import Policy
from topics import SourcePosition, TopicNames, normalize_text
from topics.reviews import Decision, Review, VerdictRef, content_hash, review_labels

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "moderator_session"
LOGIN_CSRF_COOKIE = "moderator_login_csrf"
PAGE_SIZE = 50
_MAX_FAILURES, _FAILURE_WINDOW_S = 5, 300.0
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


def _safe_next(target: str | None) -> str:
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


# -- sign-in ---------------------------------------------------------------------------------------


async def login_page(request: web.Request) -> web.Response:
    # keep an existing token: a second tab (or the browser's favicon request, redirected here) must not
    # invalidate the form already on screen
    token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if len(token) < 24:
        token = secrets.token_urlsafe(24)
    response = render(request, "login.html", csrf=token, next=_safe_next(request.query.get("next")), error="")
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    dash = request.app[KEY]
    form = await request.post()
    name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
    next_url = _safe_next(str(form.get("next", "/")))
    cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie_token or not secrets.compare_digest(str(form.get("csrf", "")), cookie_token):
        raise web.HTTPForbidden(text="sign-in form expired; reload the page and try again")
    failures = dash.failures.setdefault(name, deque(maxlen=_MAX_FAILURES))
    now = time.monotonic()
    if len(failures) == _MAX_FAILURES and now - failures[0] < _FAILURE_WINDOW_S:
        error = "too many failed attempts for this name; wait a few minutes"
        return render(request, "login.html", status=429, csrf=cookie_token, next=next_url, error=error)
    user = dash.accounts.authenticate(name, password)
    if user is None:
        failures.append(now)
        log.info("dashboard: failed sign-in for %r", name[:64])
        return render(
            request,
            "login.html",
            status=401,
            csrf=cookie_token,
            next=next_url,
            error="wrong name or password",
        )
    failures.clear()
    token, _ = dash.accounts.open_session(user)
    log.info("dashboard: %s signed in (%s)", user.name, user.role.value)
    response = web.HTTPSeeOther(next_url)
    _set_cookie(request, response, SESSION_COOKIE, token)
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    dash = request.app[KEY]
    session: Session = request["session"]
    dash.accounts.close_session(session)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


def _set_cookie(
    request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: int | None = None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.app[KEY].cookie_secure,
    )


# -- pages -----------------------------------------------------------------------------------------


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


async def overview(request: web.Request) -> web.Response:
    dash = request.app[KEY]
    assert dash.http is not None
    workers = await scrape(dash.http, dash.metrics_urls)
    lag, lag_error = await read_lag(dash.group_lag)
    data = build_overview(dash.store, request.query.get("window", "1h"), workers, lag, lag_error)
    return render(
        request, "overview.html", o=data, index_lag=await dash.indexer.lag(), group=dash.group_lag.group
    )


def _filter(query: Any) -> QueueFilter:
    def pick(name: str, allowed: tuple[str, ...] | None = None, default: str = "") -> str:
        value = str(query.get(name, default)).strip()[:256]
        return value if allowed is None or value in allowed else default

    return QueueFilter(
        status=pick("status", STATUSES, "open"),
        sort=pick("sort", tuple(SORTS), "oldest"),
        kind=pick("kind", ("comment", "reply")),
        category=pick("category"),
        action=pick("action", ("review", "block", "allow")),
        channel=pick("channel"),
        language=pick("language"),
        search=pick("q"),
    )


def _filter_query(flt: QueueFilter, **extra: Any) -> str:
    params = {
        "status": flt.status,
        "sort": flt.sort,
        "kind": flt.kind,
        "category": flt.category,
        "action": flt.action,
        "channel": flt.channel,
        "language": flt.language,
        "q": flt.search,
        **extra,
    }
    return urlencode({k: v for k, v in params.items() if v not in ("", None)})


async def queue(request: web.Request) -> web.Response:
    dash = request.app[KEY]
    flt = _filter(request.query)
    try:
        page = max(1, int(request.query.get("page", "1")))
    except ValueError:
        page = 1
    items, total = dash.store.queue(flt, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    return render(
        request,
        "queue.html",
        items=items,
        total=total,
        page=page,
        pages=max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE),
        flt=flt,
        here="/queue?" + _filter_query(flt, page=page),
        page_query=lambda p: "/queue?" + _filter_query(flt, page=p),
        facets=dash.facets(),
        categories=[*review_labels("reply")],
        done=request.query.get("done", ""),
        done_decision=request.query.get("decision", ""),
    )


def _source(item: Item) -> SourcePosition | None:
    src = item.verdict.get("source")
    if not src:
        return None
    return SourcePosition(str(src["topic"]), int(src["partition"]), int(src["offset"]))


def _texts(item: Item, raw: bytes | None) -> dict[str, Any]:
    """The readable parts of an input record, or why there are none."""
    if raw is None:
        return {"missing": "the input record is no longer on its topic (retention) or was never found"}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"missing": "the input record is not readable JSON"}
    if not isinstance(data, dict):
        return {"missing": "the input record is not a JSON object"}
    if item.kind == "reply":
        return {"prompt": str(data.get("prompt", "")), "text": str(data.get("reply", ""))}
    return {"text": str(data.get("text", ""))}


async def _fetch_texts(dash: Dashboard, items: list[Item]) -> dict[str, dict[str, Any]]:
    positions = {i.id: _source(i) for i in items}
    raw = await dash.reader.fetch(p for p in positions.values() if p is not None)
    out = {}
    for item in items:
        pos = positions[item.id]
        out[item.id] = _texts(item, raw.get(pos) if pos is not None else None)
    return out


def _why(item: Item, policy: Policy) -> list[str]:
    """The reasons this verdict is flagged, in the policy's terms."""
    v = item.verdict
    same = v.get("policy") == policy.version
    reasons = []
    if v.get("human"):
        h = v["human"]
        reasons.append(f"a reviewer ({h.get('reviewer')}) decided {h.get('decision')} on this text earlier")
    for key in item.categories:
        score = float(v["scores"].get(key, 0.0))
        band = policy.labels.get(key)
        if band is not None and same:
            line = f"{label_name(key)}: {score:.3f} ≥ threshold {band.threshold:.3f}"
            if band.block is not None and score >= band.block:
                line += f" and ≥ block band {band.block:.2f}"
            reasons.append(line)
        else:
            reasons.append(f"{label_name(key)}: {score:.3f} (over its threshold in {v.get('policy')})")
    unsafe = v.get("unsafe")
    if unsafe is not None and same and unsafe >= policy.judge_review:
        line = f"judge: P(unsafe) {unsafe:.3f} ≥ review {policy.judge_review:.3f}"
        if policy.judge_block is not None and unsafe >= policy.judge_block:
            line += f" and ≥ block {policy.judge_block:.2f}"
        reasons.append(line)
    elif unsafe is not None and not same and not item.categories:
        reasons.append(f"judge: P(unsafe) {unsafe:.3f} (over its review level in {v.get('policy')})")
    if v.get("truncated"):
        reasons.append("the text was longer than the model's input and was cut")
    return reasons


async def item_page(request: web.Request) -> web.Response:
    dash = request.app[KEY]
    item_id = request.match_info["item_id"]
    item = dash.store.item(item_id)
    if item is None:
        return render(request, "error.html", status=404, message=f"no flagged item with id {item_id!r}")
    texts = (await _fetch_texts(dash, [item]))[item.id]
    v = item.verdict
    same = v.get("policy") == dash.policy.version
    rows = []
    for key, score in v["scores"].items():
        band = dash.policy.labels.get(key)
        rows.append(
            {
                "key": key,
                "score": float(score),
                "threshold": band.threshold if band and same else None,
                "block": band.block if band and same else None,
                "hit": key in item.categories,
            }
        )
    if v.get("unsafe") is not None:
        rows.append(
            {
                "key": "unsafe",
                "score": float(v["unsafe"]),
                "threshold": dash.policy.judge_review if same else None,
                "block": dash.policy.judge_block if same else None,
                "hit": same and float(v["unsafe"]) >= dash.policy.judge_review,
            }
        )
    return render(
        request,
        "item.html",
        item=item,
        texts=texts,
        rows=rows,
        why=_why(item, dash.policy),
        same_policy=same,
        loaded_policy=dash.policy.version,
        history=dash.store.history(item.id),
        labels=review_labels(item.kind),  # type: ignore[arg-type]
        back=_safe_next(request.query.get("back", "/queue")),
    )


async def texts_api(request: web.Request) -> web.Response:
    dash = request.app[KEY]
    ids = request.query.getall("id", [])[:PAGE_SIZE]
    items = [i for i in (dash.store.item(x) for x in ids) if i is not None]
    return web.json_response(await _fetch_texts(dash, items), dumps=lambda o: orjson.dumps(o).decode())


async def decide(request: web.Request) -> web.StreamResponse:
    dash = request.app[KEY]
    session: Session = request["session"]
    form = await request.post()
    back = _safe_next(str(form.get("back", "/queue")))
    if not session.user.role.can_decide:
        return render(
            request,
            "error.html",
            status=403,
            message=f"your role ({session.user.role.value}) can read the queue but not decide",
        )
    item = dash.store.item(str(form.get("id", "")))
    if item is None:
        return render(request, "error.html", status=404, message="no such flagged item")
    try:
        decision = Decision(str(form.get("decision", "")))
    except ValueError:
        return render(
            request, "error.html", status=400, message="decision must be approve, remove or relabel"
        )
    allowed = review_labels(item.kind)  # type: ignore[arg-type]
    chosen = [str(x) for x in form.getall("labels", [])]
    bad = [x for x in chosen if x not in allowed]
    if bad:
        return render(request, "error.html", status=400, message=f"unknown label(s): {', '.join(bad)}")
    if decision is Decision.APPROVE:
        labels: list[str] = []
    elif decision is Decision.REMOVE:
        labels = chosen or list(item.categories)
        if not labels and item.verdict.get("unsafe") is not None:
            labels = ["unsafe"]
    else:
        if not chosen:
            return render(request, "error.html", status=400, message="relabel: choose at least one category")
        labels = chosen
    src = _source(item)
    raw = (await dash.reader.fetch([src])).get(src) if src else None
    texts = _texts(item, raw)
    if "missing" in texts:
        return render(request, "error.html", status=409, message=f"cannot decide: {texts['missing']}")
    prompt = normalize_text(texts["prompt"]) if item.kind == "reply" else None
    digest = content_hash(item.kind, normalize_text(texts["text"]), prompt)  # type: ignore[arg-type]
    v = item.verdict
    review = Review(
        review_id=uuid.uuid4().hex,
        id=item.id,
        kind=item.kind,  # type: ignore[arg-type]
        content_hash=digest,
        decision=decision,
        labels=labels,
        reviewer=session.user.name,
        ts=time.time(),
        verdict=VerdictRef(
            topic=item.v_topic,
            partition=item.v_partition,
            offset=item.v_offset,
            action=item.action,
            categories=item.categories,
            model=dict(v.get("model") or {}),
            policy=str(v.get("policy")),
            scores={str(k): float(x) for k, x in v["scores"].items()},
            unsafe=v.get("unsafe"),
        ),
        source=src,
        note=str(form.get("note", ""))[:1000],
    )
    await dash.producer.send_and_wait(
        dash.topics.reviews, orjson.dumps(review.to_dict()), key=item.id.encode()
    )
    dash.indexer.record_review(review)
    await dash.indexer.write_overrides([digest])
    log.info("dashboard: %s decided %s on %s", session.user.name, decision.value, item.id)
    sep = "&" if "?" in back else "?"
    raise web.HTTPSeeOther(f"{back}{sep}{urlencode({'done': item.id, 'decision': decision.value})}")


async def no_content(request: web.Request) -> web.Response:
    """The browser's favicon request: answered, so it never lands on (and resets) the sign-in page."""
    return web.Response(status=204)


def build_app(dash: Dashboard) -> web.Application:
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
    app.router.add_static("/static/", HERE / "static", append_version=True)
    return app
