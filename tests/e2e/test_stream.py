"""The worker against a real broker and a real Redis: every id verdicted, caching, dead letters, groups."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from tests.fixtures.texts import korean_text
from tests.fixtures.worker import produce, read_until


def make_inputs(n_comments: int, n_replies: int, repeat_every: int = 5) -> tuple[list[dict], list[dict]]:
    """Every ``repeat_every``-th record repeats an earlier text (so ~20% should come back cached)."""
    comments = []
    for i in range(n_comments):
        source = i - 7 if i % repeat_every == 4 and i >= 7 else i
        comments.append({"id": f"c-{i}", "text": korean_text(source), "channel": "news"})
    replies = []
    for i in range(n_replies):
        source = i - 3 if i % repeat_every == 4 and i >= 3 else i
        replies.append(
            {"id": f"r-{i}", "prompt": f"질문 {source} 어떻게 생각해?", "reply": korean_text(1000 + source)}
        )
    return comments, replies


def verdict_map(records: list[tuple[bytes | None, bytes]]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for _key, value in records:
        v = orjson.loads(value)
        out.setdefault(v["id"], []).append(v)
    return out


@pytest.mark.slow
def test_1000_comments_and_200_replies_all_verdicted_cached_and_flagged(start_worker, broker) -> None:  # type: ignore[no-untyped-def]
    worker = start_worker()
    t = worker.topics
    comments, replies = make_inputs(1000, 200)
    asyncio.run(
        produce(
            broker.url, t.comments, [orjson.dumps(c) for c in comments], [c["id"].encode() for c in comments]
        )
    )
    asyncio.run(
        produce(
            broker.url, t.replies, [orjson.dumps(r) for r in replies], [r["id"].encode() for r in replies]
        )
    )
    ids = {c["id"] for c in comments} | {r["id"] for r in replies}

    def done(out: dict) -> bool:
        # the reader fetches the topics independently: wait for the flagged copies as well, or the last
        # batch's may still be unread when the verdicts topic is complete
        verdicts = verdict_map(out[t.verdicts])
        flagged = {i for i, vs in verdicts.items() if vs[0]["flagged"]}
        return len(verdicts) >= len(ids) and set(verdict_map(out[t.flagged])) >= flagged

    out = asyncio.run(read_until(broker.url, [t.verdicts, t.flagged, t.dead_letter], done, timeout_s=240))
    verdicts = verdict_map(out[t.verdicts])
    assert set(verdicts) == ids, f"missing {len(ids - set(verdicts))} ids\n{worker.log_tail()}"
    assert not out[t.dead_letter]
    assert all(len(vs) == 1 for vs in verdicts.values()), "a clean run has no duplicates"
    flagged_ids = {v[0]["id"] for v in verdicts.values() if v[0]["flagged"]}
    assert set(verdict_map(out[t.flagged])) == flagged_ids
    for v in (vs[0] for vs in verdicts.values()):
        assert v["action"] in ("allow", "review", "block") and len(v["scores"]) == 10
        assert (v["unsafe"] is None) == (v["kind"] == "comment")
    # repeated texts come back cached and never reach the model
    distinct_comments = len({c["text"] for c in comments})
    distinct_replies = len({(r["prompt"], r["reply"]) for r in replies})
    cached = sum(vs[0]["cached"] for vs in verdicts.values())
    assert cached == len(ids) - distinct_comments - distinct_replies
    # partitions interleave, so which copy of a text is scored first varies; exactly one copy is not cached
    uncached_per_text = Counter(c["text"] for c in comments if not verdicts[c["id"]][0]["cached"])
    assert set(uncached_per_text.values()) == {1} and len(uncached_per_text) == distinct_comments
    metrics = worker.metrics()
    assert metrics['moderator_model_rows_total{model="classifier"}'] == distinct_comments + distinct_replies
    assert metrics['moderator_model_rows_total{model="judge"}'] == distinct_replies
    status, health = worker.health()
    assert status == 200 and health["live"] and health["providers"]["classifier"] == "cpu"
    assert worker.stop() == 0


BAD_COMMENTS: list[tuple[bytes, str]] = [
    (b"\xc3\x28 not utf-8", "invalid_utf8"),
    (b'{"id": "b1", "text": ', "invalid_json"),
    (b"[1, 2, 3]", "not_an_object"),
    (b'{"text": "no id"}', "missing_field"),
    (b'{"id": "b2"}', "missing_field"),
    (b'{"id": "b3", "text": 42}', "wrong_type"),
    (b'{"id": "b4", "text": null}', "missing_field"),
    (b'{"id": "b5", "text": "   "}', "empty_text"),
    (orjson.dumps({"id": "b6", "text": "가" * 9000}), "too_long"),
    (b'{"id": "b7", "text": "hi", "surprise": true}', "unknown_field"),
    (b"", "invalid_json"),
    (b"[" * 3000 + b"]" * 3000, "invalid_json"),
]


@pytest.mark.slow
def test_malformed_inputs_land_in_dead_letter_with_reasons_and_the_worker_stays_up(
    start_worker, broker
) -> None:  # type: ignore[no-untyped-def]
    worker = start_worker(partitions=1)
    t = worker.topics
    good = [orjson.dumps({"id": f"ok-{i}", "text": korean_text(i)}) for i in range(5)]
    values = [good[0], good[1], *[b for b, _ in BAD_COMMENTS], *good[2:]]
    asyncio.run(produce(broker.url, t.comments, values))
    asyncio.run(
        produce(
            broker.url,
            t.replies,
            [b'{"id": "rb1", "prompt": "q", "reply": 7}', b'{"id": "rb2", "prompt": "q"}'],
        )
    )
    expected = len(values) + 2

    def done(out: dict) -> bool:
        return len(out[t.verdicts]) + len(out[t.dead_letter]) >= expected

    out = asyncio.run(read_until(broker.url, [t.verdicts, t.dead_letter], done, timeout_s=120))
    assert sorted(verdict_map(out[t.verdicts])) == [f"ok-{i}" for i in range(5)]
    dead = [orjson.loads(v) for _, v in out[t.dead_letter]]
    reasons = Counter(d["reason"] for d in dead if d["kind"] == "comment")
    assert reasons == Counter(r for _, r in BAD_COMMENTS)
    assert sorted(d["reason"] for d in dead if d["kind"] == "reply") == ["missing_field", "wrong_type"]
    for d in dead:
        assert (
            d["detail"] and d["source"]["topic"] in (t.comments, t.replies) and d["original_b64"] is not None
        )
    assert worker.alive()
    metrics = worker.metrics()
    assert metrics['moderator_dead_letters_total{reason="invalid_json"}'] == 3


@pytest.mark.slow
def test_two_workers_in_one_group_split_partitions_and_verdict_every_id(start_worker, broker) -> None:  # type: ignore[no-untyped-def]
    first = start_worker()
    second = start_worker()
    t = first.topics
    comments, _ = make_inputs(400, 0, repeat_every=10**9)
    asyncio.run(
        produce(
            broker.url, t.comments, [orjson.dumps(c) for c in comments], [c["id"].encode() for c in comments]
        )
    )

    def done(out: dict) -> bool:
        return len(verdict_map(out[t.verdicts])) >= len(comments)

    out = asyncio.run(read_until(broker.url, [t.verdicts], done, timeout_s=180))
    assert set(verdict_map(out[t.verdicts])) == {c["id"] for c in comments}
    by_worker = [
        sum(v for k, v in w.metrics().items() if k.startswith("moderator_messages_in_total"))
        for w in (first, second)
    ]
    assert all(n > 0 for n in by_worker), f"one worker got no partition: {by_worker}"
    partitions = {orjson.loads(v)["source"]["partition"] for _, v in out[t.verdicts]}
    assert partitions == {0, 1, 2, 3}


@pytest.mark.slow
def test_score_gives_the_same_verdicts_as_the_stream(
    start_worker, broker, tmp_path: Path, tiny_classifier_dir, tiny_judge_dir
) -> None:  # type: ignore[no-untyped-def]
    worker = start_worker(partitions=2)
    t = worker.topics
    comments, replies = make_inputs(60, 30, repeat_every=10**9)
    asyncio.run(produce(broker.url, t.comments, [orjson.dumps(c) for c in comments]))
    asyncio.run(produce(broker.url, t.replies, [orjson.dumps(r) for r in replies]))
    n = len(comments) + len(replies)
    out = asyncio.run(read_until(broker.url, [t.verdicts], lambda o: len(o[t.verdicts]) >= n, timeout_s=120))
    stream = {v["id"]: v for vs in verdict_map(out[t.verdicts]).values() for v in vs}

    scored: dict[str, dict] = {}
    for kind, rows in (("comment", comments), ("reply", replies)):
        path = tmp_path / f"{kind}.jsonl"
        path.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "moderator",
                "score",
                "--kind",
                kind,
                "--input",
                str(path),
                "--no-cache",
                "--classifier",
                str(tiny_classifier_dir),
                "--judge",
                str(tiny_judge_dir),
                "--device",
                "cpu",
            ],
            capture_output=True,
            check=True,
            timeout=120,
        )
        for line in proc.stdout.splitlines():
            v = orjson.loads(line)
            scored[v["id"]] = v
    assert set(scored) == set(stream)
    for rid, v in scored.items():
        s = stream[rid]
        for field in ("kind", "flagged", "action", "categories", "model", "policy", "truncated"):
            assert v[field] == s[field], (rid, field)
        for key, p in v["scores"].items():
            assert abs(p - s["scores"][key]) < 1e-5
        if v["unsafe"] is not None:
            assert abs(v["unsafe"] - s["unsafe"]) < 1e-5
