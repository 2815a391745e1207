"""Local development and test harness: embedded broker and Redis, a worker process, the demo.

Never imported by the worker's production code path (``moderator.stream``, ``moderator.core``,
``moderator.runtime``).
"""
