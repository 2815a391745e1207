"""Assemble a worker from settings: load models and policy, connect the cache, wait for the broker.

Everything that can refuse to start (a missing model directory, a wrong provider, a bad policy) fails
here, before the worker joins a consumer group, with a message that names the file and the fix.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from moderator.core.cache import VerdictCache
from moderator.core.pipeline import Pipeline
from moderator.core.policy import load_policy
from moderator.core.redis_store import RedisStore
from moderator.core.registry import IdRegistry
from moderator.heap import settle_heap
from moderator.metrics import Metrics
from moderator.runtime.base import ReplyJudge, TextClassifier
from moderator.settings import Settings

log = logging.getLogger(__name__)


def build_pipeline(
    settings: Settings,
    metrics: Metrics,
    *,
    use_cache: bool = True,
    shared_ids: bool = True,
    classifier: TextClassifier | None = None,
    judge: ReplyJudge | None = None,
) -> Pipeline:
    """Models, policy, and Redis for the verdict cache (``use_cache``) and the id registry (``shared_ids``).

    Without ``shared_ids`` the id registry lives in this process only: ``moderator score`` then never
    reads or writes the revisions a running worker keeps. ``classifier``/``judge`` stand in for the
    configured model directories (the benchmarks' no-op models).
    """
    from moderator.runtime.loader import load_classifier, load_judge

    options = settings.runtime
    metrics.requested_device.labels(device=settings.device).set(1)
    policy = load_policy(settings.policy_path)
    classifier = classifier or load_classifier(settings.classifier_path, options)
    judge = judge or load_judge(settings.judge_path, options)
    log.info(
        "models loaded: classifier %s on %s, judge %s on %s; policy %s",
        classifier.model_id,
        classifier.provider,
        judge.model_id,
        judge.provider,
        policy.version,
    )

    def redis(url: str) -> RedisStore:
        return RedisStore(
            url,
            timeout_ms=settings.cache_timeout_ms,
            retry_s=settings.cache_retry_s,
            ssl_ca_certs=settings.redis_ssl_ca_certs,
            metrics=metrics,
        )

    # The id registry may live on its own Redis (MODERATOR_ID_REDIS_URL), one that never evicts, while the
    # verdict cache's may run allkeys-lru; without it both share one connection.
    separate_ids = bool(settings.id_redis_url) and settings.id_redis_url != settings.redis_url
    store = None
    if settings.redis_url and (use_cache or (shared_ids and not separate_ids)):
        store = redis(settings.redis_url)
    ids_store = redis(settings.id_redis_url) if shared_ids and separate_ids else store
    cache = VerdictCache(store, ttl_s=settings.cache_ttl_s, metrics=metrics) if store and use_cache else None
    ids = IdRegistry(
        ids_store if shared_ids else None, ttl_s=settings.dedupe_ttl_s, local_max=settings.id_memory_max
    )
    return Pipeline(
        classifier,
        judge,
        policy,
        cache=cache,
        ids=ids,
        limits=settings.limits,
        metrics=metrics,
        windows=settings.windows,
    )


class BrokerUnavailable(RuntimeError):
    pass


async def wait_for_broker(settings: Settings, *, timeout_s: float, log_every_s: float = 5.0) -> None:
    """Bounded, logged retries until the broker answers a metadata request (no crash loop)."""
    from aiokafka import AIOKafkaClient

    from moderator.settings import bootstrap_servers

    deadline = time.monotonic() + timeout_s
    delay, attempt, last_log = 0.25, 0, 0.0
    while True:
        attempt += 1
        client = AIOKafkaClient(bootstrap_servers=bootstrap_servers(settings.broker), request_timeout_ms=3000)
        try:
            await client.bootstrap()
            return
        except Exception as exc:
            now = time.monotonic()
            if now >= deadline:
                raise BrokerUnavailable(
                    f"broker {settings.broker} unreachable after {attempt} attempts over {timeout_s:.0f}s: {exc}. "
                    "Fix: start the broker or set MODERATOR_BROKER"
                ) from None
            if now - last_log >= log_every_s:
                log.warning(
                    "broker %s not reachable yet (attempt %d): %s; retrying", settings.broker, attempt, exc
                )
                last_log = now
            await asyncio.sleep(min(delay, max(0.0, deadline - now)))
            delay = min(delay * 2, 5.0)
        finally:
            await client.close()


class _StatusServer(ThreadingHTTPServer):
    """A prober that hangs up before the answer (a health check's short timeout) is routine: no
    traceback on stderr for it; anything else a handler raises is logged as one line."""

    allow_reuse_address = True
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError):
            return
        log.warning("startup status server: request from %s failed: %r", client_address[0], exc)


class StartupStatus:
    """``/health``, ``/ready`` and ``/metrics`` while the worker loads models and waits for the broker.

    Faust's web server only comes up with the faust worker, after both; until then this small server
    answers on the same address so an orchestrator sees a live process (``/health`` 200) that is not
    ready (``/ready`` 503) instead of a refused connection. It is closed before faust binds the port.
    """

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.stage = "starting"
        status = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    code, body, kind = 200, metrics.render(), "text/plain; version=0.0.4"
                elif path in ("/health", "/ready"):
                    report: dict[str, Any] = {"live": True, "ready": False, "stage": status.stage}
                    code = 200 if path == "/health" else 503
                    body, kind = json.dumps(report).encode(), "application/json"
                else:
                    code, body, kind = 404, b"not found", "text/plain"
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self._server = _StatusServer((settings.web_host, settings.web_port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="startup-status", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


#: After SIGTERM/SIGINT the worker gets this long to drain its in-flight batches (``DRAIN_TIMEOUT_S``),
#: commit and close; past it, it exits anyway (``EXIT_SHUTDOWN_TIMEOUT``). With a hung broker faust's
#: shutdown would otherwise wait on it for minutes. Exiting is safe: what was not committed is
#: re-delivered. 25 s fits inside Kubernetes' default 30 s grace period.
SHUTDOWN_TIMEOUT_S = 25.0
EXIT_SHUTDOWN_TIMEOUT = 4


def _hard_exit_after_shutdown_timeout() -> None:
    log.error(
        "shutdown did not finish within %.0fs (broker unreachable?); exiting now. Batches not committed "
        "will be re-delivered to the next worker.",
        SHUTDOWN_TIMEOUT_S,
    )
    logging.shutdown()
    os._exit(EXIT_SHUTDOWN_TIMEOUT)


def _start_shutdown_watchdog() -> None:
    """Bounded shutdown: from the first stop signal, the worker has ``SHUTDOWN_TIMEOUT_S`` to exit."""
    watchdog = threading.Timer(SHUTDOWN_TIMEOUT_S, _hard_exit_after_shutdown_timeout)
    watchdog.daemon = True
    watchdog.start()


def run_worker(
    settings: Settings, *, classifier: TextClassifier | None = None, judge: ReplyJudge | None = None
) -> int:
    """Run the faust worker in this process until SIGTERM/SIGINT; returns the exit code.

    ``classifier``/``judge`` stand in for the configured models (``bench.noop_worker``'s no-op ones).

    Refuses to start (exit 2, via the CLI) on a missing or corrupt model, a wrong provider or a bad
    policy; exits 3 when the broker stays unreachable for ``broker_wait_s`` after bounded, logged
    retries, so a supervisor restarts it with its position intact (offsets live in the broker).
    """
    from moderator.stream.adapter import worker_with_first_stop_hook
    from moderator.stream.app import create_app

    metrics = Metrics()
    status: StartupStatus | None = None
    if settings.web_enabled:
        try:
            status = StartupStatus(settings, metrics)
        except OSError as exc:
            log.warning(
                "startup status server not started on %s:%s: %s", settings.web_host, settings.web_port, exc
            )
    try:
        if status is not None:
            status.stage = "loading models"
        pipeline = build_pipeline(settings, metrics, classifier=classifier, judge=judge)
        if status is not None:
            status.stage = "waiting for broker"
        try:
            asyncio.run(wait_for_broker(settings, timeout_s=settings.broker_wait_s))
        except BrokerUnavailable as exc:
            log.error("%s", exc)
            return 3
    finally:
        if status is not None:
            status.close()
    app = create_app(settings, pipeline, metrics)
    settle_heap()  # models, policy and app are loaded: out of the collector's walks from here on
    worker = worker_with_first_stop_hook(_start_shutdown_watchdog)(
        app, loglevel=settings.log_level.upper(), redirect_stdouts=False, quiet=True
    )
    # No terminal spinner: at log level warning or above faust would hang one on the root logger at
    # DEBUG, so every debug call of aiokafka/faust/mode (one per record sent) builds and handles a
    # log record and hands it to the spinner (~2% of the worker's CPU in a bench.overhead profile).
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
