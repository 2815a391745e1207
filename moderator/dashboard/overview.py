"""What the overview page shows: rates and series from the index, plus the workers' Prometheus metrics.

The index gives history (verdicts, actions, categories, dead letters, cache hits per 10 s bucket, as
written on the topics); the broker gives the workers' consumer-group lag per partition; the workers' ``/metrics`` give what
only they know: the execution provider, readiness, their own cache counters. An unreachable worker is shown as such, never hidden.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from markupsafe import Markup
from prometheus_client.parser import text_string_to_metric_families

from moderator.dashboard.charts import ACTION_COLOURS, bar_chart, line_chart
from moderator.dashboard.store import BUCKET_S, Store
from moderator.settings import bootstrap_servers
from topics.labels import HATE_LABEL_KEYS, LABEL_KEYS, UNSMILE_COLUMNS

WINDOWS = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 24 * 3600}
KOREAN = dict(zip(LABEL_KEYS, UNSMILE_COLUMNS, strict=True))


def label_name(key: str) -> str:
    """``지역 (region)`` for a label key; the judge's ``unsafe`` as itself."""
    return f"{KOREAN[key]} ({key})" if key in KOREAN else key


@dataclass
class WorkerMetrics:
    url: str
    ok: bool
    error: str = ""
    cache_hits: float = 0.0
    cache_misses: float = 0.0
    ready: float | None = None
    providers: list[str] = field(default_factory=list)


def parse_metrics(url: str, text: str) -> WorkerMetrics:
    out = WorkerMetrics(url=url, ok=True)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "moderator_cache_hits_total":
                out.cache_hits += sample.value
            elif sample.name == "moderator_cache_misses_total":
                out.cache_misses += sample.value
            elif sample.name == "moderator_ready":
                out.ready = sample.value
            elif sample.name == "moderator_execution_provider" and sample.value:
                out.providers.append(f"{labels.get('model')}: {labels.get('provider')}")
    return out


@dataclass
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - (self.committed or 0))


class GroupLag:
    """Lag of the workers' consumer group, read from the broker: committed offsets vs end offsets.

    Works for any number of replicas and needs no worker endpoint. The consumer carries the group id
    only to fetch its committed offsets; it never subscribes, so it never joins (or disturbs) the group.
    """

    def __init__(
        self, broker: str, group: str, topics: list[str], client_kwargs: dict[str, Any] | None = None
    ) -> None:
        self.group = group
        self._topics = topics
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers(broker),
            group_id=group,
            enable_auto_commit=False,
            **(client_kwargs or {}),
        )

    async def start(self) -> None:
        await self._consumer.start()

    async def close(self) -> None:
        await self._consumer.stop()

    async def read(self) -> list[PartitionLag]:
        if any(self._consumer.partitions_for_topic(t) is None for t in self._topics):
            await self._consumer.topics()  # metadata for topics this consumer has not seen yet
        tps = [
            TopicPartition(topic, p)
            for topic in self._topics
            for p in sorted(self._consumer.partitions_for_topic(topic) or ())
        ]
        if not tps:
            return []
        ends = await self._consumer.end_offsets(tps)
        out = []
        for tp in tps:
            committed = await self._consumer.committed(tp)
            # a committed offset past the reported end means the end is under-reported (the embedded
            # tansu broker answers ListOffsets with the last batch's base offset): the group is caught up
            end = max(ends[tp], committed or 0)
            out.append(PartitionLag(tp.topic, tp.partition, committed, end))
        return out


async def scrape(session: aiohttp.ClientSession, urls: list[str]) -> list[WorkerMetrics]:
    async def one(url: str) -> WorkerMetrics:
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=1.5)) as resp:
                if resp.status != 200:
                    return WorkerMetrics(url=url, ok=False, error=f"HTTP {resp.status}")
                return parse_metrics(url, await resp.text())
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return WorkerMetrics(url=url, ok=False, error=type(exc).__name__)

    return list(await asyncio.gather(*(one(u) for u in urls)))


async def read_lag(group: GroupLag) -> tuple[list[PartitionLag], str]:
    """(partitions, error): a broker hiccup shows as a line on the page, not as a failed page."""
    try:
        return await asyncio.wait_for(group.read(), 5.0), ""
    except (KafkaError, TimeoutError) as exc:
        return [], f"{type(exc).__name__}: {exc}"[:200]


def build_overview(
    store: Store, window: str, workers: list[WorkerMetrics], lag: list[PartitionLag], lag_error: str
) -> dict[str, Any]:
    span = WINDOWS.get(window, WINDOWS["1h"])
    step = max(BUCKET_S, (span // 60) // BUCKET_S * BUCKET_S)
    now = time.time()
    since = (int(now - span) // step) * step
    slots = int((now - since) // step) + 1
    fmt = "%H:%M" if span <= 6 * 3600 else "%d %H:%M"
    x_labels = [time.strftime(fmt, time.localtime(since + i * step)) for i in range(slots)]

    def dense(series: dict[str, dict[int, int]], per_s: bool = False) -> dict[str, list[float]]:
        return {
            name: [(values.get(i, 0) / step if per_s else float(values.get(i, 0))) for i in range(slots)]
            for name, values in sorted(series.items())
        }

    actions = dense(store.series("stat_actions", "action", since, step), per_s=True)
    categories = dense(store.series("stat_categories", "category", since, step))
    categories = {label_name(k): v for k, v in categories.items() if k in HATE_LABEL_KEYS or k == "unsafe"}
    dead = store.series("stat_dead", "reason", since, step)
    dead_total = sorted(((r, float(sum(v.values()))) for r, v in dead.items()), key=lambda p: -p[1])
    minutes = span / 60
    last_minute = store.totals_since(now - 60)
    window_totals = store.totals_since(since)
    hits = sum(w.cache_hits for w in workers)
    looks = hits + sum(w.cache_misses for w in workers)
    return {
        "window": window if window in WINDOWS else "1h",
        "windows": list(WINDOWS),
        "verdicts_per_s": last_minute["verdicts"] / 60.0,
        "window_totals": window_totals,
        "cache_hit_rate": (window_totals["cached"] / window_totals["verdicts"])
        if window_totals["verdicts"]
        else None,
        "worker_cache_hit_rate": (hits / looks) if looks else None,
        "dead_per_min": [(r, n / minutes) for r, n in dead_total],
        "charts": {
            "actions": line_chart(
                {a: actions.get(a, [0.0] * slots) for a in ("allow", "review", "block")},
                x_labels,
                title="Verdicts per second by action",
                colours=ACTION_COLOURS,
            ),
            "categories": line_chart(categories, x_labels, title="Flagged categories per interval"),
            "dead": bar_chart(
                [(r, round(n / minutes, 3)) for r, n in dead_total], title="Dead letters per minute by reason"
            ),
        },
        "lag": lag,
        "lag_error": lag_error,
        "total_lag": sum(p.lag for p in lag),
        "workers": workers,
        "versions": [
            {**v, "model": orjson.loads(v["model"]), "live": now - v["last_ts"] < 300}
            for v in store.versions()
        ],
        "queue": store.counts(),
        "empty": not window_totals["verdicts"] and not dead_total,
    }


def percent(value: float | None) -> Markup:
    return Markup("–") if value is None else Markup(f"{100 * value:.1f}%")
