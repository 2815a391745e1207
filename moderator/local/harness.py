"""A real worker (or any service) process and Kafka produce/read helpers: one copy for tests, bench, demo.

``ServiceProcess`` runs a command with its output in a log file and speaks to its ``/ready``,
``/health`` and ``/metrics`` endpoints; ``worker_env`` is the environment a ``moderator worker`` gets
from a broker, a Redis, topic names and models. Development only: production code never imports this.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from moderator.local.embedded import free_port
from moderator.settings import bootstrap_servers
from topics import TopicNames

_METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEinfNa]+)$")


def worker_env(
    broker_url: str,
    redis_url: str,
    topics: TopicNames,
    *,
    app_id: str,
    web_port: int,
    classifier: Path | None = None,
    judge: Path | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """This process's environment plus the ``MODERATOR_*`` variables a worker on these services needs."""
    env = dict(os.environ)
    env.update(
        MODERATOR_BROKER=broker_url,
        MODERATOR_REDIS_URL=redis_url,
        MODERATOR_APP_ID=app_id,
        MODERATOR_TOPIC_COMMENTS=topics.comments,
        MODERATOR_TOPIC_REPLIES=topics.replies,
        MODERATOR_TOPIC_VERDICTS=topics.verdicts,
        MODERATOR_TOPIC_FLAGGED=topics.flagged,
        MODERATOR_TOPIC_DEAD_LETTER=topics.dead_letter,
        MODERATOR_WEB_PORT=str(web_port),
        MODERATOR_DEVICE="cpu",
        PYTHONUNBUFFERED="1",
    )
    if classifier is not None:
        env["MODERATOR_CLASSIFIER_PATH"] = str(classifier)
    if judge is not None:
        env["MODERATOR_JUDGE_PATH"] = str(judge)
    env.update(extra or {})
    return env


def worker_argv(module: str = "moderator") -> list[str]:
    """``python -m moderator worker``, or another module that runs the worker (bench's no-op one)."""
    return [sys.executable, "-m", module, *(["worker"] if module == "moderator" else [])]


@dataclass
class ServiceProcess:
    """A child process logging to ``log_path`` and serving ``/ready``, ``/health``, ``/metrics`` on ``web_port``."""

    argv: list[str]
    env: dict[str, str]
    log_path: Path
    web_port: int = field(default_factory=free_port)
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, wait_ready: bool = False, timeout_s: float = 180.0) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd
            )
        if wait_ready:
            self.wait_ready(timeout_s)
        return self

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=2) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if self.get("/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.argv} not ready after {timeout_s:.0f}s:\n{self.log_tail()}")

    def health(self) -> tuple[int, dict[str, Any]]:
        status, body = self.get("/health")
        return status, orjson.loads(body)

    def metrics(self) -> dict[str, float]:
        """Prometheus text → {'name{labels}': value}."""
        _, body = self.get("/metrics")
        out: dict[str, float] = {}
        for line in body.decode().splitlines():
            m = _METRIC.match(line)
            if m:
                out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
        return out

    def metric(self, name: str, match: str = "") -> float:
        """Sum of a series over its label sets containing ``match`` (0 when absent)."""
        return sum(v for k, v in self.metrics().items() if k.split("{", 1)[0] == name and match in k)

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.argv} was never started")
        return self.proc.pid

    def wait(self, timeout_s: float) -> int:
        """Wait for the process to exit on its own; returns its exit code."""
        if self.proc is None:
            raise RuntimeError(f"{self.argv} was never started")
        return self.proc.wait(timeout=timeout_s)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.argv} exited with {self.proc.returncode}:\n{self.log_tail()}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None, "not started"
        self.proc.send_signal(sig)

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM and wait; a process still there after ``timeout_s`` is killed and reported."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(
                f"{self.argv} did not exit within {timeout_s:.0f}s of SIGTERM:\n{self.log_tail()}"
            ) from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


async def produce(
    broker_url: str, topic: str, values: Iterable[bytes], keys: Iterable[bytes | None] | None = None
) -> int:
    """Send every value (with its key, if given) and wait for all acks; returns how many were sent."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers(broker_url), acks="all", linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    n = 0
    try:
        futures = []
        key_list = list(keys) if keys is not None else None
        for i, value in enumerate(values):
            key = key_list[i] if key_list is not None else None
            futures.append(await producer.send(topic, value, key=key))
            n += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return n


@dataclass(frozen=True, slots=True)
class Record:
    key: bytes | None
    value: bytes
    timestamp_ms: int

    def __iter__(self) -> Any:
        """Reads as the pair ``(key, value)``, the form most callers want."""
        return iter((self.key, self.value))

    def __getitem__(self, index: int) -> bytes | None:
        return (self.key, self.value)[index]


async def read_until(
    broker_url: str, topics: list[str], done: Callable[[dict[str, list[Record]]], bool], timeout_s: float
) -> dict[str, list[Record]]:
    """Read ``topics`` from the start (no group) until ``done(records_by_topic)`` or the time is up."""
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap_servers(broker_url), group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    out: dict[str, list[Record]] = {t: [] for t in topics}
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, records in batch.items():
                out[tp.topic].extend(Record(r.key, r.value or b"", r.timestamp) for r in records)
            if done(out):
                break
    finally:
        await consumer.stop()
    return out
