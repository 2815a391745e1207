"""Dashboard fixtures: a real worker and a real ``moderator dashboard`` process on the session's broker
and Redis, and accounts created through the CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import orjson
import pytest

from moderator.local.embedded import free_port
from moderator.runtime.loader import load_classifier
from moderator.runtime.options import RuntimeOptions
from tests.fixtures.worker import WorkerProcess
from topics import HATE_LABEL_KEYS, TopicNames


def add_user(db: Path, name: str, role: str, password: str) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "moderator",
            "dashboard-user",
            "add",
            name,
            "--role",
            role,
            "--password-stdin",
        ],
        input=password.encode() + b"\n",
        env={**os.environ, "MODERATOR_DASHBOARD_DB": str(db)},
        check=True,
        capture_output=True,
    )


def policy_flagging_about_half(classifier_dir: Path, texts: list[str], path: Path) -> Path:
    """A policy whose one threshold sits at the median top score of ``texts`` under the tiny model.

    The tiny model's weights are random (seeded), so which texts it flags is only known by running it.
    """
    model = load_classifier(classifier_dir, RuntimeOptions(device="cpu", intra_op_threads=1))
    probs = model.predict(texts).probs
    tops = sorted(float(row[: len(HATE_LABEL_KEYS)].max()) for row in probs)
    threshold = (tops[len(tops) // 2 - 1] + tops[len(tops) // 2]) / 2
    # every reply is flagged (judge review at 0): the queue then always shows a reply with its user message
    policy = {"name": "dashboard-test", "labels": {"*": {"threshold": threshold}}, "judge": {"review": 0.0}}
    path.write_bytes(orjson.dumps(policy))
    return path


@dataclass
class DashboardProcess:
    broker_url: str
    redis_url: str
    topics: TopicNames
    db: Path
    policy: Path
    metrics_url: str
    log_path: Path
    app_id: str = "moderator"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> DashboardProcess:
        t = self.topics
        env = {
            **os.environ,
            "MODERATOR_BROKER": self.broker_url,
            "MODERATOR_REDIS_URL": self.redis_url,
            "MODERATOR_TOPIC_COMMENTS": t.comments,
            "MODERATOR_TOPIC_REPLIES": t.replies,
            "MODERATOR_TOPIC_VERDICTS": t.verdicts,
            "MODERATOR_TOPIC_FLAGGED": t.flagged,
            "MODERATOR_TOPIC_DEAD_LETTER": t.dead_letter,
            "MODERATOR_TOPIC_REVIEWS": t.reviews,
            "MODERATOR_TOPIC_PARTITIONS": "2",
            "MODERATOR_POLICY_PATH": str(self.policy),
            "MODERATOR_DASHBOARD_DB": str(self.db),
            "MODERATOR_DASHBOARD_METRICS_URLS": self.metrics_url,
            "MODERATOR_APP_ID": self.app_id,
            "PYTHONUNBUFFERED": "1",
        }
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moderator", "dashboard", "--port", str(self.port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"dashboard exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (OSError, urllib.error.HTTPError):
                pass
            time.sleep(0.3)
        raise AssertionError(f"dashboard not healthy after {timeout_s}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


@dataclass
class Stack:
    worker: WorkerProcess
    dashboard: DashboardProcess
    topics: TopicNames
    broker_url: str


@pytest.fixture
def dashboard_stack(
    broker, redis_server, tiny_classifier_dir: Path, tiny_judge_dir: Path, fresh_topics, tmp_path: Path
) -> Iterator[callable]:  # type: ignore[valid-type]
    """``make(texts)`` → a Stack: worker + dashboard on fresh topics, a policy flagging about half of
    ``texts``, accounts alice (reviewer) and victor (viewer); both processes stopped at teardown."""
    started: list[Stack] = []

    def make(texts: list[str]) -> Stack:
        fresh = fresh_topics()
        asyncio.run(fresh.create(broker.url, partitions=2))
        topics = replace(fresh.topic_names(), reviews=fresh.name("reviews"))
        policy = policy_flagging_about_half(tiny_classifier_dir, texts, tmp_path / "policy.json")
        app_id = fresh.group_id("moderator")
        worker = WorkerProcess.of(
            broker_url=broker.url,
            redis_url=redis_server.url,
            topics=topics,
            classifier=tiny_classifier_dir,
            judge=tiny_judge_dir,
            app_id=app_id,
            log_path=tmp_path / "worker.log",
            extra_env={"MODERATOR_POLICY_PATH": str(policy)},
        )
        db = tmp_path / "dashboard.sqlite3"
        add_user(db, "alice", "reviewer", "alice-password-1")
        add_user(db, "victor", "viewer", "victor-password-1")
        dashboard = DashboardProcess(
            broker_url=broker.url,
            redis_url=redis_server.url,
            topics=topics,
            db=db,
            policy=policy,
            metrics_url=f"http://127.0.0.1:{worker.web_port}/metrics",
            log_path=tmp_path / "dashboard.log",
            app_id=app_id,
        )
        stack = Stack(worker, dashboard, topics, broker.url)
        started.append(stack)
        worker.start(wait_ready=True)
        dashboard.start()
        return stack

    yield make
    for stack in started:
        stack.dashboard.stop()
        stack.worker.kill()


async def send(
    broker_url: str, topic: str, values: list[bytes], keys: list[bytes] | None = None
) -> list[tuple[int, int]]:
    """Produce and return each record's (partition, offset): tests point verdicts at real inputs."""
    from aiokafka import AIOKafkaProducer

    from moderator.settings import bootstrap_servers

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers(broker_url), acks="all")
    await producer.start()
    try:
        out = []
        for i, value in enumerate(values):
            meta = await producer.send_and_wait(topic, value, key=keys[i] if keys else None)
            out.append((meta.partition, meta.offset))
        return out
    finally:
        await producer.stop()


