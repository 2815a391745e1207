"""``moderator demo``: a local broker and Redis, the real worker, the bundled sample, a live summary.

Everything it starts it stops, on completion or Ctrl-C. The worker runs as its own process, exactly as
``moderator worker`` would in production; the demo only produces the sample and reads the verdicts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from moderator.clients import follow, produce_lines
from moderator.embedded import EmbeddedBroker, EmbeddedRedis, ensure_topics, free_port
from moderator.settings import Settings
from topics import loads

DEMO_DATA = Path(__file__).resolve().parent / "demo_data"


@dataclass
class Summary:
    expected: int
    started: float = field(default_factory=time.monotonic)
    verdicts: int = 0
    dead: int = 0
    cached: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    categories: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    unsafe: int = 0
    seen: set[str] = field(default_factory=set)
    examples: list[str] = field(default_factory=list)

    def add_verdict(self, record: dict[str, object]) -> None:
        rid = str(record["id"])
        if rid in self.seen:  # at-least-once: a redelivered verdict is counted once
            return
        self.seen.add(rid)
        self.verdicts += 1
        self.kinds[str(record["kind"])] += 1
        self.actions[str(record["action"])] += 1
        self.cached += bool(record["cached"])
        for category in record["categories"]:  # type: ignore[attr-defined]
            self.categories[str(category)] += 1
        unsafe = record.get("unsafe")
        if isinstance(unsafe, float) and record.get("action") != "allow" and unsafe >= 0.5:
            self.unsafe += 1

    @property
    def done(self) -> int:
        return self.verdicts + self.dead

    def render(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        hit = self.cached / self.verdicts if self.verdicts else 0.0
        lines = [
            f"moderator demo — {self.done}/{self.expected} records, {self.done / elapsed:,.0f} msg/s, "
            f"cache hit rate {hit:.0%}, {elapsed:.1f}s",
            f"  kinds:   comments {self.kinds['comment']}, replies {self.kinds['reply']}, dead-lettered {self.dead}",
            "  actions: " + ", ".join(f"{a} {self.actions[a]}" for a in ("allow", "review", "block")),
            f"  unsafe replies (judge): {self.unsafe}",
            "  categories: "
            + (", ".join(f"{c} {n}" for c, n in self.categories.most_common()) or "none yet"),
        ]
        return "\n".join(lines)


def _wait_ready(port: int, worker: subprocess.Popen[bytes], log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the worker exited with code {worker.returncode}:\n{tail}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"the worker was not ready after {timeout_s:.0f}s; see {log_path}")


async def _run(broker_url: str, settings: Settings, expected: int, out: TextIO, timeout_s: float) -> Summary:
    topics = settings.topics
    summary = Summary(expected=expected)
    tty = out.isatty()
    last_draw = 0.0
    lines_drawn = 0

    def draw(final: bool = False) -> None:
        nonlocal last_draw, lines_drawn
        text = summary.render()
        if tty:
            if lines_drawn:
                out.write(f"\x1b[{lines_drawn}F\x1b[J")
            out.write(text + "\n")
            lines_drawn = text.count("\n") + 1
        elif final or time.monotonic() - last_draw > 5:
            out.write(text + "\n\n")
        out.flush()
        last_draw = time.monotonic()

    async def feed() -> None:
        for name, topic in (("comments.jsonl", topics.comments), ("replies.jsonl", topics.replies)):
            with open(DEMO_DATA / name, "rb") as f:
                await produce_lines(broker_url, topic, f)

    feeder = asyncio.create_task(feed())
    deadline = time.monotonic() + timeout_s
    async for topic, _key, value in follow(
        broker_url, [topics.verdicts, topics.dead_letter], idle_timeout_s=timeout_s
    ):
        record = loads(value)
        if topic == topics.verdicts:
            summary.add_verdict(record)
        else:
            summary.dead += 1
        if time.monotonic() - last_draw > (0.25 if tty else 5):
            draw()
        if summary.done >= expected or time.monotonic() > deadline:
            break
    await feeder
    draw(final=True)
    return summary


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def worker_env(settings: Settings, *, broker_url: str, redis_url: str, web_port: int) -> dict[str, str]:
    """The demo worker's environment: the local services, plus what the demo's flags asked for."""
    env = dict(os.environ)
    env.update(
        MODERATOR_BROKER=broker_url,
        MODERATOR_REDIS_URL=redis_url,
        MODERATOR_ID_REDIS_URL="",
        MODERATOR_WEB_PORT=str(web_port),
        MODERATOR_APP_ID=f"moderator-demo-{os.getpid()}",
        MODERATOR_CLASSIFIER_PATH=str(settings.classifier_path),
        MODERATOR_JUDGE_PATH=str(settings.judge_path),
        MODERATOR_POLICY_PATH=str(settings.policy_path),
        MODERATOR_DEVICE=settings.device,
        MODERATOR_BATCH_SIZE=str(settings.batch_size),
        MODERATOR_MAX_BATCH_TOKENS=str(settings.max_batch_tokens),
        MODERATOR_LOG_LEVEL=settings.log_level,
    )
    return env


def run_demo(settings: Settings, *, out: TextIO = sys.stdout, timeout_s: float = 600.0) -> int:
    expected = _count_lines(DEMO_DATA / "comments.jsonl") + _count_lines(DEMO_DATA / "replies.jsonl")
    workdir = Path(tempfile.mkdtemp(prefix="moderator-demo-"))
    out.write("starting a local Kafka-compatible broker (tansu) and Redis...\n")
    out.flush()
    with EmbeddedBroker() as broker, EmbeddedRedis() as redis:
        topics = settings.topics
        asyncio.run(
            ensure_topics(broker.url, [*topics.inputs(), *topics.outputs()], settings.topic_partitions)
        )
        web_port = free_port()
        env = worker_env(settings, broker_url=broker.url, redis_url=redis.url, web_port=web_port)
        log_path = workdir / "worker.log"
        out.write(f"starting the worker (log: {log_path})...\n")
        out.flush()
        with open(log_path, "wb") as log_file:
            worker = subprocess.Popen(
                [sys.executable, "-m", "moderator", "worker"],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_ready(web_port, worker, log_path, timeout_s=180)
            out.write(
                f"worker ready; feeding {expected} sample records (metrics: http://127.0.0.1:{web_port}/metrics)\n"
            )
            out.flush()
            summary = asyncio.run(_run(broker.url, settings, expected, out, timeout_s))
        except KeyboardInterrupt:
            out.write("\ninterrupted; stopping everything the demo started\n")
            return 130
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    ok = summary.done >= expected
    out.write(
        "done: every record has a verdict or a dead letter\n"
        if ok
        else "timed out before every record was seen\n"
    )
    return 0 if ok else 1
