"""The dashboard's sqlite index: flagged items, review history, per-bucket counts, topic offsets.

Why sqlite on disk: the queue must page, filter and sort tens of thousands of flagged verdicts without
holding them in memory, and survive restarts without re-reading the topics from the start (offsets are
committed in the same transaction as the rows they produced). No raw text is stored: an item keeps its
verdict (ids, scores, versions) and where its text lives on the input topic.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from topics.reviews import Review

#: Counts are kept per bucket of this many seconds (verdict time); charts sum buckets.
BUCKET_S = 10

_SCHEMA = """
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    ts REAL NOT NULL,
    severity REAL NOT NULL,
    action TEXT NOT NULL,
    categories TEXT NOT NULL,
    verdict BLOB NOT NULL,
    v_topic TEXT NOT NULL, v_partition INTEGER NOT NULL, v_offset INTEGER NOT NULL,
    src_topic TEXT, src_partition INTEGER, src_offset INTEGER,
    revision TEXT,
    channel TEXT, language TEXT,
    enriched INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'open',
    decided_by TEXT, decided_at REAL, labels TEXT
);
-- each queue order is an index walk (no sort of the whole queue); facets read indexes, not rows
CREATE INDEX IF NOT EXISTS items_status_ts_id ON items (status, ts, id);
CREATE INDEX IF NOT EXISTS items_status_severity_ts ON items (status, severity DESC, ts);
CREATE INDEX IF NOT EXISTS items_ts_id ON items (ts, id);
CREATE INDEX IF NOT EXISTS items_severity_ts ON items (severity DESC, ts);
CREATE INDEX IF NOT EXISTS items_channel ON items (channel);
CREATE INDEX IF NOT EXISTS items_language ON items (language);
CREATE INDEX IF NOT EXISTS items_pending ON items (enriched) WHERE enriched = 0;
CREATE TABLE IF NOT EXISTS reviews (
    review_id TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    decision TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    ts REAL NOT NULL,
    revision TEXT,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS reviews_id ON reviews (id, ts);
CREATE INDEX IF NOT EXISTS reviews_hash ON reviews (content_hash, ts);
CREATE TABLE IF NOT EXISTS overrides_pending (content_hash TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS stat_actions (
    bucket INTEGER NOT NULL, kind TEXT NOT NULL, action TEXT NOT NULL,
    n INTEGER NOT NULL, cached INTEGER NOT NULL, human INTEGER NOT NULL,
    PRIMARY KEY (bucket, kind, action)
);
CREATE TABLE IF NOT EXISTS stat_categories (
    bucket INTEGER NOT NULL, category TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (bucket, category)
);
CREATE TABLE IF NOT EXISTS stat_dead (
    bucket INTEGER NOT NULL, reason TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (bucket, reason)
);
CREATE TABLE IF NOT EXISTS versions (
    model TEXT NOT NULL, policy TEXT NOT NULL, first_ts REAL NOT NULL, last_ts REAL NOT NULL,
    n INTEGER NOT NULL, PRIMARY KEY (model, policy)
);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, password TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY, user TEXT NOT NULL, csrf TEXT NOT NULL,
    created REAL NOT NULL, expires REAL NOT NULL
);
"""

_ACTION_RANK = {"allow": 0.0, "review": 1.0, "block": 2.0}
SORTS = {"oldest": "ts ASC, id ASC", "newest": "ts DESC, id DESC", "severity": "severity DESC, ts ASC"}
STATUSES = ("open", "decided", "all")


def severity(verdict: dict[str, Any]) -> float:
    """Sort key for "most severe first": the action band, then the highest score that flagged it."""
    scores = verdict.get("scores") or {}
    top = max((float(v) for k, v in scores.items() if k != "clean"), default=0.0)
    unsafe = verdict.get("unsafe")
    if unsafe is not None:
        top = max(top, float(unsafe))
    return _ACTION_RANK.get(str(verdict.get("action")), 0.0) + top


@dataclass(frozen=True, slots=True)
class QueueFilter:
    status: str = "open"
    sort: str = "oldest"
    kind: str = ""
    category: str = ""
    action: str = ""
    channel: str = ""
    language: str = ""
    search: str = ""

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        if self.status == "open":
            clauses.append("status = 'open'")
        elif self.status == "decided":
            clauses.append("status != 'open'")
        for column, value in (
            ("kind", self.kind),
            ("action", self.action),
            ("channel", self.channel),
            ("language", self.language),
        ):
            if value:
                clauses.append(f"{column} = ?")
                args.append(value)
        if self.category:
            clauses.append("instr(categories, ?) > 0")
            args.append(f",{self.category},")
        if self.search:
            # ids by prefix: a range on the primary key, where a substring LIKE would scan every row
            clauses.append("id >= ? AND id < ?")
            args.extend([self.search, self.search + "\U0010ffff"])
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


@dataclass(frozen=True, slots=True)
class Item:
    """One flagged verdict in the queue (no text: that is fetched from ``src_*`` on demand)."""

    id: str
    kind: str
    ts: float
    severity: float
    action: str
    categories: list[str]
    verdict: dict[str, Any]
    channel: str | None
    language: str | None
    status: str
    decided_by: str | None
    decided_at: float | None
    labels: list[str]
    v_topic: str
    v_partition: int
    v_offset: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Item:
        return cls(
            id=row["id"],
            kind=row["kind"],
            ts=row["ts"],
            severity=row["severity"],
            action=row["action"],
            categories=[c for c in row["categories"].split(",") if c],
            verdict=orjson.loads(row["verdict"]),
            channel=row["channel"],
            language=row["language"],
            status=row["status"],
            decided_by=row["decided_by"],
            decided_at=row["decided_at"],
            labels=[c for c in (row["labels"] or "").split(",") if c],
            v_topic=row["v_topic"],
            v_partition=row["v_partition"],
            v_offset=row["v_offset"],
        )


class Store:
    """One sqlite connection used from the event loop's thread only (queries take milliseconds)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- offsets -------------------------------------------------------------------------------------

    def offsets(self, topics: Iterable[str]) -> dict[tuple[str, int], int]:
        names = list(topics)
        marks = ",".join("?" * len(names))
        rows = self.db.execute(
            f"SELECT topic, partition, next_offset FROM offsets WHERE topic IN ({marks})", names
        )
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    @staticmethod
    def save_offsets(db: sqlite3.Connection, offsets: dict[tuple[str, int], int]) -> None:
        db.executemany(
            "INSERT INTO offsets (topic, partition, next_offset) VALUES (?, ?, ?) "
            "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
            [(t, p, o) for (t, p), o in offsets.items()],
        )

    # -- flagged items -------------------------------------------------------------------------------

    @staticmethod
    def add_flagged(db: sqlite3.Connection, rows: Sequence[tuple[dict[str, Any], str, int, int]]) -> None:
        """Upsert flagged verdicts (a redelivery replaces the verdict, never a decision)."""
        values = []
        for verdict, topic, partition, offset in rows:
            src = verdict.get("source") or {}
            human = verdict.get("human")
            values.append(
                (
                    verdict["id"],
                    verdict["kind"],
                    float(verdict["ts"]),
                    severity(verdict),
                    verdict["action"],
                    "," + ",".join(verdict["categories"]) + ",",
                    orjson.dumps(verdict),
                    topic,
                    partition,
                    offset,
                    src.get("topic"),
                    src.get("partition"),
                    src.get("offset"),
                    verdict.get("revision") if isinstance(verdict.get("revision"), str) else None,
                    # a language tag on the verdict wins; otherwise enrichment reads meta.lang from the input
                    verdict.get("language") if isinstance(verdict.get("language"), str) else None,
                    # a verdict the worker took from a human decision needs no second review
                    human["decision"] if human else "open",
                    human["reviewer"] if human else None,
                    human["ts"] if human else None,
                )
            )
        db.executemany(
            "INSERT INTO items (id, kind, ts, severity, action, categories, verdict, v_topic, v_partition,"
            " v_offset, src_topic, src_partition, src_offset, revision, language, status, decided_by, decided_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            # one row per id: its latest content. A redelivery refreshes the verdict and keeps the
            # decision; an edit (another revision, later on the partition) replaces the verdict and
            # reopens the item; an older record coming round again never replaces a newer edit.
            " ON CONFLICT (id) DO UPDATE SET verdict = excluded.verdict, severity = excluded.severity,"
            " action = excluded.action, categories = excluded.categories, ts = excluded.ts,"
            " v_topic = excluded.v_topic, v_partition = excluded.v_partition, v_offset = excluded.v_offset,"
            " src_topic = excluded.src_topic, src_partition = excluded.src_partition,"
            " src_offset = excluded.src_offset, revision = excluded.revision,"
            " enriched = CASE WHEN excluded.src_offset IS items.src_offset THEN items.enriched ELSE 0 END,"
            " status = CASE WHEN excluded.revision IS items.revision THEN items.status ELSE excluded.status END,"
            " decided_by = CASE WHEN excluded.revision IS items.revision THEN items.decided_by"
            " ELSE excluded.decided_by END,"
            " decided_at = CASE WHEN excluded.revision IS items.revision THEN items.decided_at"
            " ELSE excluded.decided_at END,"
            " labels = CASE WHEN excluded.revision IS items.revision THEN items.labels ELSE NULL END"
            " WHERE items.src_offset IS NULL OR excluded.src_offset IS NULL"
            " OR excluded.src_topic IS NOT items.src_topic OR excluded.src_partition IS NOT items.src_partition"
            " OR excluded.src_offset >= items.src_offset",
            values,
        )
        # the topics are read side by side: a review may be indexed before the verdict it answers
        ids = [v[0] for v in values]
        reviewed: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            reviewed.update(
                r[0] for r in db.execute(f"SELECT DISTINCT id FROM reviews WHERE id IN ({marks})", chunk)
            )
        Store._refresh_status(db, reviewed)

    def pending_enrichment(self, limit: int) -> list[tuple[str, str, int, int]]:
        rows = self.db.execute(
            "SELECT id, src_topic, src_partition, src_offset FROM items WHERE enriched = 0 LIMIT ?", (limit,)
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def set_enrichment(self, rows: Sequence[tuple[str, str | None, str | None]]) -> None:
        with self.transaction() as db:
            db.executemany(
                "UPDATE items SET channel = ?, language = coalesce(language, ?), enriched = 1 WHERE id = ?",
                [(channel, language, item_id) for item_id, channel, language in rows],
            )

    def item(self, item_id: str) -> Item | None:
        row = self.db.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
        return Item.from_row(row) if row else None

    def queue(self, flt: QueueFilter, *, limit: int, offset: int = 0) -> tuple[list[Item], int]:
        where, args = flt.where()
        order = SORTS.get(flt.sort, SORTS["oldest"])
        rows = self.db.execute(
            f"SELECT * FROM items{where} ORDER BY {order} LIMIT ? OFFSET ?", [*args, limit, offset]
        ).fetchall()
        total = self.db.execute(f"SELECT count(*) FROM items{where}", args).fetchone()[0]
        return [Item.from_row(r) for r in rows], int(total)

    def next_open(self, flt: QueueFilter, after_id: str) -> str | None:
        items, _ = self.queue(flt, limit=2)
        ids = [i.id for i in items if i.id != after_id]
        return ids[0] if ids else None

    def facets(self) -> dict[str, list[str]]:
        """Distinct channels/bots and languages, for the filter drop-downs."""
        out: dict[str, list[str]] = {}
        for column in ("channel", "language"):
            rows = self.db.execute(
                f"SELECT DISTINCT {column} FROM items WHERE {column} IS NOT NULL ORDER BY {column} LIMIT 200"
            )
            out[column] = [r[0] for r in rows]
        return out

    def counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT status, count(*) FROM items GROUP BY status")
        return {r[0]: int(r[1]) for r in rows}

    # -- reviews -------------------------------------------------------------------------------------

    @staticmethod
    def add_reviews(db: sqlite3.Connection, reviews: Sequence[Review]) -> set[str]:
        """Record reviews (idempotent per review_id), refresh item status; returns touched content hashes."""
        touched_ids: set[str] = set()
        hashes: set[str] = set()
        for review in reviews:
            cur = db.execute(
                "INSERT INTO reviews (review_id, id, content_hash, decision, reviewer, ts, revision, record)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (review_id) DO NOTHING",
                (
                    review.review_id,
                    review.id,
                    review.content_hash,
                    review.decision.value,
                    review.reviewer,
                    review.ts,
                    review.revision,
                    orjson.dumps(review.to_dict()),
                ),
            )
            if cur.rowcount:
                touched_ids.add(review.id)
                hashes.add(review.content_hash)
        Store._refresh_status(db, touched_ids)
        db.executemany(
            "INSERT INTO overrides_pending (content_hash) VALUES (?) ON CONFLICT DO NOTHING",
            [(h,) for h in hashes],
        )
        return hashes

    @staticmethod
    def _refresh_status(db: sqlite3.Connection, item_ids: Iterable[str]) -> None:
        """Each item's status is the latest review (ts, then review_id) of its current revision."""
        for item_id in item_ids:
            latest = db.execute(
                "SELECT r.record FROM reviews r JOIN items i ON i.id = r.id WHERE r.id = ?"
                " AND (r.revision IS NULL OR i.revision IS NULL OR r.revision = i.revision)"
                " ORDER BY r.ts DESC, r.review_id DESC LIMIT 1",
                (item_id,),
            ).fetchone()
            if latest is None:
                continue
            rec = orjson.loads(latest[0])
            db.execute(
                "UPDATE items SET status = ?, decided_by = ?, decided_at = ?, labels = ? WHERE id = ?",
                (rec["decision"], rec["reviewer"], rec["ts"], ",".join(rec["labels"]), item_id),
            )

    def history(self, item_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT record FROM reviews WHERE id = ? ORDER BY ts ASC, review_id ASC", (item_id,)
        )
        return [orjson.loads(r[0]) for r in rows]

    def latest_review_for_hash(self, digest: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT record FROM reviews WHERE content_hash = ? ORDER BY ts DESC, review_id DESC LIMIT 1",
            (digest,),
        ).fetchone()
        return orjson.loads(row[0]) if row else None

    def pending_overrides(self, limit: int = 1000) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT content_hash FROM overrides_pending LIMIT ?", (limit,))]

    def done_overrides(self, hashes: Sequence[str]) -> None:
        with self.transaction() as db:
            db.executemany("DELETE FROM overrides_pending WHERE content_hash = ?", [(h,) for h in hashes])

    def mark_all_overrides_pending(self) -> None:
        """At start: re-send every human decision, so a flushed or replaced Redis gets them back."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO overrides_pending (content_hash) SELECT DISTINCT content_hash FROM reviews"
                " WHERE true ON CONFLICT DO NOTHING"
            )

    # -- counts for the overview ---------------------------------------------------------------------

    @staticmethod
    def add_counts(
        db: sqlite3.Connection,
        actions: dict[tuple[int, str, str], tuple[int, int, int]],
        categories: dict[tuple[int, str], int],
        dead: dict[tuple[int, str], int],
        versions: dict[tuple[str, str], tuple[float, float, int]],
    ) -> None:
        db.executemany(
            "INSERT INTO stat_actions (bucket, kind, action, n, cached, human) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (bucket, kind, action) DO UPDATE SET n = n + excluded.n,"
            " cached = cached + excluded.cached, human = human + excluded.human",
            [(b, k, a, n, c, h) for (b, k, a), (n, c, h) in actions.items()],
        )
        db.executemany(
            "INSERT INTO stat_categories (bucket, category, n) VALUES (?, ?, ?)"
            " ON CONFLICT (bucket, category) DO UPDATE SET n = n + excluded.n",
            [(b, c, n) for (b, c), n in categories.items()],
        )
        db.executemany(
            "INSERT INTO stat_dead (bucket, reason, n) VALUES (?, ?, ?)"
            " ON CONFLICT (bucket, reason) DO UPDATE SET n = n + excluded.n",
            [(b, r, n) for (b, r), n in dead.items()],
        )
        db.executemany(
            "INSERT INTO versions (model, policy, first_ts, last_ts, n) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (model, policy) DO UPDATE SET first_ts = min(first_ts, excluded.first_ts),"
            " last_ts = max(last_ts, excluded.last_ts), n = n + excluded.n",
            [(m, p, lo, hi, n) for (m, p), (lo, hi, n) in versions.items()],
        )

    def series(self, table: str, column: str, since: float, step_s: int) -> dict[str, dict[int, int]]:
        """``{label: {slot: count}}`` for a stat table, slots of ``step_s`` seconds from ``since``."""
        assert table in ("stat_actions", "stat_categories", "stat_dead")
        rows = self.db.execute(
            f"SELECT (bucket - ?) / ? AS slot, {column} AS label, sum(n) FROM {table}"
            f" WHERE bucket >= ? GROUP BY slot, label",
            (int(since), step_s, int(since)),
        )
        out: dict[str, dict[int, int]] = {}
        for slot, label, n in rows:
            out.setdefault(str(label), {})[int(slot)] = int(n)
        return out

    def totals_since(self, since: float) -> dict[str, int]:
        row = self.db.execute(
            "SELECT coalesce(sum(n), 0), coalesce(sum(cached), 0), coalesce(sum(human), 0)"
            " FROM stat_actions WHERE bucket >= ?",
            (int(since),),
        ).fetchone()
        return {"verdicts": int(row[0]), "cached": int(row[1]), "human": int(row[2])}

    def versions(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM versions ORDER BY last_ts DESC LIMIT 20")
        return [dict(r) for r in rows]

    def latest_bucket(self) -> int | None:
        row = self.db.execute("SELECT max(bucket) FROM stat_actions").fetchone()
        return int(row[0]) if row and row[0] is not None else None


def bucket_of(ts: float) -> int:
    return int(ts // BUCKET_S) * BUCKET_S


def now() -> float:
    return time.time()