def flagged_verdict(
    record_id: str,
    kind: str,
    source: tuple[str, int, int],
    *,
    categories: list[str],
    action: str = "review",
    ts: float | None = None,
    unsafe: float | None = None,
) -> dict:
    """A verdict as the worker writes it (scores for every label), pointing at a real input record."""
    from topics import LABEL_KEYS

    scores = {k: (0.8 if k in categories else 0.05) for k in LABEL_KEYS}
    return {
        "id": record_id,
        "kind": kind,
        "flagged": action != "allow",
        "action": action,
        "categories": categories,
        "scores": scores,
        "unsafe": unsafe,
        "cached": False,
        "model": {"classifier": "cls-1", "judge": "judge-1"},
        "policy": "default@abc",
        "latency_ms": 3.0,
        "ts": ts if ts is not None else time.time(),
        "truncated": False,
        "source": {"topic": source[0], "partition": source[1], "offset": source[2]},
    }


@pytest.fixture
def lone_dashboard(broker, redis_server, fresh_topics, tmp_path: Path) -> Iterator[DashboardProcess]:
    """A dashboard process (no worker) on fresh topics with accounts alice (reviewer), victor (viewer)."""
    from moderator.settings import DEFAULT_POLICY

    fresh = fresh_topics()
    asyncio.run(fresh.create(broker.url, partitions=1))
    db = tmp_path / "dashboard.sqlite3"
    add_user(db, "alice", "reviewer", "alice-password-1")
    add_user(db, "victor", "viewer", "victor-password-1")
    dashboard = DashboardProcess(
        broker_url=broker.url,
        redis_url=redis_server.url,
        topics=replace(fresh.topic_names(), reviews=fresh.name("reviews")),
        db=db,
        policy=DEFAULT_POLICY,
        metrics_url=f"http://127.0.0.1:{free_port()}/metrics",
        log_path=tmp_path / "dashboard.log",
    )
    dashboard.start()
    yield dashboard
    dashboard.stop()
