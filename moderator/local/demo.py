"""``moderator demo``: a local broker and Redis, the real worker, the bundled sample, a live summary.

Everything it starts it stops, on completion or Ctrl-C. The worker runs as its own process, exactly as
``moderator worker`` would in production; the demo only produces the sample and reads the verdicts.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from moderator.local.embedded import EmbeddedBroker, EmbeddedRedis, ensure_topics, free_port
from moderator.local.harness import ServiceProcess, worker_argv, worker_env
from moderator.settings import Settings
from moderator.stream.clients import follow, produce_lines
from topics import loads

DEMO_DATA = Path(__file__).resolve().parents[1] / "demo_data"


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


def worker_overrides(settings: Settings) -> dict[str, str]:
    """What the demo's flags ask of its worker (models, policy, device, batching, log level); the id
    registry stays in the demo's own Redis even where MODERATOR_ID_REDIS_URL names a production one."""
    return {
        "MODERATOR_POLICY_PATH": str(settings.policy_path),
        "MODERATOR_DEVICE": settings.device,
        "MODERATOR_BATCH_SIZE": str(settings.batch_size),
        "MODERATOR_MAX_BATCH_TOKENS": str(settings.max_batch_tokens),
        "MODERATOR_LOG_LEVEL": settings.log_level,
        "MODERATOR_ID_REDIS_URL": "",
    }


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
        log_path = workdir / "worker.log"
        web_port = free_port()  # one port: the worker serves /ready on it and the harness polls it
        worker = ServiceProcess(
            worker_argv(),
            worker_env(
                broker.url,
                redis.url,
                topics,
                app_id=f"moderator-demo-{os.getpid()}",
                web_port=web_port,
                classifier=settings.classifier_path,
                judge=settings.judge_path,
                extra=worker_overrides(settings),
            ),
            log_path,
            web_port=web_port,
        )
        out.write(f"starting the worker (log: {log_path})...\n")
        out.flush()
        try:
            worker.start(wait_ready=True, timeout_s=180)
            out.write(
                f"worker ready; feeding {expected} sample records "
                f"(metrics: http://127.0.0.1:{worker.web_port}/metrics)\n"
            )
            out.flush()
            summary = asyncio.run(_run(broker.url, settings, expected, out, timeout_s))
        except KeyboardInterrupt:
            out.write("\ninterrupted; stopping everything the demo started\n")
            return 130
        finally:
            try:
                worker.stop(timeout_s=30)
            except RuntimeError as exc:  # killed after the timeout; say so, the demo's result stands
                out.write(f"{exc}\n")
    ok = summary.done >= expected
    out.write(
        "done: every record has a verdict or a dead letter\n"
        if ok
        else "timed out before every record was seen\n"
    )
    return 0 if ok else 1
