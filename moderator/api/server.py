"""``moderator serve``: the aiohttp application, its middleware and the process lifecycle.

The port opens first and answers ``/health`` (200) and ``/ready`` (503) while the models load, as the
worker's startup server does; ``/v1/*`` answers 503 until then. SIGTERM turns ``/ready`` to 503,
lets requests in flight finish (bounded), closes stream connections, then drains the batcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import weakref
from collections.abc import Awaitable, Callable

from aiohttp import web

from moderator.api import routes, stream
from moderator.api.auth import ApiKeys, RateLimiter, is_loopback, retry_after_header
from moderator.api.batcher import BatcherClosed
from moderator.api.metrics import ApiMetrics
from moderator.api.openai_compat import RequestError
from moderator.api.routes import SERVICE, SOCKETS, error_response, json_response
from moderator.api.service import ApiService, NotReady, warm_up
from moderator.core.pipeline import Pipeline
from moderator.exits import UsageError
from moderator.heap import settle_heap
from moderator.metrics import Metrics
from moderator.settings import Settings

log = logging.getLogger(__name__)

#: How long SIGTERM waits for requests in flight before closing their connections.
SHUTDOWN_TIMEOUT_S = 15.0

_ENDPOINTS = {
    "/v1/moderations": "moderations",
    "/v1/comments": "comments",
    "/v1/replies": "replies",
    "/v1/stream": "stream",
}
_OPEN_PATHS = frozenset({"/health", "/ready", "/metrics"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Auth, rate limit, size limit and error shaping for ``/v1/*``; counts and logs (never text)."""
    service = request.app[SERVICE]
    endpoint = _ENDPOINTS.get(request.path)
    if request.path in _OPEN_PATHS:
        return await handler(request)
    started = time.perf_counter()
    caller = "-"
    try:
        found = service.keys.identify(request.headers.get("Authorization"))
        if found is None:
            service.api_metrics.auth_failures.inc()
            raise _Refusal(
                RequestError(
                    401, "invalid_api_key", "missing or unknown API key; send 'Authorization: Bearer <key>'"
                ),
                {"WWW-Authenticate": 'Bearer realm="moderator"'},
            )
        caller = found
        request["caller"] = caller
        if endpoint is not None:
            wait = service.limiter.take(caller)
            if wait > 0:
                service.api_metrics.rate_limited.labels(key=caller).inc()
                raise _Refusal(
                    RequestError(
                        429,
                        "rate_limited",
                        f"rate limit of {service.settings.api_rate_limit:g} requests/s reached",
                    ),
                    {"Retry-After": retry_after_header(wait)},
                )
        response = await handler(request)
    except _Refusal as refusal:
        response = error_response(refusal.error, refusal.headers)
    except RequestError as exc:
        response = error_response(exc)
    except web.HTTPRequestEntityTooLarge:
        response = error_response(
            RequestError(413, "too_large", f"the body is over {service.settings.api_max_body_bytes} bytes")
        )
    except web.HTTPNotFound:
        response = error_response(RequestError(404, "not_found", f"no endpoint {request.path}"))
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        response = error_response(
            RequestError(405, "method_not_allowed", f"{request.method} not allowed; use {allowed}")
        )
    except (NotReady, BatcherClosed):
        response = error_response(
            RequestError(503, "not_ready", f"not serving yet ({service.stage}); retry shortly"),
            {"Retry-After": "1"},
        )
    except Exception:
        log.exception("internal error on %s", request.path)
        response = error_response(RequestError(500, "internal_error", "internal error; the server logged it"))
    status = response.status
    label = endpoint or "other"
    service.api_metrics.requests.labels(endpoint=label, status=str(status)).inc()
    if endpoint is not None and endpoint != "stream" and status < 400:
        service.api_metrics.latency.labels(endpoint=endpoint).observe(time.perf_counter() - started)
    level = logging.INFO if status >= 400 else logging.DEBUG
    if log.isEnabledFor(level):
        log.log(
            level,
            "%s %s %d key=%s inputs=%s %.1fms",
            request.method,
            request.path,
            status,
            caller,
            request.get("inputs", "-"),
            (time.perf_counter() - started) * 1000,
        )
    return response


