"""The encoder-multitask kind: export, load once for both seams, normalise like training, one pass per reply."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from moderator.core.normalize import NORMALIZER_ID, normalize_text
from moderator.runtime.errors import ModelLoadError
from moderator.runtime.loader import load_classifier, load_judge
from moderator.runtime.metadata import read_metadata
from moderator.runtime.multitask import SCORE_KEYS, MultitaskClassifier, MultitaskJudge
from moderator.runtime.options import RuntimeOptions
from onnx_export.encoder import export_encoder
from onnx_export.errors import ExportError
from tests.fixtures.models import CORPUS, build_encoder_checkpoint
from tests.onnx_export.test_encoder_export import sigmoid, torch_logits
from topics.labels import LABEL_KEYS, MULTITASK_KEYS, SAFETY_KEYS

pytest.importorskip("torch")

CPU = RuntimeOptions(device="cpu", max_batch_tokens=64, max_batch_rows=3)
TEXTS = [*CORPUS[:8], "시.발 진짜", "ㅅㅣㅂㅏㄹ 놈아"]
PAIRS = [(CORPUS[i], CORPUS[i + 1]) for i in range(0, 12, 2)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("mt")
    ckpt = build_encoder_checkpoint(tmp / "ckpt", labels=MULTITASK_KEYS, seed=7)
    out = export_encoder(
        ckpt, tmp / "onnx", kind="encoder-multitask", max_length=48, normalizer=NORMALIZER_ID
    )
    return ckpt, out


def test_export_records_kind_labels_and_normaliser(exported: tuple[Path, Path]) -> None:
    _, out = exported
    meta = read_metadata(out)
    assert meta.kind == "encoder-multitask"
    assert meta.label_keys == MULTITASK_KEYS
    assert meta.normalizer == NORMALIZER_ID
    assert meta.validation.fp32_max_abs_diff < 1e-4


def test_comments_and_replies_match_pytorch_on_normalised_text(exported: tuple[Path, Path]) -> None:
    ckpt, out = exported
    classifier = load_classifier(out, CPU)
    judge = load_judge(out, CPU)
    assert isinstance(classifier, MultitaskClassifier) and isinstance(judge, MultitaskJudge)
    assert classifier.multitask is judge.multitask  # one session for both seams
    model = classifier.multitask
    got = model.score_comments(TEXTS)
    expected = sigmoid(torch_logits(ckpt, [normalize_text(t) for t in TEXTS], 48))
    np.testing.assert_allclose(got.probs, expected, atol=1e-4)
    assert got.scores.shape == (len(TEXTS), len(SCORE_KEYS))
    assert (*LABEL_KEYS, *SAFETY_KEYS) == SCORE_KEYS
    np.testing.assert_allclose(classifier.predict(TEXTS).probs, expected[:, : len(LABEL_KEYS)], atol=1e-4)
    replies = model.score_replies(PAIRS)
    expected_pairs = sigmoid(
        torch_logits(ckpt, [(normalize_text(p), normalize_text(r)) for p, r in PAIRS], 48)
    )
    np.testing.assert_allclose(replies.probs, expected_pairs, atol=1e-4)
    np.testing.assert_allclose(judge.predict(PAIRS).unsafe, expected_pairs[:, -1], atol=1e-4)
    # an obfuscated spelling scores exactly like its plain spelling
    plain, spelled = model.score_comments(["시발 놈아", "ㅅㅣㅂㅏㄹ 놈아"]).probs
    np.testing.assert_allclose(plain, spelled, atol=1e-6)
    empty = model.score_replies([])
    assert empty.probs.shape == (0, len(MULTITASK_KEYS))


def test_unknown_normaliser_and_wrong_labels_are_refused(exported: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = exported
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in out.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    raw = json.loads((copy / "metadata.json").read_text())
    raw["normalizer"] = "ko-obfuscation-v0"
    (copy / "metadata.json").write_text(json.dumps(raw))
    with pytest.raises(ModelLoadError, match="normaliser"):
        load_classifier(copy, CPU)
    ckpt = build_encoder_checkpoint(tmp_path / "ten", labels=LABEL_KEYS, seed=1)
    with pytest.raises(ExportError, match="MULTITASK_KEYS"):
        export_encoder(ckpt, tmp_path / "bad", kind="encoder-multitask", max_length=32)


def test_comments_are_served_at_their_own_training_length(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    _, out = exported
    copy = tmp_path / "short"
    copy.mkdir()
    for f in out.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    raw = json.loads((copy / "metadata.json").read_text())
    raw["comment_max_length"] = 8
    (copy / "metadata.json").write_text(json.dumps(raw))
    model = load_classifier(copy, CPU).multitask  # type: ignore[attr-defined]
    text = " ".join(CORPUS[:2])
    assert model.score_comments([text]).truncated == [True]
    assert model.score_replies([("질문", text)]).truncated == [False]  # pairs keep max_length (48)
    full = load_classifier(out, CPU).multitask  # type: ignore[attr-defined]
    assert full.score_comments([text]).truncated == [False]


def test_two_lanes_score_exactly_like_one(exported: tuple[Path, Path]) -> None:
    """Batches spread over lanes (and callers on several threads) give the single lane's scores."""
    from concurrent.futures import ThreadPoolExecutor

    from moderator.runtime.multitask import EncoderMultitask

    _, out = exported
    one = EncoderMultitask(
        out, read_metadata(out), RuntimeOptions(device="cpu", max_batch_tokens=64, max_batch_rows=3, lanes=1)
    )
    two = EncoderMultitask(
        out, read_metadata(out), RuntimeOptions(device="cpu", max_batch_tokens=64, max_batch_rows=3, lanes=2)
    )
    assert (one.lanes.count, two.lanes.count) == (1, 2)
    assert two.session.session.get_session_options().intra_op_num_threads == 1
    # a lone one-batch call runs on a session with both lanes' threads, sharing the lanes' weights
    assert one.solo_session is None and two.solo_session is not None
    assert two.solo_session.session.get_session_options().intra_op_num_threads == 2
    solo_before = two.lanes.solo_runs
    np.testing.assert_array_equal(two.score_comments(TEXTS[:1]).probs, one.score_comments(TEXTS[:1]).probs)
    assert two.lanes.solo_runs == solo_before + 1
    expected = one.score_comments(TEXTS).probs
    with ThreadPoolExecutor(3) as callers:
        results = list(callers.map(lambda _: two.score_comments(TEXTS), range(6)))
    for got in results:
        np.testing.assert_array_equal(got.probs, expected)
    np.testing.assert_array_equal(two.score_replies(PAIRS).probs, one.score_replies(PAIRS).probs)
    two.lanes.close()


def test_shared_weights_are_read_once_or_not_at_all(exported: tuple[Path, Path], tmp_path: Path) -> None:
    from moderator.runtime.session import SHARED_INITIALIZER_BYTES, shared_initializers

    _, out = exported
    weights = shared_initializers(out / "model.onnx")
    assert weights and all(v.numpy().nbytes > SHARED_INITIALIZER_BYTES for v in weights.values())
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not a model")
    assert shared_initializers(broken) is None  # the session's own load names the problem
