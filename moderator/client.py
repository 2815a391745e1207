"""A small client for ``moderator serve``: sync (standard library) and async (aiohttp), with retries.

Retried: connection failures, 429 (after its Retry-After), 502/503/504, with exponential backoff;
every other refusal raises ``ModeratorAPIError`` at once with the server's reason code. (The Kafka
helpers of the CLI are ``moderator.clients``; this module is the HTTP API's.)
"""

from __future__ import annotations

import asyncio
import random
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import orjson

RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Longest pause between two tries, whatever the backoff or the Retry-After says.
MAX_DELAY_S = 10.0


class ModeratorAPIError(RuntimeError):
    """A refusal from the server: HTTP ``status`` and the reason ``code`` (``too_long``, ``rate_limited``…)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def _error(status: int, body: bytes) -> ModeratorAPIError:
    try:
        error = orjson.loads(body)["error"]
        return ModeratorAPIError(status, str(error.get("code")), str(error.get("message")))
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return ModeratorAPIError(status, "http_error", body[:200].decode("utf-8", "replace"))


def _delay(attempt: int, retry_after: str | None, backoff_s: float) -> float:
    if retry_after:
        try:
            return min(MAX_DELAY_S, max(0.0, float(retry_after)))
        except ValueError:
            pass
    return min(MAX_DELAY_S, backoff_s * (2**attempt) * (0.5 + random.random() / 2))


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _comment(record_id: str, text: str) -> dict[str, Any]:
    return {"id": record_id, "text": text}


def _reply(record_id: str, prompt: str, reply: str, bot: str | None) -> dict[str, Any]:
    record = {"id": record_id, "prompt": prompt, "reply": reply}
    if bot is not None:
        record["bot"] = bot  # the policy may route this bot's replies to a profile
    return record


def _moderation(input: str | Sequence[str], model: str | None) -> dict[str, Any]:  # noqa: A002
    payload: dict[str, Any] = {"input": input if isinstance(input, str) else list(input)}
    if model:
        payload["model"] = model
    return payload


class _RetryingClient:
    """What both clients share: their settings and the retry decision (the transport is theirs)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 10.0,
        max_retries: int = 3,
        backoff_s: float = 0.2,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self._connect()

    def _connect(self) -> None:
        """Open what the transport keeps between calls (the async client's session); nothing by default."""

    def _refused_wait(self, attempt: int, status: int, body: bytes, retry_after: str | None) -> float:
        """The pause before retrying a refusal; raises ``ModeratorAPIError`` when the refusal is final."""
        if status not in RETRY_STATUSES or attempt >= self.max_retries:
            raise _error(status, body) from None
        return _delay(attempt, retry_after, self.backoff_s)

    def _unreachable_wait(self, attempt: int, exc: BaseException) -> float:
        """The pause before retrying a failed connection; raises ``unreachable`` once out of tries."""
        if attempt >= self.max_retries:
            raise ModeratorAPIError(0, "unreachable", f"{self.base_url}: {exc}") from None
        return _delay(attempt, None, self.backoff_s)