class _Refusal(Exception):
    def __init__(self, error: RequestError, headers: dict[str, str]) -> None:
        self.error = error
        self.headers = headers


def create_app(service: ApiService) -> web.Application:
    app = web.Application(middlewares=[guard], client_max_size=service.settings.api_max_body_bytes)
    app[SERVICE] = service
    app[SOCKETS] = weakref.WeakSet()
    app.router.add_post("/v1/moderations", routes.moderations)
    app.router.add_post("/v1/comments", routes.comments)
    app.router.add_post("/v1/replies", routes.replies)
    app.router.add_get("/v1/stream", stream.stream)
    app.router.add_get("/health", routes.health)
    app.router.add_get("/ready", routes.ready)
    app.router.add_get("/metrics", routes.metrics)

    async def close_sockets(app: web.Application) -> None:
        sockets: weakref.WeakSet[web.WebSocketResponse] = app[SOCKETS]
        for ws in list(sockets):
            await ws.close(code=1001, message=b"server shutting down")

    app.on_shutdown.append(close_sockets)
    return app


def check_exposure(settings: Settings, keys: ApiKeys) -> None:
    """No keys may only mean loopback: an open moderation endpoint on a network is free GPU time."""
    if not keys.enabled and not is_loopback(settings.api_host):
        raise UsageError(
            f"refusing to listen on {settings.api_host} without API keys",
            "set MODERATOR_API_KEYS (comma-separated) or MODERATOR_API_KEYS_FILE (SHA-256 hashes), "
            "or bind 127.0.0.1 behind a reverse proxy",
        )


def run_server(settings: Settings) -> int:
    """Serve until SIGTERM/SIGINT; returns the exit code (2: refused to start, via the CLI)."""
    keys = ApiKeys.load(settings.api_keys, settings.api_keys_file)
    check_exposure(settings, keys)
    return asyncio.run(_serve(settings, keys))


async def _serve(settings: Settings, keys: ApiKeys) -> int:
    from moderator.stream.worker import build_pipeline

    metrics = Metrics()
    service = ApiService(
        settings=settings,
        metrics=metrics,
        api_metrics=ApiMetrics(metrics),
        keys=keys,
        limiter=RateLimiter(settings.api_rate_limit, settings.api_rate_burst),
    )
    app = create_app(service)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    site = web.TCPSite(runner, settings.api_host, settings.api_port, backlog=1024)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise UsageError(
            f"cannot listen on {settings.api_host}:{settings.api_port} ({exc.strerror or exc})",
            "choose another --port or stop what holds it",
        ) from None
    log.info(
        "listening on http://%s:%d (%s)",
        settings.api_host,
        settings.api_port,
        f"{len(keys.hashes)} API key(s)" if keys.enabled else "no API keys: loopback only",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loading = asyncio.ensure_future(_load(service, build_pipeline))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({loading, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if loading.done():
            loading.result()  # a model or policy that cannot load ends the process here (exit 2)
            await stopped
        log.info("stopping: finishing requests in flight")
    finally:
        service.draining = True
        service.ready = False
        metrics.ready.set(0)
        for task in (loading, stopped):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await runner.cleanup()
        await service.close()
    log.info("stopped")
    return 0


async def _load(service: ApiService, build_pipeline: Callable[..., Pipeline]) -> None:
    service.stage = "loading models"
    # Ids stay in this process: the API answers every call, so a repeated id is answered again (its
    # verdict names the revision it supersedes), and no Redis round trip is spent on the id registry.
    pipeline = await asyncio.to_thread(build_pipeline, service.settings, service.metrics, shared_ids=False)
    service.stage = "warming up"
    await warm_up(pipeline)
    settle_heap()  # models and policy are loaded: out of the collector's walks from here on
    service.attach(pipeline)
    service.stage = "serving"
    service.ready = True
    service.metrics.ready.set(1)
    log.info("ready: classifier on %s, policy %s", pipeline.classifier.provider, pipeline.policy.version)


__all__ = ["check_exposure", "create_app", "json_response", "run_server"]
