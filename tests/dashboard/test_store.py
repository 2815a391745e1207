"""The sqlite index: queue filters and orders, decisions (the later stands, history kept), counts."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from moderator.dashboard.store import QueueFilter, Store, bucket_of
from topics.reviews import Decision, Review, VerdictRef, content_hash


def verdict(
    i: int,
    *,
    kind: str = "comment",
    action: str = "review",
    categories: list[str] | None = None,
    top: float = 0.5,
    ts: float = 1000.0,
    human: dict | None = None,
) -> dict:
    cats = categories if categories is not None else ["region"]
    scores = {
        "region": top if "region" in cats else 0.01,
        "age": top if "age" in cats else 0.02,
        "clean": 0.9,
    }
    v = {
        "id": f"id-{i}",
        "kind": kind,
        "flagged": True,
        "action": action,
        "categories": cats,
        "scores": scores,
        "unsafe": None,
        "cached": False,
        "model": {"classifier": "m"},
        "policy": "p@1",
        "latency_ms": 1.0,
        "ts": ts + i,
        "source": {"topic": "comments", "partition": 0, "offset": i},
    }
    if human:
        v["human"] = human
    return v


def make_review(
    item: str, decision: Decision, reviewer: str, ts: float, labels: list[str] | None = None
) -> Review:
    return Review(
        review_id=f"{item}-{reviewer}-{ts}",
        id=item,
        kind="comment",
        content_hash=content_hash("comment", item),
        decision=decision,
        labels=labels or [],
        reviewer=reviewer,
        ts=ts,
        verdict=VerdictRef("f", 0, 0, "review", [], {}, "p@1", {}, None),
        source=None,
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "d.sqlite3")
    rows = [
        (verdict(0, categories=["region"], top=0.4), "f", 0, 0),
        (verdict(1, categories=["age"], top=0.95, action="block"), "f", 0, 1),
        (verdict(2, kind="reply", categories=["region", "age"], top=0.6), "f", 1, 0),
        (verdict(3, categories=["region"], top=0.3), "f", 1, 1),
    ]
    with s.transaction() as db:
        Store.add_flagged(db, rows)
    s.set_enrichment(
        [
            ("id-0", "news", "ko"),
            ("id-1", "sports", None),
            ("id-2", "kids-bot", "ko"),
            ("id-3", "news_x%", None),
        ]
    )
    return s


def ids(store: Store, **kw: str) -> list[str]:
    items, total = store.queue(QueueFilter(**kw), limit=50)
    assert total == len(items)
    return [i.id for i in items]


def test_orders_and_filters(store: Store) -> None:
    assert ids(store) == ["id-0", "id-1", "id-2", "id-3"]
    assert ids(store, sort="severity") == ["id-1", "id-2", "id-0", "id-3"]
    assert ids(store, sort="newest") == ["id-3", "id-2", "id-1", "id-0"]
    assert ids(store, kind="reply") == ["id-2"]
    assert ids(store, category="age") == ["id-1", "id-2"]
    assert ids(store, category="reg") == [], "a category matches whole labels only"
    assert ids(store, action="block") == ["id-1"]
    assert ids(store, channel="news") == ["id-0"]
    assert ids(store, language="ko") == ["id-0", "id-2"]
    assert ids(store, search="id-2") == ["id-2"] and ids(store, search="id-") == [
        "id-0",
        "id-1",
        "id-2",
        "id-3",
    ]
    assert ids(store, search="d-2") == [], "ids match by prefix (an index range, not a scan)"
    assert ids(store, search="%") == [], "search is literal, not a LIKE pattern"
    assert store.facets() == {"channel": ["kids-bot", "news", "news_x%", "sports"], "language": ["ko"]}
    page, total = store.queue(QueueFilter(), limit=2, offset=2)
    assert [i.id for i in page] == ["id-2", "id-3"] and total == 4


def test_the_later_decision_stands_and_history_is_kept(store: Store) -> None:
    with store.transaction() as db:
        Store.add_reviews(db, [make_review("id-0", Decision.REMOVE, "bob", 20.0, ["region"])])
        # arriving later but decided earlier: history grows, the status stays with the later decision
        Store.add_reviews(db, [make_review("id-0", Decision.APPROVE, "alice", 10.0)])
    item = store.item("id-0")
    assert (
        item is not None
        and item.status == "remove"
        and item.decided_by == "bob"
        and item.labels == ["region"]
    )
    assert [h["reviewer"] for h in store.history("id-0")] == ["alice", "bob"]
    with store.transaction() as db:
        Store.add_reviews(db, [make_review("id-0", Decision.APPROVE, "carol", 30.0)])
        assert Store.add_reviews(db, [make_review("id-0", Decision.APPROVE, "carol", 30.0)]) == set(), (
            "idempotent"
        )
    assert store.item("id-0").status == "approve"  # type: ignore[union-attr]
    assert store.latest_review_for_hash(content_hash("comment", "id-0"))["reviewer"] == "carol"  # type: ignore[index]
    assert ids(store) == ["id-1", "id-2", "id-3"] and ids(store, status="decided") == ["id-0"]
    # a redelivered verdict refreshes the verdict, never the decision
    with store.transaction() as db:
        Store.add_flagged(db, [(verdict(0, top=0.41), "f", 0, 9)])
    assert store.item("id-0").status == "approve"  # type: ignore[union-attr]
    assert store.pending_overrides() == [content_hash("comment", "id-0")]


def test_a_verdict_the_worker_took_from_a_human_is_not_queued_again(store: Store) -> None:
    human = {"decision": "remove", "reviewer": "bob", "review_id": "x", "ts": 5.0}
    with store.transaction() as db:
        Store.add_flagged(db, [(verdict(7, action="block", human=human), "f", 0, 7)])
    assert "id-7" not in ids(store) and store.item("id-7").decided_by == "bob"  # type: ignore[union-attr]


def test_counts_and_offsets(store: Store) -> None:
    b = bucket_of(1000.0)
    with store.transaction() as db:
        Store.add_counts(
            db,
            {(b, "comment", "allow"): (3, 1, 0)},
            {(b, "age"): 2},
            {(b, "invalid_json"): 1},
            {('{"classifier":"m"}', "p@1"): (1000.0, 1001.0, 3)},
        )
        Store.add_counts(
            db,
            {(b, "comment", "allow"): (2, 2, 1)},
            {},
            {},
            {('{"classifier":"m"}', "p@1"): (999.0, 1002.0, 2)},
        )
        Store.save_offsets(db, {("f", 0): 10, ("f", 1): 4})
    assert store.totals_since(0) == {"verdicts": 5, "cached": 3, "human": 1}
    assert store.series("stat_actions", "action", b, 10) == {"allow": {0: 5}}
    assert store.series("stat_dead", "reason", b, 10) == {"invalid_json": {0: 1}}
    v = store.versions()[0]
    assert (v["first_ts"], v["last_ts"], v["n"]) == (999.0, 1002.0, 5)
    assert store.offsets(["f"]) == {("f", 0): 10, ("f", 1): 4}
    assert orjson.loads(v["model"]) == {"classifier": "m"}


def test_a_language_tag_on_the_verdict_wins_over_the_input_meta(store: Store) -> None:
    tagged = verdict(9)
    tagged["language"] = "en"
    with store.transaction() as db:
        Store.add_flagged(db, [(tagged, "f", 0, 9)])
    store.set_enrichment([("id-9", "news", "ko")])
    item = store.item("id-9")
    assert item is not None and (item.channel, item.language) == ("news", "en")


def test_a_review_indexed_before_its_verdict_still_decides_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "d.sqlite3")
    with store.transaction() as db:
        Store.add_reviews(db, [make_review("id-5", Decision.REMOVE, "bob", 20.0, ["region"])])
    with store.transaction() as db:
        Store.add_flagged(db, [(verdict(5), "f", 0, 5)])
    item = store.item("id-5")
    assert item is not None and item.status == "remove" and item.decided_by == "bob"


def test_an_edit_reopens_the_item_and_an_old_record_never_replaces_a_newer_edit(tmp_path: Path) -> None:
    store = Store(tmp_path / "d.sqlite3")

    def flagged(revision: str, offset: int, top: float) -> tuple[dict, str, int, int]:
        v = verdict(0, top=top)
        v["revision"], v["source"]["offset"] = revision, offset
        return (v, "f", 0, offset)

    with store.transaction() as db:
        Store.add_flagged(db, [flagged("rev-a", 10, 0.4)])
        review = make_review("id-0", Decision.APPROVE, "bob", 20.0)
        Store.add_reviews(
            db,
            [Review(**{**{f: getattr(review, f) for f in review.__dataclass_fields__}, "revision": "rev-a"})],
        )
    assert store.item("id-0").status == "approve"  # type: ignore[union-attr]
    with store.transaction() as db:  # a redelivery of the same revision keeps the decision
        Store.add_flagged(db, [flagged("rev-a", 10, 0.4)])
    assert store.item("id-0").status == "approve"  # type: ignore[union-attr]
    with store.transaction() as db:  # the comment was edited: new content, to be reviewed again
        Store.add_flagged(db, [flagged("rev-b", 30, 0.9)])
    item = store.item("id-0")
    assert (
        item is not None
        and item.status == "open"
        and item.decided_by is None
        and item.verdict["revision"] == "rev-b"
    )
    with store.transaction() as db:  # the old revision redelivered after a crash changes nothing
        Store.add_flagged(db, [flagged("rev-a", 10, 0.4)])
    item = store.item("id-0")
    assert item is not None and item.verdict["revision"] == "rev-b" and item.status == "open"
    assert len(store.history("id-0")) == 1, "the history keeps the decision on the earlier revision"
