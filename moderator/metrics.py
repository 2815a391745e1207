"""Prometheus metrics with names a Prometheus user can guess; one registry per worker.

A fresh ``Metrics`` gets its own ``CollectorRegistry`` so tests and several in-process pipelines do
not collide on global collectors.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from topics import Reason

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_TOKEN_BUCKETS = (64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages_in = Counter(
            "moderator_messages_in_total", "Records read from input topics", ["topic"], registry=r
        )
        self.messages_out = Counter(
            "moderator_messages_out_total",
            "Records acknowledged by the broker on output topics",
            ["topic"],
            registry=r,
        )
        self.dead_letters = Counter(
            "moderator_dead_letters_total", "Records dead-lettered, by reason", ["reason"], registry=r
        )
        self.cache_hits = Counter(
            "moderator_cache_hits_total", "Verdicts served from the Redis cache", registry=r
        )
        self.cache_misses = Counter(
            "moderator_cache_misses_total", "Cache look-ups that went to the models", registry=r
        )
        self.cache_errors = Counter(
            "moderator_cache_errors_total",
            "Redis calls that failed or timed out (stream went on uncached)",
            ["op"],
            registry=r,
        )
        self.cache_uncached = Counter(
            "moderator_cache_uncached_total",
            "Records looked up while Redis was down or slower than its timeout (scored without the cache)",
            registry=r,
        )
        self.cache_up = Gauge(
            "moderator_cache_up", "1 while Redis answers, 0 while the stream runs uncached", registry=r
        )
        self.batch_size = Histogram(
            "moderator_batch_size", "Records per worker batch", buckets=_SIZE_BUCKETS, registry=r
        )
        self.padded_tokens = Histogram(
            "moderator_batch_padded_tokens",
            "Padded tokens per worker batch, per model",
            ["model"],
            buckets=_TOKEN_BUCKETS,
            registry=r,
        )
        self.model_latency = Histogram(
            "moderator_model_latency_seconds",
            "Wall time of one model call",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.model_rows = Counter(
            "moderator_model_rows_total",
            "Rows scored by each model (cache misses only)",
            ["model"],
            registry=r,
        )
        self.batch_latency = Histogram(
            "moderator_batch_latency_seconds",
            "Wall time from batch receipt to broker ack",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.verdicts = Counter(
            "moderator_verdicts_total", "Verdicts by action", ["kind", "action"], registry=r
        )
        self.categories = Counter(
            "moderator_verdict_categories_total", "Flagged categories", ["category"], registry=r
        )
        self.consumer_lag = Gauge(
            "moderator_consumer_lag",
            "High-water mark minus committed offset",
            ["topic", "partition"],
            registry=r,
        )
        self.committed_offset = Gauge(
            "moderator_committed_offset",
            "Committed offset (the next offset the group will read)",
            ["topic", "partition"],
            registry=r,
        )
        self.provider = Gauge(
            "moderator_execution_provider",
            "1 for the ONNX Runtime provider each model runs on",
            ["model", "provider"],
            registry=r,
        )
        self.requested_device = Gauge(
            "moderator_requested_device",
            "1 for the device the worker was asked for (MODERATOR_DEVICE): alerts compare it with the provider",
            ["device"],
            registry=r,
        )
        self.ready = Gauge("moderator_ready", "1 once models are loaded and the worker consumes", registry=r)
        self.live = Gauge(
            "moderator_live", "0 when committed offsets stopped advancing while lag > 0", registry=r
        )
        self.sink_retries = Counter(
            "moderator_sink_retries_total", "Batch sends retried after a broker error", registry=r
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
