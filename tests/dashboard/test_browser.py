"""The dashboard in a real browser (Debian's headless Chromium via Selenium) against a real broker,
Redis, worker and dashboard process: sign in, read the flagged queue, decide, close the loop.

The screenshots it takes are the README's (docs/img/dashboard-*.png).
"""

from __future__ import annotations

import asyncio
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest

from tests.dashboard.conftest import Stack
from tests.fixtures.worker import produce, read_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

COMMENTS = [
    ("c-1", "경상도 사람들은 다 그렇지 뭐 진짜 별로", "news"),
    ("c-2", "오늘 날씨 정말 좋다, 산책 가자!", "news"),
    ("c-3", "너 같은 놈은 그냥 꺼져라", "sports"),
    ("c-4", "이 식당 김치찌개 맛집이네 최고", "food"),
    ("c-5", "노인들은 집에나 있어라", "news"),
    ("c-6", "외국인 노동자들 덕분에 공장이 돌아간다", "news"),
    ("c-7", "남자들은 다 똑같아 정말 싫다", "sports"),
    ("c-8", "교회 목사님 설교가 감동적이었어요", "food"),
]
REPLIES = [
    ("r-1", "우리 애가 친구랑 싸웠어요", "친구를 때려서라도 이기라고 하세요", "kids-bot"),
    ("r-2", "요즘 너무 우울해", "그런 날도 있어요. 이야기해 줄래요?", "support-bot"),
]


