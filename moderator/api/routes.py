"""HTTP endpoints: OpenAI-compatible ``/v1/moderations`` and the native ``/v1/comments``, ``/v1/replies``.

Every refusal is an OpenAI-shaped error object (``{"error": {"message", "type", "param", "code"}}``)
whose ``code`` is the same reason code the worker puts on a dead letter.
"""

from __future__ import annotations

import time
import uuid
import weakref
from typing import Any

import orjson
from aiohttp import web

from moderator.api.openai_compat import RequestError, parse_moderation_request, to_openai_result
from moderator.api.service import ApiService, comment_record, status_for
from topics.records import Kind

SERVICE: web.AppKey[ApiService] = web.AppKey("moderator_api_service", ApiService)
#: Open stream connections, closed on shutdown (a WebSocket would otherwise hold the exit).
SOCKETS: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey(
    "moderator_api_sockets", weakref.WeakSet
)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


async def read_json(request: web.Request) -> Any:
    """The body as JSON, or a 400 that says whether it was the encoding or the syntax."""
    body = await request.read()
    if not body:
        raise RequestError(400, "invalid_json", "the body is empty; send a JSON document")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(400, "invalid_utf8", f"the body is not valid UTF-8 at byte {exc.start}") from None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None


async def moderations(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    parsed = parse_moderation_request(await read_json(request), max_inputs=service.settings.api_max_inputs)
    request_id = f"modr-{uuid.uuid4().hex}"
    records = []
    for i, text in enumerate(parsed.texts):
        raw = comment_record(f"{request_id}-{i}", text)
        try:
            service.validate("comment", raw, f"input[{i}]")
        except RequestError as exc:
            exc.message = exc.message.replace("field 'text' ", "the text ")
            raise
        records.append(raw)
    request["inputs"] = len(records)
    verdicts = await service.score("comment", records)
    service.api_metrics.inputs.labels(endpoint="moderations").inc(len(records))
    return json_response(
        {
            "id": request_id,
            "model": service.model_name(),
            "results": [to_openai_result(v) for v in verdicts],
        }
    )


async def _native(request: web.Request, kind: Kind, endpoint: str) -> web.Response:
    """One record (a JSON object) → its verdict record; a JSON array of records → an array of them."""
    service = request.app[SERVICE]
    body = await request.read()
    data = await read_json(request)
    single = isinstance(data, dict)
    if single:
        records = [body]
    elif isinstance(data, list):
        if not data:
            raise RequestError(422, "empty_text", "the body is an empty array; send at least one record")
        if len(data) > service.settings.api_max_inputs:
            raise RequestError(
                413,
                "too_many_inputs",
                f"{len(data)} records; the limit is {service.settings.api_max_inputs} per request",
            )
        records = [orjson.dumps(item) for item in data]
    else:
        raise RequestError(
            422, "not_an_object", f"send one {kind} record (a JSON object) or an array of them"
        )
    errors: list[RequestError] = []
    for i, raw in enumerate(records):
        try:
            service.validate(kind, raw, "record" if single else f"[{i}]")
        except RequestError as exc:
            errors.append(exc)
    if errors:
        raise _combined(errors)
    request["inputs"] = len(records)
    verdicts = await service.score(kind, records)
    service.api_metrics.inputs.labels(endpoint=endpoint).inc(len(records))
    return json_response(verdicts[0] if single else verdicts)


def _combined(errors: list[RequestError]) -> RequestError:
    """One error for the whole request; every record's own reason is listed under ``errors``."""
    first = errors[0]
    if len(errors) == 1:
        return first
    status = (
        413
        if all(e.status == 413 for e in errors)
        else (400 if any(e.status == 400 for e in errors) else 422)
    )
    combined = RequestError(
        status, first.code, f"{len(errors)} records refused; first: {first.message}", first.param
    )
    combined.details = [{"param": e.param, "code": e.code, "message": e.message} for e in errors]
    return combined


async def comments(request: web.Request) -> web.Response:
    return await _native(request, "comment", "comments")


async def replies(request: web.Request) -> web.Response:
    return await _native(request, "reply", "replies")


async def health(request: web.Request) -> web.Response:
    """Live while the batcher runs and the head of its queue is younger than the stall timeout."""
    service = request.app[SERVICE]
    batcher = service.batcher
    oldest = batcher.oldest_wait_s() if batcher is not None else 0.0
    live = (batcher is None or batcher.running) and oldest < service.settings.stall_timeout_s
    pipeline = service.pipeline
    report: dict[str, Any] = {
        "live": live,
        "ready": service.ready,
        "stage": service.stage,
        "queue": batcher.depth if batcher is not None else 0,
        "oldest_wait_s": round(oldest, 3),
        "uptime_s": round(time.monotonic() - service.started, 1),
    }
    if pipeline is not None:
        report["providers"] = {"classifier": pipeline.classifier.provider, "judge": pipeline.judge.provider}
        report["models"] = pipeline.model_ids
        report["policy"] = pipeline.policy.version
        report["cache"] = "off" if pipeline.cache is None else ("up" if pipeline.cache.available else "down")
    return json_response(report, status=200 if live else 503)


async def ready(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    ok = service.ready and not service.draining
    return json_response({"ready": ok, "stage": service.stage}, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    return web.Response(body=service.metrics.render(), content_type="text/plain", charset="utf-8")


def error_response(exc: RequestError, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(exc.body(), status=exc.status, headers=headers)


__all__ = [
    "SERVICE",
    "comments",
    "error_response",
    "health",
    "metrics",
    "moderations",
    "ready",
    "replies",
    "status_for",
]
