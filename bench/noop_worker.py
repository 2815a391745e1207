"""The real faust worker (``moderator.stream.app.create_app``) around a pipeline with the no-op models.

    MODERATOR_BROKER=... MODERATOR_REDIS_URL=... python -m bench.noop_worker

Same settings, policy, Redis cache, sinks and batch routes as ``moderator worker``; only the two models are
``moderator.local.noop_models``'s constant ones, so what is timed is everything the worker does besides the models.
"""

from __future__ import annotations

import asyncio
import logging

import faust

from moderator.local.noop_models import NoopClassifier, NoopJudge
from moderator.metrics import Metrics
from moderator.settings import Settings
from moderator.stream.app import create_app
from moderator.stream.worker import build_pipeline, wait_for_broker


def main() -> int:
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level.upper())
    metrics = Metrics()
    pipeline = build_pipeline(settings, metrics, classifier=NoopClassifier(), judge=NoopJudge())
    asyncio.run(wait_for_broker(settings, timeout_s=settings.broker_wait_s))
    app = create_app(settings, pipeline, metrics)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), redirect_stdouts=False, quiet=True)
    worker.spinner = None  # as moderator.stream.worker.run_worker does
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
