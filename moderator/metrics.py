"""Prometheus metrics with names a Prometheus user can guess; one registry per worker.

A fresh ``Metrics`` gets its own ``CollectorRegistry`` so tests and several in-process pipelines do
not collide on global collectors.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from topics import Reason

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_TOKEN_BUCKETS = (64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536)


class Series:
    """Declares series on one registry: the registry is bound once, not repeated per series."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(name, doc, labels, registry=self.registry)

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        return Gauge(name, doc, labels, registry=self.registry)

    def histogram(
        self, name: str, doc: str, labels: Sequence[str] = (), *, buckets: Sequence[float]
    ) -> Histogram:
        return Histogram(name, doc, labels, buckets=buckets, registry=self.registry)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        s = Series(self.registry)
        self.messages_in = s.counter(
            "moderator_messages_in_total", "Records read from input topics", ["topic"]
        )
        self.messages_out = s.counter(
            "moderator_messages_out_total", "Records acknowledged by the broker on output topics", ["topic"]
        )
        self.dead_letters = s.counter(
            "moderator_dead_letters_total", "Records dead-lettered, by reason", ["reason"]
        )
        self.cache_hits = s.counter("moderator_cache_hits_total", "Verdicts served from the Redis cache")
        self.cache_misses = s.counter(
            "moderator_cache_misses_total", "Cache look-ups that went to the models"
        )
        self.cache_errors = s.counter(
            "moderator_cache_errors_total",
            "Redis calls that failed or timed out (stream went on uncached)",
            ["op"],
        )
        self.cache_uncached = s.counter(
            "moderator_cache_uncached_total",
            "Records looked up while Redis was down or slower than its timeout (scored without the cache)",
        )
        self.cache_up = s.gauge(
            "moderator_cache_up", "1 while Redis answers, 0 while the stream runs uncached"
        )
        self.batch_size = s.histogram(
            "moderator_batch_size", "Records per worker batch", buckets=_SIZE_BUCKETS
        )
        self.padded_tokens = s.histogram(
            "moderator_batch_padded_tokens",
            "Padded tokens per worker batch, per model",
            ["model"],
            buckets=_TOKEN_BUCKETS,
        )
        self.model_latency = s.histogram(
            "moderator_model_latency_seconds",
            "Wall time of one model call",
            ["model"],
            buckets=_LATENCY_BUCKETS,
        )
        self.model_rows = s.counter(
            "moderator_model_rows_total", "Rows scored by each model (cache misses only)", ["model"]
        )
        self.batch_latency = s.histogram(
            "moderator_batch_latency_seconds",
            "Wall time from batch receipt to broker ack",
            buckets=_LATENCY_BUCKETS,
        )
        self.verdicts = s.counter("moderator_verdicts_total", "Verdicts by action", ["kind", "action"])
        self.categories = s.counter("moderator_verdict_categories_total", "Flagged categories", ["category"])
        self.consumer_lag = s.gauge(
            "moderator_consumer_lag", "High-water mark minus committed offset", ["topic", "partition"]
        )
        self.committed_offset = s.gauge(
            "moderator_committed_offset",
            "Committed offset (the next offset the group will read)",
            ["topic", "partition"],
        )
        self.provider = s.gauge(
            "moderator_execution_provider",
            "1 for the ONNX Runtime provider each model runs on",
            ["model", "provider"],
        )
        self.device_kind = s.gauge(
            "moderator_model_device_kind",
            "Per model: 1 when it runs on the device kind its thresholds were calibrated on (or that is not "
            "recorded), 0 on another kind (int8 scores move between instruction sets)",
            ["model", "kind", "calibrated_on"],
        )
        self.requested_device = s.gauge(
            "moderator_requested_device",
            "1 for the device the worker was asked for (MODERATOR_DEVICE): alerts compare it with the provider",
            ["device"],
        )
        self.ready = s.gauge("moderator_ready", "1 once models are loaded and the worker consumes")
        self.live = s.gauge("moderator_live", "0 when committed offsets stopped advancing while lag > 0")
        self.sink_retries = s.counter(
            "moderator_sink_retries_total", "Batch sends retried after a broker error"
        )
        self.live.set(1)
        # Export every known series at zero from the start, so a dashboard's rate() has a baseline and an
        # alert on "dead letters by reason" or "cache errors" does not wait for the first occurrence.
        for reason in Reason:
            self.dead_letters.labels(reason=reason.value)
        for op in ("get", "set", "decode", "ids", "ping"):
            self.cache_errors.labels(op=op)
        for model in ("classifier", "judge"):
            self.model_rows.labels(model=model)

    def render(self) -> bytes:
        return generate_latest(self.registry)
