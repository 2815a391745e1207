"""Identity is (id, content) on a real broker, Redis and worker: edits, repeats, and dead-letter replay."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.fixtures.worker import WorkerProcess, produce, read_until
from topics import content_revision


def _verdicts(worker: WorkerProcess, broker_url: str, n: int, timeout_s: float = 120) -> list[dict]:
    t = worker.topics
    out = asyncio.run(read_until(broker_url, [t.verdicts], lambda o: len(o[t.verdicts]) >= n, timeout_s))
    return [orjson.loads(v) for _, v in out[t.verdicts]]


def _classifier_rows(worker: WorkerProcess) -> float:
    return worker.metrics()['moderator_model_rows_total{model="classifier"}']


@pytest.mark.slow
def test_an_edit_gets_a_second_verdict_and_a_redelivered_record_no_model_call(start_worker, broker) -> None:  # type: ignore[no-untyped-def]
    worker = start_worker(partitions=1)
    t = worker.topics
    original = {"id": "edit-1", "text": "오늘 날씨 정말 좋다, 산책 가자!"}
    edited = {"id": "edit-1", "text": "너 같은 놈은 그냥 꺼져라"}
    asyncio.run(produce(broker.url, t.comments, [orjson.dumps(original)], [b"edit-1"]))
    first = _verdicts(worker, broker.url, 1)
    asyncio.run(produce(broker.url, t.comments, [orjson.dumps(edited)], [b"edit-1"]))
    both = _verdicts(worker, broker.url, 2)
    assert [v["id"] for v in both] == ["edit-1", "edit-1"]
    assert both[0] == first[0]
    assert both[0]["revision"] == content_revision("comment", original["text"])
    assert both[1]["revision"] == content_revision("comment", edited["text"])
    assert both[1]["supersedes"] == both[0]["revision"] and both[0]["supersedes"] is None
    assert both[1]["scores"] != both[0]["scores"] and not both[1]["cached"]
    rows = _classifier_rows(worker)
    assert rows == 2

    # the edited record again, from a new offset (a producer retry): same verdict, cached, no model call
    asyncio.run(produce(broker.url, t.comments, [orjson.dumps(edited)], [b"edit-1"]))
    third = _verdicts(worker, broker.url, 3)[2]
    assert third["cached"] and third["revision"] == both[1]["revision"] and third["supersedes"] is None
    assert (third["scores"], third["action"]) == (both[1]["scores"], both[1]["action"])
    assert _classifier_rows(worker) == rows
    assert worker.stop() == 0


@pytest.mark.slow
def test_a_model_error_dead_letter_replayed_gets_its_verdict(start_worker, broker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "model-is-broken"
    broken.touch()
    worker = start_worker(
        partitions=1,
        module="tests.fixtures.failing_worker",
        raw_env={"FAILING_MODEL_MARKER": "고장", "FAILING_MODEL_WHILE": str(broken)},
    )
    t = worker.topics
    records = [
        orjson.dumps({"id": "ok-1", "text": "정상 댓글입니다"}),
        orjson.dumps({"id": "fail-1", "text": "고장 난 모델이 못 읽는 댓글"}),
        b'{"id": "bad-json", ',
    ]
    asyncio.run(produce(broker.url, t.comments, records))
    out = asyncio.run(
        read_until(
            broker.url,
            [t.verdicts, t.dead_letter],
            lambda o: len(o[t.verdicts]) >= 1 and len(o[t.dead_letter]) >= 2,
            timeout_s=120,
        )
    )
    dead = sorted((d["reason"], d["id"]) for d in (orjson.loads(v) for _, v in out[t.dead_letter]))
    assert dead == [("invalid_json", None), ("model_error", "fail-1")]
    assert [orjson.loads(v)["id"] for _, v in out[t.verdicts]] == ["ok-1"]

    broken.unlink()  # the fix
    env = {
        **os.environ,
        **{k: v for k, v in worker.env.items() if k.startswith("MODERATOR_TOPIC_")},
        "MODERATOR_BROKER": broker.url,
    }
    replay = subprocess.run(
        [sys.executable, "-m", "moderator", "replay", "--reason", "model_error"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert replay.returncode == 0, replay.stderr
    assert "read 2 dead letters; sent 1" in replay.stderr, replay.stderr[-800:]
    assert f"sent 1 model_error → {t.comments}" in replay.stderr

    verdicts = _verdicts(worker, broker.url, 2)
    assert [v["id"] for v in verdicts] == ["ok-1", "fail-1"]
    assert verdicts[1]["revision"] == content_revision("comment", "고장 난 모델이 못 읽는 댓글")
    assert verdicts[1]["source"]["offset"] == 3  # the replayed copy, after the three originals
    assert worker.stop() == 0
