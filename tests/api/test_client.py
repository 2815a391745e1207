"""``moderator.client`` (sync and async) against a real server: calls, typed errors, retries."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from moderator.client import AsyncModeratorClient, ModeratorAPIError, ModeratorClient
from moderator.local.embedded import free_port
from tests.api.conftest import ServerProcess

KEY = "client-key-0123456789"


def test_sync_client_calls_and_errors(server: ServerProcess) -> None:
    client = ModeratorClient(server.url)
    result = client.moderate(["안녕하세요", "씨발 개새끼야 꺼져"])
    assert [r["flagged"] for r in result["results"]] == [False, True]
    verdict = client.comment("c-1", "좋은 하루 보내세요")
    assert verdict["id"] == "c-1" and verdict["action"] == "allow"
    assert [
        v["id"] for v in client.comments([{"id": "a", "text": "좋아요"}, {"id": "b", "text": "멋져요"}])
    ] == ["a", "b"]
    reply = client.reply("r-1", "안녕?", "안녕하세요! 무엇을 도와드릴까요?")
    assert reply["kind"] == "reply" and reply["unsafe"] is not None
    assert len(client.replies([{"id": "r", "prompt": "", "reply": "네"}])) == 1
    with pytest.raises(ModeratorAPIError) as err:
        client.comment("c-2", "")
    assert err.value.status == 422 and err.value.code == "empty_text"


def test_async_client_calls_and_stream_turn(server: ServerProcess) -> None:
    async def run() -> tuple[dict[str, object], list[str], dict[str, object] | None]:
        async with AsyncModeratorClient(server.url) as client:
            moderated = await client.moderate("안녕하세요")
            turn = await client.stream_turn("t-1", "기분 어때?")
            kinds = []
            for delta in ["좋아요! ", "오늘 날씨가 맑네요. ", "씨발 개새끼야 꺼져"]:
                kinds.append(str((await turn.send(delta))["type"]))
                if turn.stopped:
                    break
            return moderated, kinds, await turn.end()

    moderated, kinds, final = asyncio.run(run())
    assert moderated["results"][0]["flagged"] is False  # type: ignore[index]
    assert kinds == ["verdict", "verdict", "stop"]
    assert final is not None and final["flagged"] is True and final["id"] == "t-1"


def test_clients_retry_429_after_retry_after(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(api_keys=KEY, api_rate_limit="1", api_rate_burst="1")
    client = ModeratorClient(server.url, KEY, max_retries=3)
    started = time.monotonic()
    client.moderate("안녕")
    client.moderate("안녕")  # refused once (429, Retry-After: 1), then served
    assert time.monotonic() - started >= 0.9
    assert server.metrics()['moderator_api_rate_limited_total{key="key-' + _prefix(KEY) + '"}'] >= 1
    with pytest.raises(ModeratorAPIError) as err:
        ModeratorClient(server.url, KEY, max_retries=0).moderate("안녕")
    assert err.value.status == 429 and err.value.code == "rate_limited"

    async def run() -> dict[str, object]:
        async with AsyncModeratorClient(server.url, KEY, max_retries=3) as client:
            await client.moderate("안녕")
            return await client.moderate("안녕")

    assert asyncio.run(run())["results"]


def test_clients_retry_until_the_server_comes_up(start_server: Callable[..., ServerProcess]) -> None:
    port = free_port()
    box: dict[str, object] = {}

    def late_start() -> None:
        time.sleep(1.0)
        box["server"] = start_server(port=port)

    thread = threading.Thread(target=late_start)
    thread.start()
    try:
        client = ModeratorClient(f"http://127.0.0.1:{port}", max_retries=12, backoff_s=0.5, timeout_s=30)
        result = client.moderate("안녕하세요")
    finally:
        thread.join()
    assert result["results"][0]["flagged"] is False
    with pytest.raises(ModeratorAPIError) as err:
        ModeratorClient(f"http://127.0.0.1:{free_port()}", max_retries=1, backoff_s=0.01).moderate("x")
    assert err.value.code == "unreachable"


def _prefix(key: str) -> str:
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()[:8]
