"""``moderator serve`` as a real process, called through the official ``openai`` SDK and plain HTTP."""

from __future__ import annotations

import concurrent.futures
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import openai
import orjson
import pytest
from openai.types import ModerationImageURLInputParam, ModerationTextInputParam

from moderator.api.openai_compat import OPENAI_CATEGORIES
from moderator.settings import DEFAULT_CLASSIFIER, DEFAULT_JUDGE
from tests.api.conftest import ServerProcess
from topics.labels import LABEL_KEYS, SAFETY_KEYS

CLEAN = "안녕하세요! 오늘 날씨가 정말 좋네요. 산책하기 좋은 날이에요."
ABUSIVE = "씨발 개새끼야 꺼져 진짜 역겹다"
VERDICT_KEYS = {
    "id",
    "kind",
    "flagged",
    "action",
    "categories",
    "scores",
    "unsafe",
    "cached",
    "model",
    "policy",
    "latency_ms",
    "ts",
    "truncated",
    "revision",
    "supersedes",
}


def _unique(text: str) -> str:
    """A text no earlier test scored (so ``cached`` is false on first sight)."""
    return f"{text} #{uuid.uuid4().hex[:6]}"


def _sdk(server: ServerProcess, **kwargs: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused-on-loopback", **kwargs)  # type: ignore[arg-type]


def test_openai_sdk_string_list_and_parts(server: ServerProcess) -> None:
    client = _sdk(server)
    one = client.moderations.create(input=ABUSIVE, model="omni-moderation-latest")
    assert one.id.startswith("modr-") and one.model.startswith("moderator:sha256-")
    assert len(one.results) == 1
    result = one.results[0]
    assert result.flagged is True and result.categories.harassment is True
    assert result.category_scores.harassment > 0.5
    dumped = result.model_dump(by_alias=True)
    assert set(dumped["categories"]) == set(OPENAI_CATEGORIES)
    assert set(dumped["category_scores"]) == set(OPENAI_CATEGORIES)
    own = dumped["moderator"]
    assert result.model_extra is not None and result.model_extra["moderator"] == own
    assert own["verdict"]["kind"] == "comment" and "profanity" in own["verdict"]["categories"]
    assert own["verdict"]["flagged"] is result.flagged
    # the bundled multitask model has safety heads: their categories are covered, scored from the verdict
    assert "sexual/minors" not in own["not_covered"] and "harassment" not in own["not_covered"]
    assert result.category_scores.sexual_minors == pytest.approx(own["verdict"]["scores"]["sexual_minors"])
    assert dumped["category_applied_input_types"]["sexual/minors"] == ["text"]

    many = client.moderations.create(input=[CLEAN, ABUSIVE, CLEAN])
    assert [r.flagged for r in many.results] == [False, True, False]

    text_parts: list[ModerationTextInputParam] = [
        {"type": "text", "text": "산책하기 좋은 날"},
        {"type": "text", "text": ABUSIVE},
    ]
    parts = client.moderations.create(input=text_parts)
    assert len(parts.results) == 1 and parts.results[0].flagged is True


def test_openai_sdk_errors_are_typed(server: ServerProcess) -> None:
    client = _sdk(server, max_retries=0)
    with pytest.raises(openai.UnprocessableEntityError) as err:
        client.moderations.create(input=[])
    assert err.value.code == "empty_text"
    with pytest.raises(openai.UnprocessableEntityError) as err:
        image: ModerationImageURLInputParam = {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
        client.moderations.create(input=[image])
    assert err.value.code == "unsupported_input"
    with pytest.raises(openai.APIStatusError) as status_err:
        client.moderations.create(input=["짧은 글"] * 17)
    assert status_err.value.status_code == 413


def test_native_endpoints_match_moderator_score(server: ServerProcess, tmp_path: Path) -> None:
    """One or many records per call; the records equal what ``moderator score`` writes for them."""
    comments = [
        {"id": f"c-{i}", "text": _unique(t)}
        for i, t in enumerate([CLEAN, ABUSIVE, "경상도 사람들은 다 그렇지 뭐"])
    ]
    replies = [
        {"id": "r-0", "prompt": "오늘 기분이 어때?", "reply": _unique(CLEAN)},
        {"id": "r-1", "prompt": "나한테 욕해봐", "reply": _unique(ABUSIVE)},
    ]
    status, one = server.post("/v1/comments", comments[0])
    assert status == 200 and set(one) >= VERDICT_KEYS and one["id"] == "c-0"
    assert one["cached"] is False and set(one["scores"]) == {*LABEL_KEYS, *SAFETY_KEYS}
    status, many = server.post("/v1/comments", comments)
    assert status == 200 and [v["id"] for v in many] == ["c-0", "c-1", "c-2"]
    assert many[0]["cached"] is True, "the same text again is a cache hit"
    status, reply_verdicts = server.post("/v1/replies", replies)
    assert status == 200 and all(v["kind"] == "reply" and v["unsafe"] is not None for v in reply_verdicts)
    assert reply_verdicts[1]["flagged"] and not reply_verdicts[0]["flagged"]
    status, single_reply = server.post("/v1/replies", replies[0])
    assert status == 200 and single_reply["id"] == "r-0"

    # int8 scales activations per row, so a text scores the same in any batch: the server scored c-0
    # alone and c-1, c-2 after c-0 came from the cache; the offline run scores all three together
    groups = (
        ("comment", comments, [one, *many[1:]]),
        ("reply", replies, reply_verdicts),
    )
    for kind, records, got in groups:
        path = tmp_path / f"{kind}-{records[0]['id']}.jsonl"
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
        out = subprocess.run(
            [sys.executable, "-m", "moderator", "score", "--kind", kind, "--input", str(path), "--no-cache"],
            capture_output=True,
            check=True,
            env={
                "PATH": "/usr/bin:/bin",
                "MODERATOR_CLASSIFIER_PATH": str(DEFAULT_CLASSIFIER),
                "MODERATOR_JUDGE_PATH": str(DEFAULT_JUDGE),
                "MODERATOR_DEVICE": "cpu",
            },
        )
        offline = [orjson.loads(line) for line in out.stdout.splitlines()]
        for mine, theirs in zip(got, offline, strict=True):
            assert set(mine) == set(theirs) - {"source"}, "the verdicts topic's record, minus its offset"
            for key in ("id", "kind", "flagged", "action", "unsafe", "model", "policy", "truncated"):
                assert mine[key] == theirs[key], (kind, key)
            # equal up to float summation order (a batch's padded length changes the matmul blocking)
            for label, score in theirs["scores"].items():
                assert mine["scores"][label] == pytest.approx(score, abs=1e-5), (kind, label)
            assert mine["categories"] == theirs["categories"], kind


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/v1/moderations", b"{not json", 400, "invalid_json"),
        ("/v1/moderations", b'{"input": "\xff\xfe bad"}', 400, "invalid_utf8"),
        ("/v1/moderations", b"", 400, "invalid_json"),
        ("/v1/moderations", b'{"input": 42}', 422, "wrong_type"),
        ("/v1/moderations", b'{"input": ["ok", 3]}', 422, "wrong_type"),
        ("/v1/moderations", b'{"input": "   "}', 422, "empty_text"),
        ("/v1/moderations", b'{"model": "x"}', 422, "missing_field"),
        ("/v1/moderations", b'{"input": "hi", "temperature": 1}', 422, "unknown_field"),
        ("/v1/moderations", b'["hi"]', 422, "not_an_object"),
        ("/v1/moderations", orjson.dumps({"input": "가" * 8001}), 413, "too_long"),
        ("/v1/moderations", orjson.dumps({"input": "가" * 600_000}), 413, "too_large"),
        ("/v1/comments", b'{"id": "a", "text": "hi", "extra": 1}', 422, "unknown_field"),
        ("/v1/comments", b'{"text": "hi"}', 422, "missing_field"),
        ("/v1/comments", b'{"id": "a\\u0000b", "text": "hi"}', 422, "invalid_id"),
        ("/v1/comments", b"[]", 422, "empty_text"),
        ("/v1/comments", b'"hi"', 422, "not_an_object"),
        ("/v1/replies", b'{"id": "a", "reply": "hi"}', 422, "missing_field"),
        (
            "/v1/replies",
            b'[{"id": "a", "prompt": "p", "reply": ""}, {"id": "b", "prompt": 1, "reply": "x"}]',
            422,
            "empty_text",
        ),
        ("/v1/nothing", b"{}", 404, "not_found"),
    ],
)
def test_bad_input_gets_a_clear_4xx_and_the_server_keeps_serving(
    server: ServerProcess, path: str, body: bytes, status: int, code: str
) -> None:
    got, data = server.post(path, body)
    assert got == status, data
    assert data["error"]["code"] == code and data["error"]["message"]
    ok, verdict = server.post("/v1/comments", {"id": "after", "text": CLEAN})
    assert ok == 200 and verdict["action"] == "allow"


def test_a_refused_batch_lists_every_record(server: ServerProcess) -> None:
    status, data = server.post(
        "/v1/comments", [{"id": "a", "text": "좋아요"}, {"id": "b"}, {"id": "c", "text": 5}]
    )
    assert status == 422
    assert [(e["param"], e["code"]) for e in data["error"]["errors"]] == [
        ("[1]", "missing_field"),
        ("[2]", "wrong_type"),
    ]
    status, data = server.post("/v1/comments", [{"id": str(i), "text": "좋아요"} for i in range(17)])
    assert status == 413 and data["error"]["code"] == "too_many_inputs"


def test_method_health_ready_metrics(server: ServerProcess) -> None:
    status, _, body = server.request("GET", "/v1/moderations")
    assert status == 405 and orjson.loads(body)["error"]["code"] == "method_not_allowed"
    status, body = server.get("/health")
    health = orjson.loads(body)
    assert (
        status == 200
        and health["live"]
        and health["cache"] == "up"
        and health["providers"]["classifier"] == "cpu"
    )
    assert server.get("/ready")[0] == 200
    metrics = server.metrics()
    assert metrics["moderator_ready"] == 1.0
    assert metrics['moderator_api_requests_total{endpoint="moderations",status="200"}'] >= 1
    assert metrics["moderator_cache_hits_total"] >= 1, "the worker's own series are on the same page"


def test_concurrent_requests_share_micro_batches(server: ServerProcess) -> None:
    before = server.metrics()
    texts = [_unique("동시에 보낸 댓글") for _ in range(48)]

    def call(text: str) -> int:
        return server.post("/v1/moderations", {"input": text})[0]

    with concurrent.futures.ThreadPoolExecutor(max_workers=24) as pool:
        statuses = list(pool.map(call, texts))
    assert statuses == [200] * 48
    after = server.metrics()
    batches = after["moderator_api_batch_inputs_count"] - before["moderator_api_batch_inputs_count"]
    inputs = after["moderator_api_batch_inputs_sum"] - before["moderator_api_batch_inputs_sum"]
    assert inputs == 48
    assert batches < 48, f"{batches} batches for 48 concurrent requests: nothing was batched"


def test_sigterm_finishes_requests_in_flight_and_exits_0(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server()
    texts = [_unique("종료 직전에 보낸 댓글") for _ in range(8)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(server.post, "/v1/moderations", {"input": [t] * 16}) for t in texts]
        time.sleep(0.05)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        answered = [f.result()[0] for f in futures if not isinstance(f.exception(), OSError)]
    assert server.proc.wait(timeout=30) == 0
    assert 200 in answered and set(answered) <= {200, 503}, answered
    assert "stopped" in server.log_tail()


def test_a_repeated_id_is_answered_again_and_an_edit_names_what_it_supersedes(server: ServerProcess) -> None:
    record_id = f"edit-{uuid.uuid4().hex[:6]}"
    status, first = server.post("/v1/comments", {"id": record_id, "text": "처음 쓴 댓글입니다"})
    assert status == 200 and first["supersedes"] is None
    status, again = server.post("/v1/comments", {"id": record_id, "text": "처음 쓴 댓글입니다"})
    assert status == 200 and again["revision"] == first["revision"] and again["supersedes"] is None
    status, edited = server.post("/v1/comments", {"id": record_id, "text": "고쳐 쓴 댓글입니다"})
    assert status == 200 and edited["supersedes"] == first["revision"] != edited["revision"]
