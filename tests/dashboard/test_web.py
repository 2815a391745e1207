"""The dashboard's HTTP surface against a running process: cookies, CSRF, redirects, throttling, health.

(The pages themselves are exercised in a real browser by test_browser.py.)
"""

from __future__ import annotations

import http.client
import re
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson
import pytest

from tests.dashboard.conftest import DashboardProcess

pytestmark = pytest.mark.e2e


class Client:
    """Plain HTTP without redirects or a cookie jar: every header is visible to the test."""

    def __init__(self, dashboard: DashboardProcess) -> None:
        self.port = dashboard.port
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, dict[str, list[str]], str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        out: dict[str, list[str]] = {}
        for k, v in resp.getheaders():
            out.setdefault(k.lower(), []).append(v)
        for cookie in out.get("set-cookie", []):
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0].strip('"')
            if value:
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        text = resp.read().decode()
        conn.close()
        return resp.status, out, text

    def login_form(self) -> str:
        _, _, page = self.request("GET", "/login")
        match = re.search(r'name="csrf" value="([^"]+)"', page)
        assert match
        return match.group(1)

    def sign_in(self, name: str, password: str, next_url: str = "/") -> tuple[int, dict[str, list[str]], str]:
        token = self.login_form()
        return self.request(
            "POST", "/login", {"csrf": token, "name": name, "password": password, "next": next_url}
        )


def test_cookies_headers_and_redirects(lone_dashboard: DashboardProcess) -> None:
    c = Client(lone_dashboard)
    status, headers, _ = c.request("GET", "/queue?status=open")
    location = urlsplit(headers["location"][0])
    assert status == 303 and location.path == "/login"
    assert parse_qs(location.query) == {"next": ["/queue?status=open"]}
    status, headers, _ = c.request("GET", "/login")
    assert status == 200
    (cookie,) = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "script-src 'self'" in headers["content-security-policy"][0]
    assert headers["x-content-type-options"] == ["nosniff"]
    # an open redirect after sign-in is refused: only same-site paths
    status, headers, _ = c.sign_in("alice", "alice-password-1", next_url="//evil.example/x")
    assert status == 303 and headers["location"] == ["/"]
    session = next(h for h in headers["set-cookie"] if h.startswith("moderator_session="))
    assert "HttpOnly" in session and "SameSite=Strict" in session and "Path=/" in session
    status, _, page = c.request("GET", "/")
    assert status == 200 and "alice · reviewer" in page


def test_sign_in_needs_the_form_token_and_throttles_guessing(lone_dashboard: DashboardProcess) -> None:
    c = Client(lone_dashboard)
    c.login_form()
    status, _, _ = c.request(
        "POST", "/login", {"csrf": "forged", "name": "alice", "password": "alice-password-1"}
    )
    assert status == 403 and "moderator_session" not in c.cookies
    for _ in range(5):
        assert c.sign_in("victor", "wrong-password")[0] == 401
    status, _, page = c.sign_in("victor", "victor-password-1")
    assert status == 429 and "too many failed attempts" in page
    assert c.sign_in("alice", "alice-password-1")[0] == 303, "other names are not locked out"


def test_forms_need_the_session_token_and_bad_decisions_are_4xx(lone_dashboard: DashboardProcess) -> None:
    c = Client(lone_dashboard)
    c.sign_in("alice", "alice-password-1")
    _, _, page = c.request("GET", "/")
    csrf = re.search(r'data-csrf="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert c.request("POST", "/decide", {"id": "x", "decision": "approve"})[0] == 403
    assert c.request("POST", "/logout", {"csrf": "wrong"})[0] == 403
    status, _, page = c.request("POST", "/decide", {"csrf": csrf, "id": "no-such-id", "decision": "approve"})
    assert status == 404 and "no such flagged item" in page
    assert c.request("GET", "/item/no-such-id")[0] == 404
    status, _, body = c.request("GET", "/api/texts?id=no-such-id")
    assert status == 200 and orjson.loads(body) == {}
    assert c.request("POST", "/logout", {"csrf": csrf})[0] == 303
    assert c.request("GET", "/api/texts?id=x")[0] == 401


def test_health_is_public_and_reports_the_index(lone_dashboard: DashboardProcess) -> None:
    status, _, body = Client(lone_dashboard).request("GET", "/health")
    data = orjson.loads(body)
    assert status == 200 and data["status"] == "ok" and data["seconds_since_index_poll"] < 30


def test_only_admins_manage_accounts(lone_dashboard: DashboardProcess) -> None:
    from tests.dashboard.conftest import add_user

    add_user(lone_dashboard.db, "root", "admin", "root-password-1")
    reviewer = Client(lone_dashboard)
    reviewer.sign_in("alice", "alice-password-1")
    assert reviewer.request("GET", "/users")[0] == 403
    admin = Client(lone_dashboard)
    admin.sign_in("root", "root-password-1")
    status, _, page = admin.request("GET", "/users")
    assert status == 200 and "victor" in page
    csrf = re.search(r'data-csrf="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    form = {"csrf": csrf, "action": "add", "name": "nari", "role": "reviewer", "password": "nari-password"}
    status, headers, _ = admin.request("POST", "/users", form)
    assert status == 303 and "nari+is+a+reviewer" in headers["location"][0]
    assert Client(lone_dashboard).sign_in("nari", "nari-password")[0] == 303
    status, headers, _ = admin.request("POST", "/users", {"csrf": csrf, "action": "remove", "name": "root"})
    assert "cannot+remove+your+own" in headers["location"][0]
    victor = Client(lone_dashboard)
    victor.sign_in("victor", "victor-password-1")
    admin.request("POST", "/users", {"csrf": csrf, "action": "remove", "name": "victor"})
    assert victor.request("GET", "/queue")[0] == 303, "a removed account's session ends"
