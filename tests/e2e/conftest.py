"""End-to-end fixtures: a worker process factory bound to the session broker, Redis and tiny models."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures.worker import WorkerProcess


@pytest.fixture
def start_worker(
    broker, redis_server, tiny_classifier_dir: Path, tiny_judge_dir: Path, fresh_topics, tmp_path: Path
):  # type: ignore[no-untyped-def]
    """``start_worker(topics=None, app_id=None, module=..., raw_env=None, **env)`` → a ready WorkerProcess.

    ``env`` keys become ``MODERATOR_<KEY>``; ``raw_env`` is passed as it is. All stopped at teardown.
    """
    workers: list[WorkerProcess] = []
    made: dict[str, object] = {}

    def make(
        topics=None,
        app_id: str | None = None,
        wait_ready: bool = True,
        partitions: int = 4,
        module: str = "moderator",
        raw_env: dict[str, str] | None = None,
        **env: str,
    ) -> WorkerProcess:  # type: ignore[no-untyped-def]
        if topics is None:
            if "topics" not in made:
                fresh = fresh_topics()
                asyncio.run(fresh.create(broker.url, partitions=partitions))
                made["topics"] = fresh.topic_names()
                made["app_id"] = fresh.group_id("moderator")
            topics = made["topics"]
        worker = WorkerProcess.of(
            broker_url=broker.url,
            redis_url=redis_server.url,
            topics=topics,
            classifier=tiny_classifier_dir,
            judge=tiny_judge_dir,
            app_id=app_id or str(made.get("app_id") or f"moderator-{uuid.uuid4().hex[:8]}"),
            log_path=tmp_path / f"worker-{len(workers)}.log",
            extra_env={**{"MODERATOR_" + k.upper(): v for k, v in env.items()}, **(raw_env or {})},
            module=module,
        )
        workers.append(worker)
        worker.start(wait_ready=wait_ready)
        return worker

    yield make
    for w in workers:
        w.kill()


@pytest.fixture
def worker_topics() -> Callable[[WorkerProcess], object]:
    return lambda w: w.topics


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


__all__: list[str] = []
_ = Iterator
