"""``moderator export-reviews``: human decisions as labelled rows in the shapes the trainer reads.

Read from the ``reviews`` topic (the source of truth, not the dashboard's index) up to its end at the
start of the run; per text (content hash) the latest decision stands. Texts come from the input
topics at each review's source position, normalised as the models see them (so a TSV row never holds a
tab or newline). Comments → UnSmile-shaped TSV (``문장`` + the label columns,
``moderator.evaluation.read_unsmile_tsv``); replies → JSONL ``{"prompt", "reply", "unsafe", "labels"}``
(``read_pair_jsonl``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from moderator.dashboard.source import SourceReader
from moderator.exits import UsageError
from moderator.settings import bootstrap_servers
from topics import normalize_text
from topics.labels import LABEL_KEYS, UNSMILE_COLUMNS
from topics.reviews import Decision, Review, decode_review
from topics.validation import InvalidRecord

log = logging.getLogger(__name__)

COMMENTS_FILE = "comments.tsv"
REPLIES_FILE = "replies.jsonl"


@dataclass
class ExportSummary:
    reviews: int = 0
    texts: int = 0
    comments: int = 0
    replies: int = 0
    missing_text: int = 0
    unlabelled: int = 0
    invalid: int = 0

    def line(self) -> str:
        return (
            f"{self.reviews} reviews of {self.texts} texts → {self.comments} comment rows, {self.replies} reply rows"
            f" ({self.missing_text} texts no longer on their topic, {self.unlabelled} removals without a"
            f" category, {self.invalid} unreadable review records skipped)"
        )


async def read_reviews(
    broker: str, topic: str, client_kwargs: dict[str, Any] | None = None
) -> tuple[list[Review], int]:
    """Every review on ``topic`` up to its end offsets now; returns (reviews, unreadable count)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(broker),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **(client_kwargs or {}),
    )
    try:
        await consumer.start()
    except BaseException:
        await consumer.stop()
        raise
    reviews: list[Review] = []
    invalid = 0
    try:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer.topics()  # a fresh metadata request
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise UsageError(
                f"no topic {topic!r} on {broker}",
                "check --broker and MODERATOR_TOPIC_REVIEWS (nothing reviewed yet?)",
            )
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0}
        for tp in set(tps) - remaining:
            consumer.pause(tp)
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=5000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        continue
                    try:
                        reviews.append(decode_review(record.value or b""))
                    except InvalidRecord as exc:
                        invalid += 1
                        log.warning("skipped review %s/%d/%d: %s", tp.topic, tp.partition, record.offset, exc)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return reviews, invalid


def latest_per_text(reviews: list[Review]) -> list[Review]:
    latest: dict[str, Review] = {}
    for review in reviews:
        seen = latest.get(review.content_hash)
        if seen is None or (review.ts, review.review_id) > (seen.ts, seen.review_id):
            latest[review.content_hash] = review
    return sorted(latest.values(), key=lambda r: (r.ts, r.review_id))


async def export_reviews(
    broker: str, reviews_topic: str, out_dir: Path, client_kwargs: dict[str, Any] | None = None
) -> ExportSummary:
    reviews, invalid = await read_reviews(broker, reviews_topic, client_kwargs)
    summary = ExportSummary(reviews=len(reviews), invalid=invalid)
    chosen = latest_per_text(reviews)
    summary.texts = len(chosen)
    reader = SourceReader(broker, client_kwargs=client_kwargs)
    await reader.start()
    try:
        raw = await reader.fetch(r.source for r in chosen if r.source is not None)
    finally:
        await reader.close()
    out_dir.mkdir(parents=True, exist_ok=True)
    with (
        (out_dir / COMMENTS_FILE).open("w", encoding="utf-8", newline="") as tsv,
        (out_dir / REPLIES_FILE).open("wb") as jsonl,
    ):
        tsv.write("\t".join(("문장", *UNSMILE_COLUMNS)) + "\n")
        for review in chosen:
            value = raw.get(review.source) if review.source is not None else None
            try:
                record = orjson.loads(value) if value is not None else None
            except orjson.JSONDecodeError:
                record = None
            if not isinstance(record, dict):
                summary.missing_text += 1
                continue
            hate = [label for label in review.labels if label in LABEL_KEYS and label != "clean"]
            if review.kind == "comment":
                if review.decision is not Decision.APPROVE and not hate:
                    summary.unlabelled += 1
                    continue
                on = set(hate) if hate else {"clean"}
                text = normalize_text(str(record.get("text", "")))
                tsv.write("\t".join((text, *("1" if k in on else "0" for k in LABEL_KEYS))) + "\n")
                summary.comments += 1
            else:
                row = {
                    "prompt": normalize_text(str(record.get("prompt", ""))),
                    "reply": normalize_text(str(record.get("reply", ""))),
                    "unsafe": 0 if review.decision is Decision.APPROVE else 1,
                    "labels": review.labels,
                    "id": review.id,
                    "reviewer": review.reviewer,
                }
                jsonl.write(orjson.dumps(row) + b"\n")
                summary.replies += 1
    return summary
