"""The API's own Prometheus series, registered on the worker's registry (one ``/metrics`` page).

The pipeline's series (cache hits, model latency, verdicts by action) are the worker's, shared as
they are; these add what only an HTTP front door has: requests, refusals, queue and batch sizes.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from moderator.metrics import Metrics

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
ENDPOINTS = ("moderations", "comments", "replies", "stream")


class ApiMetrics:
    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.requests = Counter(
            "moderator_api_requests_total",
            "HTTP requests by endpoint and status",
            ["endpoint", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "moderator_api_request_latency_seconds",
            "Wall time of an answered request, by endpoint",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inputs = Counter(
            "moderator_api_inputs_total", "Texts or records scored, by endpoint", ["endpoint"], registry=r
        )
        self.queue_depth = Gauge("moderator_api_queue_depth", "Texts waiting for a micro-batch", registry=r)
        self.batch_inputs = Histogram(
            "moderator_api_batch_inputs",
            "Texts per micro-batch (across requests)",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.rate_limited = Counter(
            "moderator_api_rate_limited_total", "Requests refused with 429, by key name", ["key"], registry=r
        )
        self.auth_failures = Counter(
            "moderator_api_auth_failures_total", "Requests refused with 401", registry=r
        )
        self.stream_turns = Counter(
            "moderator_api_stream_turns_total",
            "Streaming-rail turns by outcome (completed, stopped, abandoned)",
            ["outcome"],
            registry=r,
        )
        for endpoint in ENDPOINTS:
            self.latency.labels(endpoint=endpoint)
            self.inputs.labels(endpoint=endpoint)
        for outcome in ("completed", "stopped", "abandoned"):
            self.stream_turns.labels(outcome=outcome)