class ModeratorClient(_RetryingClient):
    """Blocking client. ``base_url`` like ``http://127.0.0.1:8080``."""

    def _post(self, path: str, payload: Any) -> Any:
        body = orjson.dumps(payload)
        attempt = 0
        while True:
            request = urllib.request.Request(
                self.base_url + path, data=body, headers=_headers(self.api_key), method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    return orjson.loads(response.read())
            except urllib.error.HTTPError as exc:
                wait = self._refused_wait(attempt, exc.code, exc.read(), exc.headers.get("Retry-After"))
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                wait = self._unreachable_wait(attempt, exc)
            attempt += 1
            time.sleep(wait)

    def moderate(self, input: str | Sequence[str], model: str | None = None) -> dict[str, Any]:  # noqa: A002
        """OpenAI's ``/v1/moderations`` response for one text or several."""
        result: dict[str, Any] = self._post("/v1/moderations", _moderation(input, model))
        return result

    def comment(self, record_id: str, text: str) -> dict[str, Any]:
        """The verdict record for one comment."""
        result: dict[str, Any] = self._post("/v1/comments", _comment(record_id, text))
        return result

    def comments(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._post("/v1/comments", list(records))
        return result

    def reply(self, record_id: str, prompt: str, reply: str, *, bot: str | None = None) -> dict[str, Any]:
        """The verdict record for one (user message, chatbot reply) pair; ``bot``: the chatbot's name."""
        result: dict[str, Any] = self._post("/v1/replies", _reply(record_id, prompt, reply, bot))
        return result

    def replies(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._post("/v1/replies", list(records))
        return result


class AsyncModeratorClient(_RetryingClient):
    """asyncio client (aiohttp); use ``async with`` or call ``close()``. Also opens stream turns."""

    def _connect(self) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession(
            headers=_headers(self.api_key), timeout=aiohttp.ClientTimeout(total=self.timeout_s)
        )

    async def __aenter__(self) -> AsyncModeratorClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._session.close()

    async def _post(self, path: str, payload: Any) -> Any:
        import aiohttp

        body = orjson.dumps(payload)
        attempt = 0
        while True:
            try:
                async with self._session.post(self.base_url + path, data=body) as response:
                    data = await response.read()
                    if response.status < 400:
                        return orjson.loads(data)
                    wait = self._refused_wait(
                        attempt, response.status, data, response.headers.get("Retry-After")
                    )
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                wait = self._unreachable_wait(attempt, exc)
            attempt += 1
            await asyncio.sleep(wait)

    async def moderate(self, input: str | Sequence[str], model: str | None = None) -> dict[str, Any]:  # noqa: A002
        result: dict[str, Any] = await self._post("/v1/moderations", _moderation(input, model))
        return result

    async def comment(self, record_id: str, text: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._post("/v1/comments", _comment(record_id, text))
        return result

    async def comments(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._post("/v1/comments", list(records))
        return result

    async def reply(
        self, record_id: str, prompt: str, reply: str, *, bot: str | None = None
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._post("/v1/replies", _reply(record_id, prompt, reply, bot))
        return result

    async def replies(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._post("/v1/replies", list(records))
        return result

    async def stream_turn(
        self, turn_id: str, prompt: str, *, stop_on: str = "review", bot: str | None = None
    ) -> StreamTurn:
        """Open the output rail for one reply: ``send(delta)`` per increment, then ``end()``."""
        ws = await self._session.ws_connect(self.base_url + "/v1/stream")
        turn = StreamTurn(ws)
        start: dict[str, Any] = {"type": "start", "id": turn_id, "prompt": prompt, "stop_on": stop_on}
        if bot is not None:
            start["bot"] = bot
        started = await turn._call(start)
        if started.get("type") != "started":
            await ws.close()
            raise ModeratorAPIError(422, str(started.get("code")), str(started.get("message")))
        return turn


class StreamTurn:
    """One reply on the rail. ``send`` returns the server's frame; ``stopped`` once it said stop."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self.stopped = False
        self.final: dict[str, Any] | None = None

    async def _call(self, frame: dict[str, Any]) -> dict[str, Any]:
        await self._ws.send_str(orjson.dumps(frame).decode())
        answer: dict[str, Any] = orjson.loads((await self._ws.receive()).data)
        return answer

    async def send(self, delta: str) -> dict[str, Any]:
        """Score one increment; a ``stop`` frame carries the whole reply's verdict as ``final``."""
        answer = await self._call({"type": "delta", "text": delta})
        if answer.get("type") == "stop":
            self.stopped = True
            self.final = answer.get("final")
        elif answer.get("type") == "error":
            raise ModeratorAPIError(422, str(answer.get("code")), str(answer.get("message")))
        return answer

    async def end(self) -> dict[str, Any] | None:
        """The verdict on the whole reply (the stop's, if the turn was stopped); closes the connection."""
        try:
            if not self.stopped:
                answer = await self._call({"type": "end"})
                if answer.get("type") == "error":
                    raise ModeratorAPIError(422, str(answer.get("code")), str(answer.get("message")))
                self.final = answer.get("verdict")
            return self.final
        finally:
            await self._ws.close()
