"""The pipeline with no-op models and no Redis: identity by (id, revision), repeats, model errors.

No torch, no ONNX Runtime, no subprocess, no service: this is the layer ``make test-fast`` runs. The
same behaviours are checked on real tiny models and a real Redis in ``tests/moderator/core`` and
against a real worker in ``tests/e2e/test_revisions.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson
import pytest

from moderator.core.pipeline import BatchResult, InputMessage, Pipeline
from moderator.core.policy import load_policy
from moderator.local.noop_models import NoopClassifier, NoopJudge
from moderator.runtime.base import ClassifierOutput
from moderator.settings import DEFAULT_POLICY
from topics import SourcePosition, content_revision


class Breakable(NoopClassifier):
    """Raises for texts containing ``marker`` while ``broken``."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker, self.broken = marker, True

    def predict(self, texts: Sequence[str]) -> ClassifierOutput:
        if self.broken and any(self.marker in t for t in texts):
            raise RuntimeError("injected")
        return super().predict(texts)


def comment(record_id: str, text: str, offset: int, topic: str = "comments") -> InputMessage:
    value = orjson.dumps({"id": record_id, "text": text})
    return InputMessage("comment", value, SourcePosition(topic, 0, offset))


def process(pipeline: Pipeline, *messages: InputMessage) -> BatchResult:
    return asyncio.run(pipeline.process(list(messages)))


@pytest.fixture
def classifier() -> NoopClassifier:
    return NoopClassifier()


@pytest.fixture
def pipeline(classifier: NoopClassifier) -> Pipeline:
    return Pipeline(classifier, NoopJudge(), load_policy(DEFAULT_POLICY))


def test_edits_are_new_revisions_naming_the_one_they_supersede(pipeline: Pipeline) -> None:
    first = process(pipeline, comment("c1", "처음 글", 0)).verdicts[0]
    edit = process(pipeline, comment("c1", "고친 글", 1)).verdicts[0]
    assert first.revision == content_revision("comment", "처음 글") and first.supersedes is None
    assert edit.revision == content_revision("comment", "고친 글") and edit.supersedes == first.revision
    # reverting is an edit too; the same id on another input topic is another record
    revert = process(pipeline, comment("c1", "처음 글", 2)).verdicts[0]
    assert revert.supersedes == edit.revision
    other = process(pipeline, comment("c1", "다른 토픽", 0, topic="elsewhere")).verdicts[0]
    assert other.supersedes is None


def test_within_one_batch_an_edit_supersedes_the_earlier_copy(pipeline: Pipeline) -> None:
    result = process(pipeline, comment("c2", "하나", 0), comment("c2", "둘", 1), comment("c2", "둘", 2))
    a, b, c = result.verdicts
    assert (a.supersedes, b.supersedes, c.supersedes) == (None, a.revision, None)
    assert c.cached and c.revision == b.revision and not result.dead_letters


def test_a_repeat_from_another_offset_is_not_dead_lettered(pipeline: Pipeline) -> None:
    process(pipeline, comment("c3", "같은 글", 0))
    again = process(pipeline, comment("c3", "같은 글", 7))
    assert not again.dead_letters and again.verdicts[0].supersedes is None


def test_normalisation_variants_are_the_same_revision(pipeline: Pipeline) -> None:
    a = process(pipeline, comment("c4", "안녕  하세요", 0)).verdicts[0]
    b = process(pipeline, comment("c4", " 안녕 하세요 ", 1)).verdicts[0]
    assert a.revision == b.revision and b.supersedes is None


def test_model_errors_record_no_id_so_a_refeed_is_scored_as_the_first_revision() -> None:
    model = Breakable("고장")
    pipeline = Pipeline(model, NoopJudge(), load_policy(DEFAULT_POLICY))
    process(pipeline, comment("c5", "처음 글", 0))
    failed = process(pipeline, comment("c5", "고장 난 글", 1), comment("c6", "고장", 2))
    assert [d.reason for d in failed.dead_letters] == ["model_error", "model_error"]
    assert not failed.verdicts
    model.broken = False
    refed = process(pipeline, comment("c5", "고장 난 글", 3), comment("c6", "고장", 4))
    assert [v.id for v in refed.verdicts] == ["c5", "c6"]
    assert refed.verdicts[0].supersedes == content_revision("comment", "처음 글")
    assert refed.verdicts[1].supersedes is None


def test_text_repeated_in_a_batch_reaches_the_model_once(
    pipeline: Pipeline, classifier: NoopClassifier
) -> None:
    result = process(pipeline, *(comment(f"r{i}", "반복", i) for i in range(5)))
    assert [v.cached for v in result.verdicts] == [False, True, True, True, True]
    assert classifier.rows == 1


def test_an_older_record_redelivered_after_an_edit_does_not_supersede_it(pipeline: Pipeline) -> None:
    process(pipeline, comment("c7", "원래 글", 10), comment("c7", "고친 글", 11))
    # a crash before commit: the partition is read again from offset 10
    again = process(pipeline, comment("c7", "원래 글", 10), comment("c7", "고친 글", 11))
    assert [v.supersedes for v in again.verdicts] == [None, None]
    later = process(pipeline, comment("c7", "또 고친 글", 12)).verdicts[0]
    assert later.supersedes == content_revision("comment", "고친 글")


class Laned(NoopClassifier):
    """Two lanes; each batch waits until another batch is in the model too (or gives up)."""

    def __init__(self) -> None:
        import threading

        from moderator.runtime.batching import Lanes

        super().__init__()
        self.lanes = Lanes(2)
        self.together = threading.Barrier(2, timeout=5)

    def predict(self, texts: Sequence[str]) -> ClassifierOutput:
        self.together.wait()  # BrokenBarrierError (a model error) if the batches ran one after another
        return super().predict(texts)


def test_batches_in_flight_reach_a_laned_model_at_once() -> None:
    """A model with two lanes gets a model thread per lane: two batches (an API's micro-batches) are
    scored side by side instead of queueing behind one thread."""
    classifier = Laned()
    pipeline = Pipeline(classifier, NoopJudge(), load_policy(DEFAULT_POLICY))
    assert pipeline.model_lanes == 2
    assert Pipeline(NoopClassifier(), NoopJudge(), load_policy(DEFAULT_POLICY)).model_lanes == 1

    async def both() -> list[BatchResult]:
        return list(
            await asyncio.gather(
                pipeline.process([comment("a", "첫 번째 댓글", 0)]),
                pipeline.process([comment("b", "두 번째 댓글", 1)]),
            )
        )

    results = asyncio.run(both())
    assert [len(r.verdicts) for r in results] == [1, 1]
    assert [len(r.dead_letters) for r in results] == [0, 0]
    asyncio.run(pipeline.close())
