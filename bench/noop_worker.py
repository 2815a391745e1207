"""The real worker (``moderator.stream.worker.run_worker``) around a pipeline with the no-op models.

    MODERATOR_BROKER=... MODERATOR_REDIS_URL=... python -m bench.noop_worker

Same settings, policy, Redis cache, sinks and batch routes as ``moderator worker``; only the two models are
``moderator.local.noop_models``'s constant ones, so what is timed is everything the worker does besides the models.
"""

from __future__ import annotations

import logging

from moderator.local.noop_models import NoopClassifier, NoopJudge
from moderator.settings import Settings
from moderator.stream.worker import run_worker


def main() -> int:
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level.upper())
    return run_worker(settings, classifier=NoopClassifier(), judge=NoopJudge())


if __name__ == "__main__":
    raise SystemExit(main())
