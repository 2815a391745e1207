"""Sign-in, sign-out and (for admins) the accounts page.

Sign-in has no session yet, so its form carries its own double-submit token (cookie + field); failed
attempts per name are throttled; ``next`` may only be a path on this site.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from urllib.parse import urlencode

from aiohttp import web

from moderator.dashboard.accounts import AccountError, Role, Session
from moderator.dashboard.web import KEY, LOGIN_CSRF_COOKIE, SESSION_COOKIE, render, safe_next

log = logging.getLogger(__name__)

_MAX_FAILURES, _FAILURE_WINDOW_S = 5, 300.0


async def login_page(request: web.Request) -> web.Response:
    # keep an existing token: a second tab (or the browser's favicon request, redirected here) must not
    # invalidate the form already on screen
    token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if len(token) < 24:
        token = secrets.token_urlsafe(24)
    response = render(request, "login.html", csrf=token, next=safe_next(request.query.get("next")), error="")
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    dash = request.app[KEY]
    form = await request.post()
    name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
    next_url = safe_next(str(form.get("next", "/")))
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


def _admin(request: web.Request) -> Session:
    session: Session = request["session"]
    if session.user.role is not Role.ADMIN:
        raise web.HTTPForbidden(text="accounts are for admins")
    return session


async def users_page(request: web.Request) -> web.Response:
    dash = request.app[KEY]
    _admin(request)
    return render(
        request,
        "users.html",
        users=dash.accounts.list(),
        roles=[r.value for r in Role],
        message=request.query.get("message", ""),
    )


async def users_change(request: web.Request) -> web.StreamResponse:
    """Add (or reset) or remove an account; an admin cannot remove their own."""
    dash = request.app[KEY]
    session = _admin(request)
    form = await request.post()
    name = str(form.get("name", "")).strip()
    try:
        if form.get("action") == "remove":
            if name == session.user.name:
                raise AccountError("you cannot remove your own account")
            dash.accounts.remove(name)
            message = f"{name} removed"
        else:
            user = dash.accounts.add(
                name,
                str(form.get("role", "")),
                str(form.get("password", "")),
                replace=form.get("replace") == "on",
            )
            message = f"{user.name} is a {user.role.value}"
    except AccountError as exc:
        message = str(exc)
    log.info("dashboard: %s changed accounts: %s", session.user.name, message)
    raise web.HTTPSeeOther("/users?" + urlencode({"message": message}))