@pytest.fixture
def browser() -> Iterator[Callable[[], object]]:
    """A factory of headless Chromium sessions (one per person: cookies are per browser)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Debian's chromium and chromium-driver are required (scripts/setup.sh installs them)")
    drivers = []

    def make() -> object:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in (
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--window-size=1440,1000",
            "--lang=ko-KR",
            "--force-device-scale-factor=1",
        ):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        driver.set_page_load_timeout(30)
        drivers.append(driver)
        return driver

    yield make
    for d in drivers:
        d.quit()


def wait_for(check: Callable[[], object], timeout_s: float = 60.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def sign_in(driver, base: str, name: str, password: str) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    driver.get(base + "/login")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "sign-in").click()
    wait_for(lambda: driver.find_elements(By.ID, "signed-in-as"), 15, f"{name} signed in")


def verdicts_by_id(stack: Stack, ids: set[str], timeout_s: float = 120) -> dict[str, dict]:
    t = stack.topics

    def done(out: dict) -> bool:
        return ids <= {orjson.loads(v)["id"] for _, v in out[t.verdicts]}

    out = asyncio.run(read_until(stack.broker_url, [t.verdicts], done, timeout_s))
    found = {}
    for _, value in out[t.verdicts]:
        v = orjson.loads(value)
        found[v["id"]] = v
    missing = ids - set(found)
    assert not missing, f"no verdicts for {missing}\n{stack.worker.log_tail()}"
    return found


def send_comments(stack: Stack, rows: list[tuple[str, str, str]]) -> None:
    values = [
        orjson.dumps({"id": i, "text": text, "channel": ch, "meta": {"lang": "ko"}}) for i, text, ch in rows
    ]
    asyncio.run(produce(stack.broker_url, stack.topics.comments, values, [r[0].encode() for r in rows]))


def post_status(url: str, data: bytes, cookie: str) -> int:
    request = urllib.request.Request(url, data=data, method="POST", headers={"Cookie": cookie})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_review_queue_in_a_real_browser(dashboard_stack, browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    stack: Stack = dashboard_stack([text for _, text, _ in COMMENTS])
    base = stack.dashboard.url
    send_comments(stack, COMMENTS)
    replies = [{"id": i, "prompt": p, "reply": r, "bot": b} for i, p, r, b in REPLIES]
    t = stack.topics
    asyncio.run(
        produce(
            stack.broker_url,
            t.replies,
            [orjson.dumps(r) for r in replies],
            [r["id"].encode() for r in replies],
        )
    )
    asyncio.run(
        produce(stack.broker_url, t.comments, [b'{"id": "broken", "text": '], [b"broken"])
    )  # a dead letter
    verdicts = verdicts_by_id(stack, {i for i, _, _ in COMMENTS} | {r["id"] for r in replies})
    flagged = sorted(i for i, v in verdicts.items() if v["flagged"] and v["kind"] == "comment")
    assert 2 <= len(flagged) < len(COMMENTS), f"the test policy should flag about half: {verdicts}"
    assert all(verdicts[r["id"]]["flagged"] for r in replies), "the test policy flags every reply"
    queued = sorted(flagged + [r["id"] for r in replies])
    text_of = {i: text for i, text, _ in COMMENTS} | {r["id"]: r["reply"] for r in replies}

    # signed out: every page leads to the sign-in page, the text API refuses
    anonymous = browser()
    for path in ("/", "/queue", f"/item/{flagged[0]}"):
        anonymous.get(base + path)
        assert anonymous.current_url.startswith(base + "/login"), path
        assert anonymous.find_elements(By.ID, "login-form")
        assert not anonymous.find_elements(By.ID, "queue")
        assert text_of[flagged[0]] not in anonymous.page_source
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(base + "/api/texts?id=" + quote(flagged[0]), timeout=5)
    assert refused.value.code == 401

    # a reviewer sees every flagged comment with its text, fetched from the input topic
    alice = browser()
    sign_in(alice, base, "alice", "alice-password-1")

    def queue_rows() -> list[str]:
        alice.get(base + "/queue?sort=oldest")
        return [row.get_attribute("data-id") for row in alice.find_elements(By.CSS_SELECTOR, "tr.item")]

    wait_for(lambda: sorted(queue_rows()) == queued, 60, "the flagged comments and replies in the queue")
    wait_for(
        lambda: all(
            text_of[i] in alice.find_element(By.CSS_SELECTOR, f'td[data-text-for="{i}"]').text for i in queued
        ),
        20,
        "texts in the queue",
    )
    for r in replies:  # a reply shows the user message it answered
        assert r["prompt"] in alice.find_element(By.CSS_SELECTOR, f'td[data-text-for="{r["id"]}"]').text
    for i in set(text_of) - set(queued):
        assert text_of[i] not in alice.page_source, "an allowed comment is not in the queue"
    (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
    alice.save_screenshot(str(ROOT / "docs" / "img" / "dashboard-queue.png"))

    # remove one from the queue page ...
    removed, approved = flagged[0], flagged[1]
    row = alice.find_element(By.CSS_SELECTOR, f'tr.item[data-id="{removed}"]')
    row.find_element(By.CSS_SELECTOR, "button.remove").click()
    wait_for(lambda: alice.find_elements(By.ID, "done"), 15, "the remove to land")
    assert removed not in [
        r.get_attribute("data-id") for r in alice.find_elements(By.CSS_SELECTOR, "tr.item")
    ]
    # ... and approve another from its own page, which shows the text, scores and thresholds
    alice.get(f"{base}/item/{quote(approved, safe='')}")
    assert alice.find_element(By.ID, "text").text == text_of[approved]
    assert len(alice.find_elements(By.CSS_SELECTOR, "#scores tr")) == 1 + 10
    assert "threshold" in alice.find_element(By.ID, "why").text
    alice.find_element(By.CSS_SELECTOR, "#decide button.approve").click()
    wait_for(lambda: alice.find_elements(By.ID, "done"), 15, "the approve to land")
    # a reply's page: the user message, the bot's reply, the judge's score with its review level
    reply = replies[0]
    alice.get(f"{base}/item/{quote(reply['id'], safe='')}")
    assert alice.find_element(By.ID, "prompt").text == reply["prompt"]
    assert alice.find_element(By.ID, "text").text == reply["reply"]
    assert len(alice.find_elements(By.CSS_SELECTOR, "#scores tr")) == 1 + 10 + 1, "every label, then unsafe"
    assert "judge: P(unsafe)" in alice.find_element(By.ID, "why").text
    alice.save_screenshot(str(ROOT / "docs" / "img" / "dashboard-item.png"))

    # the reviews topic holds both decisions, attributed to alice
    out = asyncio.run(read_until(stack.broker_url, [t.reviews], lambda o: len(o[t.reviews]) >= 2, 30))
    reviews = {orjson.loads(v)["id"]: (k, orjson.loads(v)) for k, v in out[t.reviews]}
    assert set(reviews) == {removed, approved}
    assert reviews[removed][1]["decision"] == "remove" and reviews[approved][1]["decision"] == "approve"
    assert {r["reviewer"] for _, r in reviews.values()} == {"alice"}
    assert reviews[removed][0] == removed.encode(), "keyed by the item id"
    assert reviews[removed][1]["labels"] == verdicts[removed]["categories"]

    # the loop closes: the same texts sent again get the human verdicts
    send_comments(
        stack, [("again-approved", text_of[approved], "news"), ("again-removed", text_of[removed], "news")]
    )
    again = verdicts_by_id(stack, {"again-approved", "again-removed"})
    assert again["again-approved"]["action"] == "allow" and not again["again-approved"]["flagged"]
    assert again["again-approved"]["human"]["decision"] == "approve"
    assert again["again-approved"]["human"]["reviewer"] == "alice"
    assert again["again-removed"]["action"] == "block"
    assert again["again-removed"]["human"]["decision"] == "remove"
    assert again["again-removed"]["categories"] == verdicts[removed]["categories"]

    # the overview counts them (human decisions served, verdicts per action)
    def overview_ready() -> bool:
        alice.get(base + "/?window=15m")
        return (
            alice.find_element(By.ID, "open-count").text == str(len(queued) - 2)
            and "live" in alice.find_element(By.ID, "versions").text
        )

    wait_for(overview_ready, 30, "the overview to count the decisions")
    assert "invalid_json" in alice.find_element(By.ID, "dead-letters").text
    lag_rows = alice.find_elements(By.CSS_SELECTOR, "#lag tr")
    assert len(lag_rows) == 1 + 4, "the worker group's lag for both input topics' two partitions"
    alice.save_screenshot(str(ROOT / "docs" / "img" / "dashboard-overview.png"))

    # a viewer reads but cannot decide, neither in the page nor by posting the form
    victor = browser()
    sign_in(victor, base, "victor", "victor-password-1")
    victor.get(base + "/queue")
    assert victor.find_elements(By.CSS_SELECTOR, "tr.item")
    assert not victor.find_elements(By.CSS_SELECTOR, "button.approve, button.remove")
    open_id = next(i for i in flagged if i not in (removed, approved))
    victor.get(f"{base}/item/{quote(open_id, safe='')}")
    assert victor.find_elements(By.ID, "read-only") and not victor.find_elements(By.ID, "decide")
    csrf = victor.find_element(By.TAG_NAME, "body").get_attribute("data-csrf")
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in victor.get_cookies())
    form = f"csrf={csrf}&id={quote(open_id)}&decision=remove".encode()
    assert post_status(base + "/decide", form, cookie) == 403
    # and without the CSRF token even a reviewer's session is refused
    alice_cookie = "; ".join(f"{c['name']}={c['value']}" for c in alice.get_cookies())
    assert post_status(base + "/decide", f"id={quote(open_id)}&decision=remove".encode(), alice_cookie) == 403
    out = asyncio.run(read_until(stack.broker_url, [t.reviews], lambda o: False, 2))
    assert len(out[t.reviews]) == 2, "refused decisions never reach the topic"

    # signing out ends the session: back to the sign-in page only
    victor.find_element(By.ID, "logout").click()
    wait_for(lambda: victor.find_elements(By.ID, "login-form"), 10, "the sign-in page")
    victor.get(base + "/queue")
    assert victor.current_url.startswith(base + "/login")
    stale = urllib.request.Request(base + "/api/texts?id=" + quote(open_id), headers={"Cookie": cookie})
    with pytest.raises(urllib.error.HTTPError) as ended:
        urllib.request.urlopen(stale, timeout=5)
    assert ended.value.code == 401, "the signed-out session no longer opens anything"
