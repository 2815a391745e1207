"""The API's own Prometheus series, registered on the worker's registry (one ``/metrics`` page).

The pipeline's series (cache hits, model latency, verdicts by action) are the worker's, shared as
they are; these add what only an HTTP front door has: requests, refusals, queue and batch sizes.
"""

from __future__ import annotations

from moderator.metrics import Metrics, Series

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
ENDPOINTS = ("moderations", "comments", "replies", "stream")


class ApiMetrics:
    def __init__(self, metrics: Metrics) -> None:
        s = Series(metrics.registry)
        self.requests = s.counter(
            "moderator_api_requests_total", "HTTP requests by endpoint and status", ["endpoint", "status"]
        )
        self.latency = s.histogram(
            "moderator_api_request_latency_seconds",
            "Wall time of an answered request, by endpoint",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
        )
        self.inputs = s.counter(
            "moderator_api_inputs_total", "Texts or records scored, by endpoint", ["endpoint"]
        )
        self.queue_depth = s.gauge("moderator_api_queue_depth", "Texts waiting for a micro-batch")
        self.batch_inputs = s.histogram(
            "moderator_api_batch_inputs", "Texts per micro-batch (across requests)", buckets=_BATCH_BUCKETS
        )
        self.rate_limited = s.counter(
            "moderator_api_rate_limited_total", "Requests refused with 429, by key name", ["key"]
        )
        self.auth_failures = s.counter("moderator_api_auth_failures_total", "Requests refused with 401")
        self.stream_turns = s.counter(
            "moderator_api_stream_turns_total",
            "Streaming-rail turns by outcome (completed, stopped, abandoned)",
            ["outcome"],
        )
        for endpoint in ENDPOINTS:
            self.latency.labels(endpoint=endpoint)
            self.inputs.labels(endpoint=endpoint)
        for outcome in ("completed", "stopped", "abandoned"):
            self.stream_turns.labels(outcome=outcome)
