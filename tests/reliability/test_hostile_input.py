"""Hostile input: >= 1,000 malformed records plus Hypothesis-generated ones, interleaved with valid ones.

Everything goes into one partition so a record's offset is its index: each malformed record must come
back as a dead letter *at its own offset* with the reason the contract's decoder gives, each valid
record as a verdict, and the worker must stay up. The models must see valid records only.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from tests.fixtures.faults import FaultReport, new_topics, read_outputs, tally
from tests.fixtures.worker import WorkerProcess, produce
from tests.reliability.data import korean_text
from tests.reliability.hostile import MARKER, corpus, malformed_comments
from topics import InputLimits, InvalidRecord, decode_comment


def local_reason(raw: bytes) -> str | None:
    try:
        decode_comment(raw, InputLimits())
    except InvalidRecord as exc:
        return exc.reason.value
    return None


def generated_records(n: int) -> list[bytes]:
    """``n`` Hypothesis examples the decoder refuses (derandomised: the same on every run)."""
    found: list[bytes] = []

    @settings(
        max_examples=n * 3,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(malformed_comments)
    def collect(raw: bytes) -> None:
        if len(found) < n and local_reason(raw) is not None:
            found.append(raw)

    collect()
    return found


def test_the_corpus_is_large_varied_and_all_malformed() -> None:
    records = corpus()
    assert len(records) >= 1000
    reasons = Counter(local_reason(raw) for raw, _ in records)
    assert None not in reasons, "every corpus record must be refused by the decoder"
    assert set(Counter(c for _, c in records)) >= {
        "invalid_utf8",
        "invalid_json",
        "wrong_type",
        "null",
        "deeply_nested",
        "huge",
        "control_or_empty",
    }
    assert len(reasons) >= 9, reasons


@pytest.mark.slow
def test_every_malformed_record_is_dead_lettered_with_a_reason_and_valid_ones_around_them_are_verdicted(
    broker: Any,
    worker_factory: Callable[..., WorkerProcess],
    fresh_topics: Any,
    fault_report: FaultReport,
) -> None:
    topics, app_id = new_topics(fresh_topics, broker.url, partitions=1)
    hostile = [raw for raw, _ in corpus()] + generated_records(300)
    salt = app_id.rsplit("-", 1)[-1]
    texts: list[str] = []
    valid_ids: list[str] = []
    values: list[bytes] = []
    expected: dict[int, str] = {}  # offset -> reason
    for i, raw in enumerate(hostile):
        if i % 4 == 0:  # a valid record between hostile ones
            rid = f"ok-{i}"
            valid_ids.append(rid)
            texts.append(f"{korean_text(i)} {salt}")  # salted: never a cache hit from another test
            values.append(orjson.dumps({"id": rid, "text": texts[-1]}))
        reason = local_reason(raw)
        assert reason is not None
        expected[len(values)] = reason
        values.append(raw)
    # edits: new texts under ids already verdicted above, at later offsets: each a new revision
    edited = valid_ids[:100]
    for rid in edited:
        values.append(orjson.dumps({"id": rid, "text": f"{MARKER} edited {rid} {salt}"}))
    tail = [f"ok-tail-{i}" for i in range(50)]  # the worker still verdicts after all of it
    texts += [f"{korean_text(7000 + i)} {salt}" for i in range(len(tail))]
    values += [
        orjson.dumps({"id": rid, "text": text}) for rid, text in zip(tail, texts[-len(tail) :], strict=True)
    ]
    valid_ids += tail

    worker = worker_factory(broker.url, topics, app_id, batch_size="128", batch_window_ms="20")
    import asyncio

    asyncio.run(produce(broker.url, topics.comments, values))
    n_dead = len(expected)

    def done(out: dict[str, list[tuple[bytes | None, bytes]]]) -> bool:
        n_verdicts = len(valid_ids) + len(edited)
        return len(out[topics.verdicts]) >= n_verdicts and len(out[topics.dead_letter]) >= n_dead

    out = read_outputs(broker.url, topics, done, timeout_s=180)
    positions = [f"{topics.comments}/0/{offset}" for offset in expected]
    firsts = [(k, v) for k, v in out[topics.verdicts] if orjson.loads(v)["supersedes"] is None]
    edits = [orjson.loads(v) for _, v in out[topics.verdicts] if orjson.loads(v)["supersedes"] is not None]
    t = tally(firsts, out[topics.dead_letter], valid_ids, dead_ids=positions)
    revisions = {orjson.loads(v)["id"]: orjson.loads(v)["revision"] for _, v in firsts}
    assert sorted(e["id"] for e in edits) == sorted(edited)
    assert all(e["supersedes"] == revisions[e["id"]] != e["revision"] for e in edits)
    dead = [orjson.loads(v) for _, v in out[topics.dead_letter]]
    by_offset = {d["source"]["offset"]: d for d in dead}
    wrong = {
        o: (by_offset.get(o, {}).get("reason"), r)
        for o, r in expected.items()
        if by_offset.get(o, {}).get("reason") != r
    }
    fault_report.add(
        "hostile input (corpus + Hypothesis) between valid records",
        **t.row(),
        malformed=n_dead,
        from_hypothesis=300,
        reasons=dict(Counter(d["reason"] for d in dead)),
    )
    assert not wrong, f"{len(wrong)} records with a missing or wrong reason, e.g. {list(wrong.items())[:5]}"
    assert t.lost == 0 and t.dead_letters == n_dead and t.verdicted_ids == len(valid_ids)
    assert t.duplicates == 0
    assert {d["source"]["offset"] for d in dead} == set(expected), "dead letters only for malformed records"
    for d in dead:
        assert d["detail"] and d["kind"] == "comment"
        original = base64.b64decode(d["original_b64"])
        assert values[d["source"]["offset"]].startswith(original)
    assert worker.alive()
    metrics = worker.metrics()
    # size limits and validation run before any work: the model saw the valid records only
    assert metrics['moderator_model_rows_total{model="classifier"}'] == len(valid_ids) + len(edited)
    assert sum(v for k, v in metrics.items() if k.startswith("moderator_dead_letters_total{")) == n_dead
    # ids only at INFO: neither hostile payloads nor valid texts reach the log
    log = worker.log_tail(10_000_000)
    assert MARKER not in log
    assert not [text for text in texts if text in log]
    assert worker.stop() == 0
