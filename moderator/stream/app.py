"""The faust worker: a batch route per input topic, thin — take a fetched batch, call the pipeline, hand
to sinks.

Topics are read as raw bytes: decoding is the pipeline's job, so a malformed record becomes a
dead letter instead of a crashed deserializer. The commit protocol (pin → emit → await acks → ack)
lives in ``moderator.stream.checkpoint``; faust commits acked offsets every ``broker_commit_interval``.
"""

from __future__ import annotations

import logging
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faust

from moderator.core.pipeline import Pipeline
from moderator.metrics import Metrics
from moderator.settings import Settings
from moderator.stream.adapter import ack_batch, app_with_fetch_wait, pin_batch, send_batches
from moderator.stream.checkpoint import BatchHandler
from moderator.stream.liveness import Liveness
from moderator.stream.sinks import VerdictSink
from topics.records import Kind

log = logging.getLogger(__name__)

#: Bytes a single fetch may bring per partition (the broker still returns one record larger than this).
_MAX_FETCH_BYTES = 1024 * 1024

#: Bytes of one produce batch (one partition's share of a produce request; the request cap is 1 MB).
_PRODUCER_BATCH_BYTES = 256 * 1024


#: Longest a fetch waits at the broker for records to arrive. faust's aiokafka driver asks for 1500 ms.
#: Kafka answers a long poll as soon as records arrive, but a broker that answers only when the wait
#: expires (tansu, the embedded broker of ``moderator demo`` and the tests) then holds every record produced
#: into a quiet partition for up to that long: measured p50 ~370 ms, max ~720 ms from produce to consume
#: at 10 records/s, vs ~4 ms with 100 ms (``bench.latency``). The price is an idle consumer fetching 10×/s.
FETCH_MAX_WAIT_MS = 100


_App = app_with_fetch_wait(FETCH_MAX_WAIT_MS)


def broker_credentials(settings: Settings) -> Any:
    """Kafka SASL/SSL from settings (secrets come from the environment only)."""
    protocol = settings.broker_security_protocol.upper()
    if protocol == "PLAINTEXT":
        return None
    context: ssl.SSLContext | None = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.broker_ssl_cafile or None)
        if settings.broker_ssl_certfile:
            context.load_cert_chain(settings.broker_ssl_certfile, settings.broker_ssl_keyfile or None)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        return faust.SASLCredentials(
            username=settings.broker_sasl_username,
            password=settings.broker_sasl_password,
            mechanism=settings.broker_sasl_mechanism,
            ssl_context=context,
        )
    raise ValueError(f"MODERATOR_BROKER_SECURITY_PROTOCOL: unknown protocol {protocol!r}")


def create_app(settings: Settings, pipeline: Pipeline, metrics: Metrics) -> faust.App:
    """Build the faust app around an already-loaded pipeline (models load before anything consumes)."""
    faust_dir = Path(tempfile.gettempdir()) / "moderator-faust"
    faust_dir.mkdir(parents=True, exist_ok=True)
    app = _App(
        settings.app_id,
        broker=settings.broker,
        broker_credentials=broker_credentials(settings),
        key_serializer="raw",
        value_serializer="raw",
        processing_guarantee="at_least_once",
        # Stateless worker: faust's table directory goes to the temp dir, not the working directory.
        datadir=str(faust_dir / "{conf.id}-data"),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # a verdict wave goes out as whole record batches (adapter.send_batches): 256 KiB per partition
        # and request, not 16 KiB, so a 1,000-record batch is a few produce requests, not dozens
        producer_max_batch_size=_PRODUCER_BATCH_BYTES,
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.broker_session_timeout_s / 3),
        broker_commit_interval=settings.broker_commit_interval_s,
        stream_ack_exceptions=False,
        # Backpressure, not growth: a poll returns at most ``stream_batch_size`` records, a fetch brings
        # at most this many bytes per partition, and the consumer stops fetching while
        # ``MAX_INFLIGHT_BATCHES`` batches per input topic are unfinished. A burst waits in the broker.
        broker_max_poll_records=settings.stream_batch_size,
        consumer_max_fetch_size=_MAX_FETCH_BYTES,
        stream_ack_cancelled_tasks=False,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        web_enabled=settings.web_enabled,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_tables_enabled=False,
        web_router_enabled=False,
        web_metrics_enabled=False,
        loghandlers=[],
    )
    topics = settings.topics
    liveness = Liveness(app, metrics, stall_timeout_s=settings.stall_timeout_s)

    async def send(topic: str, key: bytes | None, value: bytes) -> Any:
        return await app.producer.send(topic, key, value, None, None, None)

    async def send_many(records: list[tuple[str, bytes | None, bytes]]) -> list[Any]:
        return await send_batches(app.producer, records)

    sink = VerdictSink(topics, send, metrics, send_many=send_many)

    def ack(messages: Sequence[Any]) -> None:
        ack_batch(app.consumer, messages)

    handler = BatchHandler(pipeline, sink, metrics, liveness, ack, pin_batch)
    inputs: dict[Kind, Any] = {
        "comment": app.topic(
            topics.comments, key_type=bytes, value_type=bytes, partitions=settings.topic_partitions
        ),
        "reply": app.topic(
            topics.replies, key_type=bytes, value_type=bytes, partitions=settings.topic_partitions
        ),
    }
    outputs = [app.topic(name, partitions=settings.topic_partitions) for name in topics.outputs()]

    # The input topics are consumed batch by batch, not event by event: the consumer hands each fetched
    # batch of a topic (at most ``stream_batch_size`` records) to its route, which starts it through the
    # pipeline (``BatchHandler.handle``). faust still owns the group, the assignment, the offsets and
    # their commits; the input topics are registered with its conductor, which subscribes to them.
    def route(kind: Kind) -> Any:
        limit = settings.stream_batch_size

        async def take(messages: list[Any]) -> None:
            await handler.take(kind, messages, limit)

        return take

    for kind, topic in inputs.items():
        app.route_batches(topic, route(kind))
    app.batch_drain = handler.drain_all

    # Ready = models loaded (they load before this app exists), output topics declared, and the consumer
    # holds an assignment, i.e. the worker consumes. Until both, /ready answers 503.
    readiness = {"outputs": False, "assigned": False, "ready": False}

    def update_ready() -> None:
        if readiness["outputs"] and readiness["assigned"] and not readiness["ready"]:
            readiness["ready"] = True
            metrics.ready.set(1)
            log.info(
                "worker ready: classifier=%s judge=%s policy=%s",
                *pipeline.model_ids.values(),
                pipeline.policy.version,
            )

    @app.task
    async def declare_outputs() -> None:
        for topic in outputs:
            await topic.maybe_declare()
        readiness["outputs"] = True
        update_ready()

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
        readiness["assigned"] = True
        update_ready()

    @app.timer(interval=5.0)
    async def watch_progress() -> None:
        liveness.check()

    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")

    @app.page("/health")
    async def health_view(web: Any, request: Any) -> Any:
        report = liveness.report()
        report["providers"] = {"classifier": pipeline.classifier.provider, "judge": pipeline.judge.provider}
        report["cache"] = "off" if pipeline.cache is None else ("up" if pipeline.cache.available else "down")
        return web.json(report, status=200 if report["live"] else 503)

    @app.page("/ready")
    async def ready_view(web: Any, request: Any) -> Any:
        ready = readiness["ready"]
        return web.json({"ready": ready}, status=200 if ready else 503)

    app.moderator_pipeline = pipeline  # type: ignore[attr-defined]
    app.moderator_handler = handler  # type: ignore[attr-defined]
    return app
