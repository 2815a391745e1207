"""The streaming output rail: a chatbot sends its reply as it grows and gets a verdict per increment.

WebSocket ``/v1/stream``, JSON text frames. A turn is ``start`` (id, prompt), ``delta`` (new text)
any number of times, then ``end``. Each delta is scored on a *window*: the new text plus up to
``api_stream_context_chars`` of the text before it (cut at a space), so a turn costs model time in
proportion to its length, not its length squared: the bundled encoders attend in both directions and
cannot reuse a prefix's work, so a bounded window is how "only new text costs" holds for them. When a
window's action reaches ``stop_on`` the turn is stopped; ``end`` (or the stop) answers with the
verdict on the whole reply, computed exactly as ``POST /v1/replies`` would.

Server frames: ``{"type": "verdict"|"stop"|"final"|"error", ...}``; see docs/api.md.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from moderator.api.auth import retry_after_header
from moderator.api.openai_compat import RequestError
from moderator.api.routes import SERVICE, SOCKETS
from moderator.api.service import ApiService, NotReady, reply_record
from topics import normalize_text

log = logging.getLogger(__name__)

_STOP_ACTIONS = {"review": ("review", "block"), "block": ("block",)}


@dataclass
class Turn:
    id: str
    prompt: str
    stop_on: tuple[str, ...]
    #: the chatbot's name, as a reply record's ``bot``: the policy may decide its replies under a profile
    bot: str | None = None
    reply: str = ""
    seq: int = 0
    stopped: bool = False


def window(reply: str, new_from: int, context_chars: int) -> str:
    """The text a delta is scored on: the new text and up to ``context_chars`` before it."""
    start = max(0, new_from - context_chars)
    if start > 0:
        space = reply.find(" ", start, new_from)
        if space != -1:
            start = space + 1
    return reply[start:]


class StreamSession:
    """One WebSocket connection: one turn at a time, any number of turns."""

    def __init__(self, service: ApiService, ws: web.WebSocketResponse, caller: str) -> None:
        self.service = service
        self.ws = ws
        self.caller = caller
        self.turn: Turn | None = None

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_str(orjson.dumps(frame).decode())

    async def error(self, code: str, message: str, **extra: Any) -> None:
        await self.send({"type": "error", "code": code, "message": message, **extra})

    async def handle(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise RequestError(422, "not_an_object", "each frame is a JSON object with a 'type'")
        kind = data.get("type")
        if kind == "start":
            await self._start(data)
        elif kind == "delta":
            await self._delta(data)
        elif kind == "end":
            await self._end(data)
        else:
            raise RequestError(422, "wrong_type", f"'type' must be start, delta or end, got {kind!r}", "type")

    async def _start(self, data: dict[str, Any]) -> None:
        unknown = sorted(set(data) - {"type", "id", "prompt", "stop_on", "bot"})
        if unknown:
            raise RequestError(422, "unknown_field", f"unknown field(s) {unknown} in start", unknown[0])
        turn_id, prompt, stop_on = data.get("id"), data.get("prompt", ""), data.get("stop_on", "review")
        if not isinstance(turn_id, str) or not turn_id.strip():
            raise RequestError(422, "missing_field", "start needs a non-empty string 'id'", "id")
        if not isinstance(prompt, str):
            raise RequestError(422, "wrong_type", "'prompt' must be a string", "prompt")
        if stop_on not in _STOP_ACTIONS:
            raise RequestError(422, "wrong_type", "'stop_on' must be 'review' or 'block'", "stop_on")
        bot = data.get("bot")
        # the same checks a full reply record gets, on the id, the prompt and the bot
        self.service.validate("reply", reply_record(turn_id, prompt, "x", bot), "start")
        if self.turn is not None and not self.turn.stopped:
            self.service.api_metrics.stream_turns.labels(outcome="abandoned").inc()
        self.turn = Turn(turn_id, prompt, _STOP_ACTIONS[stop_on], bot)
        await self.send({"type": "started", "id": turn_id})

    def _current(self, what: str) -> Turn:
        if self.turn is None:
            raise RequestError(422, "no_turn", f"{what} before start; send a start frame first")
        if self.turn.stopped:
            raise RequestError(409, "turn_stopped", f"turn {self.turn.id!r} was stopped; start a new turn")
        return self.turn

    async def _delta(self, data: dict[str, Any]) -> None:
        turn = self._current("delta")
        unknown = sorted(set(data) - {"type", "text"})
        if unknown:
            raise RequestError(422, "unknown_field", f"unknown field(s) {unknown} in delta", unknown[0])
        text = data.get("text")
        if not isinstance(text, str):
            raise RequestError(422, "wrong_type", "'text' must be a string", "text")
        limit = self.service.settings.max_text_chars
        if len(turn.reply) + len(text) > limit:
            raise RequestError(
                413, "too_long", f"the reply would pass {limit} chars; end the turn or start anew"
            )
        wait = self.service.limiter.take(self.caller)
        if wait > 0:
            self.service.api_metrics.rate_limited.labels(key=self.caller).inc()
            await self.error(
                "rate_limited",
                "too many increments; resend this delta later",
                retry_after=float(retry_after_header(wait)),
            )
            return
        new_from = len(turn.reply)
        turn.reply += text
        turn.seq += 1
        scored = window(turn.reply, new_from, self.service.settings.api_stream_context_chars)
        frame: dict[str, Any] = {"type": "verdict", "id": turn.id, "seq": turn.seq, "chars": len(turn.reply)}
        if not normalize_text(scored):
            frame.update(window_chars=0, verdict=None)
            await self.send(frame)
            return
        started = time.perf_counter()
        verdict = (
            await self.service.score(
                "reply", [reply_record(f"{turn.id}#{turn.seq}", turn.prompt, scored, turn.bot)]
            )
        )[0]
        self.service.api_metrics.inputs.labels(endpoint="stream").inc()
        frame.update(window_chars=len(scored), verdict=verdict)
        if verdict["action"] in turn.stop_on:
            turn.stopped = True
            final = await self._whole(turn)
            self.service.api_metrics.stream_turns.labels(outcome="stopped").inc()
            frame.update(type="stop", final=final)
        self.service.api_metrics.latency.labels(endpoint="stream").observe(time.perf_counter() - started)
        await self.send(frame)

    async def _end(self, data: dict[str, Any]) -> None:
        turn = self._current("end")
        if set(data) - {"type"}:
            raise RequestError(422, "unknown_field", "end takes no fields besides 'type'")
        if not normalize_text(turn.reply):
            raise RequestError(422, "empty_text", "the reply is empty; nothing to verdict")
        final = await self._whole(turn)
        turn.stopped = True
        self.service.api_metrics.stream_turns.labels(outcome="completed").inc()
        await self.send({"type": "final", "id": turn.id, "chars": len(turn.reply), "verdict": final})

    async def _whole(self, turn: Turn) -> dict[str, Any] | None:
        """The whole reply's verdict, exactly as ``POST /v1/replies`` gives it (``None`` if blank)."""
        if not normalize_text(turn.reply):
            return None
        return (
            await self.service.score("reply", [reply_record(turn.id, turn.prompt, turn.reply, turn.bot)])
        )[0]


async def stream(request: web.Request) -> web.WebSocketResponse:
    service = request.app[SERVICE]
    ws = web.WebSocketResponse(max_msg_size=service.settings.api_max_body_bytes, heartbeat=30.0)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    session = StreamSession(service, ws, request.get("caller", "anonymous"))
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            try:
                await session.handle(orjson.loads(msg.data))
            except orjson.JSONDecodeError as exc:
                await session.error("invalid_json", f"not valid JSON: {exc}")
            except RequestError as exc:
                await session.error(exc.code, exc.message, param=exc.param)
            except NotReady:
                await session.error("not_ready", "models are loading; retry shortly")
        elif msg.type == WSMsgType.BINARY:
            await session.error("wrong_type", "send JSON as text frames")
        elif msg.type == WSMsgType.ERROR:
            log.warning("stream connection error: %s", type(ws.exception()).__name__)
    if session.turn is not None and not session.turn.stopped:
        service.api_metrics.stream_turns.labels(outcome="abandoned").inc()
    return ws
