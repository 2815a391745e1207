"""Benchmark 7: the dashboard's review queue with N flagged verdicts on the topics.

A local broker gets N input records (80 % comments, 20 % replies) and one flagged verdict per input on
``verdicts.flagged`` and ``verdicts`` (verdict-shaped records as the worker writes them, no models
needed). A real ``moderator dashboard`` process indexes them; then signed-in HTTP requests time the
pages a reviewer opens (server time to the last byte; the browser's text fill is timed as the
``/api/texts`` call it makes). Baseline, measured in the same run: the obvious index-free dashboard,
which reads every flagged verdict from the topic into memory and filters/sorts per request.

    python -m bench.dashboard_queue --verdicts 50000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from moderator.dashboard.accounts import Accounts
from moderator.dashboard.store import Store
from moderator.local.embedded import EmbeddedBroker, EmbeddedRedis, ensure_topics, free_port
from moderator.settings import bootstrap_servers
from topics import LABEL_KEYS

TOPICS = ["comments", "llm-replies", "verdicts", "verdicts.flagged", "dead-letter", "reviews"]
CATEGORIES = ["women_family", "region", "age", "profanity", "religion"]


def verdict(i: int, kind: str, partition: int, offset: int) -> dict[str, Any]:
    cats = [CATEGORIES[i % len(CATEGORIES)]] + ([CATEGORIES[(i * 7) % len(CATEGORIES)]] if i % 3 == 0 else [])
    scores = {k: (0.5 + (i % 50) / 100 if k in cats else 0.02) for k in LABEL_KEYS}
    return {
        "id": f"{kind[0]}-{i}",
        "kind": kind,
        "flagged": True,
        "action": "block" if i % 10 == 0 else "review",
        "categories": sorted(set(cats)),
        "scores": scores,
        "unsafe": 0.7 if kind == "reply" else None,
        "cached": i % 5 == 0,
        "model": {"classifier": "sha256-bench", "judge": "sha256-bench"},
        "policy": "default@bench",
        "latency_ms": 5.0,
        "ts": time.time() - 3600 + i * 3600 / 50000,
        "truncated": False,
        "source": {
            "topic": "comments" if kind == "comment" else "llm-replies",
            "partition": partition,
            "offset": offset,
        },
    }


async def fill(broker: str, n: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers(broker), acks="all", linger_ms=20)
    await producer.start()
    try:
        inputs = []
        for i in range(n):
            record: dict[str, Any]
            if i % 5 == 4:
                record = {
                    "id": f"r-{i}",
                    "prompt": f"질문 {i}",
                    "reply": f"봇의 답변 {i} 입니다",
                    "bot": f"bot-{i % 3}",
                }
                inputs.append(("llm-replies", record))
            else:
                record = {
                    "id": f"c-{i}",
                    "text": f"댓글 본문 {i} 입니다",
                    "channel": f"ch-{i % 7}",
                    "meta": {"lang": "ko"},
                }
                inputs.append(("comments", record))
        positions = []
        for start in range(0, n, 5000):
            futures = [
                await producer.send(topic, orjson.dumps(rec), key=rec["id"].encode())
                for topic, rec in inputs[start : start + 5000]
            ]
            positions.extend(await asyncio.gather(*futures))
        for start in range(0, n, 5000):
            futures = []
            for j in range(start, min(n, start + 5000)):
                topic, rec = inputs[j]
                kind = "reply" if topic == "llm-replies" else "comment"
                v = orjson.dumps(verdict(j, kind, positions[j].partition, positions[j].offset))
                futures.append(await producer.send("verdicts.flagged", v, key=rec["id"].encode()))
                futures.append(await producer.send("verdicts", v, key=rec["id"].encode()))
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


class Client:
    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}

    def get(self, path: str, form: dict[str, str] | None = None) -> tuple[int, str, float]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        started = time.perf_counter()
        conn.request("POST" if form is not None else "GET", path, body=body, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode()
        elapsed = time.perf_counter() - started
        for k, v in resp.getheaders():
            if k.lower() == "set-cookie":
                name, _, rest = v.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        conn.close()
        return resp.status, text, elapsed


def timed(client: Client, path: str, rounds: int) -> dict[str, float]:
    times = []
    for _ in range(rounds):
        status, _, elapsed = client.get(path)
        assert status == 200, (path, status)
        times.append(elapsed * 1000)
    times.sort()
    return {"median": statistics.median(times), "p95": times[int(0.95 * (len(times) - 1))], "max": times[-1]}


async def naive_load(broker: str) -> list[dict[str, Any]]:
    """The index-free dashboard: every flagged verdict from the topic, in memory."""
    consumer = AIOKafkaConsumer(
        "verdicts.flagged",
        bootstrap_servers=bootstrap_servers(broker),
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    out: list[dict[str, Any]] = []
    try:
        ends = None
        while True:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10000)
            for records in batch.values():
                out.extend(orjson.loads(r.value) for r in records)
            if ends is None:
                ends = await consumer.end_offsets(list(consumer.assignment()))
            positions = {tp: await consumer.position(tp) for tp in ends}
            if all(positions[tp] >= end for tp, end in ends.items()):
                return out
    finally:
        await consumer.stop()


def naive_page(verdicts: list[dict[str, Any]], category: str | None) -> list[dict[str, Any]]:
    rows = [v for v in verdicts if category is None or category in v["categories"]]
    rows.sort(key=lambda v: (-max(v["scores"][k] for k in v["categories"]), v["ts"]))
    return rows[:50]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--verdicts", type=int, default=50000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    n = args.verdicts

    with EmbeddedBroker() as broker, EmbeddedRedis() as redis_server, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(ensure_topics(broker.url, TOPICS, 4))
        started = time.perf_counter()
        asyncio.run(fill(broker.url, n))
        print(
            f"filled: {n} inputs + {n} flagged verdicts (+ {n} on verdicts) in {time.perf_counter() - started:.1f}s"
        )

        db = Path(tmp) / "dashboard.sqlite3"
        store = Store(db)
        Accounts(store).add("bench", "reviewer", "bench-password")
        store.close()
        port = free_port()
        env = {
            **os.environ,
            "MODERATOR_BROKER": broker.url,
            "MODERATOR_REDIS_URL": redis_server.url,
            "MODERATOR_DASHBOARD_DB": str(db),
            "MODERATOR_DASHBOARD_PORT": str(port),
            "MODERATOR_DASHBOARD_METRICS_URLS": "",
        }
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "moderator", "dashboard"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            client = Client(port)
            while True:
                try:
                    status, page, _ = client.get("/login")
                    break
                except OSError:
                    time.sleep(0.2)
            token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
            client.get("/login", {"csrf": token, "name": "bench", "password": "bench-password", "next": "/"})
            while True:
                _, page, _ = client.get("/queue?status=all")
                total = int(re.search(r'id="total">(\d+)', page).group(1))  # type: ignore[union-attr]
                if total >= n:
                    break
                time.sleep(0.5)
            indexed_s = time.perf_counter() - started
            while Store(db).pending_enrichment(1):
                time.sleep(0.5)
            enriched_s = time.perf_counter() - started
            rss_mb = psutil.Process(proc.pid).memory_info().rss / 2**20
            db_mb = sum(p.stat().st_size for p in Path(tmp).glob("dashboard.sqlite3*")) / 2**20
            print(
                f"dashboard: {n} verdicts indexed {indexed_s:.1f}s after start, channel/language from the inputs"
                f" after {enriched_s:.1f}s; RSS {rss_mb:.0f} MiB; index on disk {db_mb:.0f} MiB"
            )

            middle = n // 2 - (1 if (n // 2) % 5 == 4 else 0)  # a comment in the middle of the topic
            pages = {
                "queue, open, oldest first": "/queue",
                "queue, most severe first": "/queue?sort=severity",
                "queue, category + channel filter": "/queue?category=region&channel=ch-3",
                "queue, page 500 (deep)": "/queue?page=500",
                "queue, search by id": f"/queue?q=c-{n // 10}",
                "texts of one page (/api/texts, 50 ids)": "/api/texts?"
                + "&".join(f"id=c-{i}" for i in range(0, 250, 5)),
                "item page (text fetched from the topic)": f"/item/c-{middle}",
                "overview (1 h)": "/",
            }
            print(
                f"\n{'page':45s} {'median ms':>10s} {'p95 ms':>8s} {'max ms':>8s}   ({args.rounds} requests each)"
            )
            results = {}
            for name, path in pages.items():
                results[name] = timed(client, path, args.rounds)
                r = results[name]
                print(f"{name:45s} {r['median']:10.1f} {r['p95']:8.1f} {r['max']:8.1f}")
            rss_after = psutil.Process(proc.pid).memory_info().rss / 2**20
        finally:
            proc.terminate()
            proc.wait(timeout=30)

        # baseline: the index-free dashboard, in this process
        gc.collect()
        tracemalloc.start()
        started = time.perf_counter()
        verdicts = asyncio.run(naive_load(broker.url))
        load_s = time.perf_counter() - started
        held_mb = tracemalloc.get_traced_memory()[0] / 2**20
        tracemalloc.stop()
        page_ms = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            naive_page(verdicts, None)
            naive_page(verdicts, "region")
            page_ms.append((time.perf_counter() - t0) * 1000 / 2)
        naive_ms = statistics.median(page_ms)
        queue_ms = results["queue, most severe first"]["median"]
        print(
            f"\nbaseline (all {len(verdicts)} flagged verdicts in memory): load {load_s:.1f}s at every start,"
            f" {held_mb:.0f} MiB held, filter+sort per page {naive_ms:.1f} ms (before any HTML)"
        )
        print(
            f"dashboard: RSS {rss_after:.0f} MiB after the requests; the whole severity page (query + HTML)"
            f" {queue_ms:.1f} ms median vs the baseline's bare filter+sort {naive_ms:.1f} ms"
            f" ({naive_ms / queue_ms:.2f}x); a restart resumes from stored offsets instead of reloading"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
