"""``moderator serve``: the same pipeline, models, policy, Redis cache and metrics as the worker, over HTTP.

OpenAI-compatible ``/v1/moderations``, native ``/v1/comments`` and ``/v1/replies`` (the verdict
records of the ``verdicts`` topic), a WebSocket output rail ``/v1/stream``, micro-batching across
requests, bearer-key auth and per-key rate limits. See docs/api.md.
"""
