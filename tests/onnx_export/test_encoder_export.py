"""Encoder export: ORT equals PyTorch, labels map onto LABEL_KEYS, int8 drift bounded, bad input refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from moderator.runtime.errors import ModelLoadError
from moderator.runtime.loader import load_classifier, load_judge
from moderator.runtime.metadata import read_metadata
from moderator.runtime.options import RuntimeOptions
from onnx_export.encoder import export_encoder
from onnx_export.errors import ExportError
from tests.fixtures.models import CORPUS, build_encoder_checkpoint
from topics.labels import LABEL_KEYS, UNSMILE_COLUMNS

CPU = RuntimeOptions(device="cpu")
TEXTS = [*CORPUS[:12], "짧다", "이 문장은 아주 길어서 잘릴 것이다 " * 30]
PAIRS = [(CORPUS[i], CORPUS[i + 1]) for i in range(0, 20, 2)]


def torch_logits(checkpoint: Path, inputs: list[Any], max_length: int) -> np.ndarray:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()
    rows = []
    with torch.inference_mode():
        for item in inputs:  # one by one: no padding on the reference side
            args = item if isinstance(item, tuple) else (item,)
            enc = tok(*args, truncation=True, max_length=max_length, return_tensors="pt")
            rows.append(model(**enc).logits[0].numpy())
    return np.stack(rows)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["bert", "electra"])
def test_multilabel_classifier_matches_pytorch(tmp_path: Path, architecture: str) -> None:
    ckpt = build_encoder_checkpoint(tmp_path / "ckpt", architecture=architecture, seed=3)
    out = export_encoder(ckpt, tmp_path / "onnx", kind="encoder-classifier", max_length=48)
    meta = read_metadata(out)
    assert meta.validation.fp32_max_abs_diff < 1e-4
    assert meta.architecture == architecture and meta.dtype == "fp32"
    model = load_classifier(out, RuntimeOptions(device="cpu", max_batch_tokens=64, max_batch_rows=3))
    result = model.predict(TEXTS)
    expected = sigmoid(torch_logits(ckpt, TEXTS, 48))
    np.testing.assert_allclose(result.probs, expected, atol=1e-4)
    assert result.truncated == [False] * (len(TEXTS) - 1) + [True]
    assert result.padded_tokens >= result.tokens > 0
    assert np.ptp(result.probs[:, 0]) > 1e-3  # the random model tells texts apart


def test_korean_permuted_labels_map_to_label_keys(tmp_path: Path) -> None:
    """UnSmile's Korean columns, in reverse order, come back in LABEL_KEYS order."""
    korean = tuple(reversed(UNSMILE_COLUMNS))
    ckpt = build_encoder_checkpoint(tmp_path / "ckpt", labels=korean, seed=4, layers=1)
    out = export_encoder(ckpt, tmp_path / "onnx", kind="encoder-classifier", max_length=32)
    assert read_metadata(out).label_keys == tuple(reversed(LABEL_KEYS))
    probs = load_classifier(out, CPU).predict(TEXTS[:4]).probs
    expected = sigmoid(torch_logits(ckpt, TEXTS[:4], 32))[:, ::-1]
    np.testing.assert_allclose(probs, expected, atol=1e-4)


def test_single_label_classifier_uses_softmax(tmp_path: Path) -> None:
    ckpt = build_encoder_checkpoint(
        tmp_path / "ckpt", problem_type="single_label_classification", seed=5, layers=1
    )
    out = export_encoder(ckpt, tmp_path / "onnx", kind="encoder-classifier", max_length=32)
    probs = load_classifier(out, CPU).predict(TEXTS[:5]).probs
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, softmax(torch_logits(ckpt, TEXTS[:5], 32)), atol=1e-4)


@pytest.mark.parametrize("labels", [("safe", "unsafe"), ("UNSAFE", "safe"), ("unsafe",)])
def test_pair_judge_matches_pytorch(tmp_path: Path, labels: tuple[str, ...]) -> None:
    ckpt = build_encoder_checkpoint(
        tmp_path / "ckpt", architecture="electra", labels=labels, seed=6, layers=1,
        problem_type="single_label_classification",
    )  # fmt: skip
    out = export_encoder(ckpt, tmp_path / "onnx", kind="encoder-pair-judge", max_length=100)
    judge = load_judge(out, RuntimeOptions(device="cpu", max_batch_tokens=80, max_batch_rows=4))
    long_pair = ("질문 있어요 " * 40, "답변 드립니다 " * 40)
    pairs = [*PAIRS, long_pair]
    result = judge.predict(pairs)
    logits = torch_logits(ckpt, pairs, 100)
    if len(labels) == 1:
        expected = sigmoid(logits[:, 0])
    else:
        expected = softmax(logits)[:, [label.lower() for label in labels].index("unsafe")]
    np.testing.assert_allclose(result.unsafe, expected, atol=1e-4)
    assert result.truncated == [False] * len(PAIRS) + [True]


@pytest.mark.slow
def test_int8_drift_is_bounded_and_recorded(tmp_path: Path) -> None:
    # 0.1: closer to trained weights than 0.3, whose outliers make int8 drift a coin toss near 0.1.
    ckpt = build_encoder_checkpoint(tmp_path / "ckpt", seed=7, hidden=64, init_range=0.1)
    fp32 = export_encoder(ckpt, tmp_path / "fp32", kind="encoder-classifier", max_length=48)
    int8 = export_encoder(
        ckpt, tmp_path / "int8", kind="encoder-classifier", max_length=48, int8=True, sample_texts=TEXTS
    )
    meta = read_metadata(int8)
    assert meta.dtype == "int8"
    assert 0 < meta.validation.quantization_drift <= 0.1
    assert meta.model_id != read_metadata(fp32).model_id
    assert (int8 / "model.onnx").stat().st_size < (fp32 / "model.onnx").stat().st_size
    a = load_classifier(fp32, CPU).predict(TEXTS).probs
    b = load_classifier(int8, CPU).predict(TEXTS).probs
    # int8 stays within the export tolerance of fp32, and a text scores the same alone or batched
    # (activations are scaled per row, not per batch)
    assert 0 < np.abs(a - b).max() <= 0.1
    alone = np.concatenate([load_classifier(int8, CPU).predict([t]).probs for t in TEXTS])
    np.testing.assert_allclose(alone, b, atol=1e-5)


def test_unsupported_architecture_is_refused(tmp_path: Path) -> None:
    from transformers import GPT2Config

    ckpt = tmp_path / "gpt2"
    GPT2Config(n_layer=1, n_embd=16, n_head=2).save_pretrained(ckpt)
    with pytest.raises(ExportError, match="model_type 'gpt2' is not a supported encoder"):
        export_encoder(ckpt, tmp_path / "out", kind="encoder-classifier", max_length=32)


def test_not_a_checkpoint_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="config.json missing"):
        export_encoder(tmp_path, tmp_path / "out", kind="encoder-classifier", max_length=32)


def test_generic_labels_are_refused_with_the_fix(tmp_path: Path) -> None:
    ckpt = build_encoder_checkpoint(
        tmp_path / "ckpt", labels=tuple(f"LABEL_{i}" for i in range(10)), layers=1
    )
    with pytest.raises(ExportError, match="not UnSmile label keys.*Fix: name the model's labels"):
        export_encoder(ckpt, tmp_path / "out", kind="encoder-classifier", max_length=32)


def test_judge_without_unsafe_label_is_refused(tmp_path: Path) -> None:
    ckpt = build_encoder_checkpoint(tmp_path / "ckpt", labels=("ok", "bad"), layers=1)
    with pytest.raises(ExportError, match="pair judge needs labels"):
        export_encoder(ckpt, tmp_path / "out", kind="encoder-pair-judge", max_length=32)


def test_max_length_over_positions_is_refused(tmp_path: Path) -> None:
    ckpt = build_encoder_checkpoint(tmp_path / "ckpt", layers=1)
    with pytest.raises(ExportError, match="exceeds the model's 128 positions"):
        export_encoder(ckpt, tmp_path / "out", kind="encoder-classifier", max_length=512)


def test_metadata_records_export_facts(tiny_classifier_dir: Path) -> None:
    raw = json.loads((tiny_classifier_dir / "metadata.json").read_text())
    assert raw["kind"] == "encoder-classifier"
    assert raw["model_id"].startswith("sha256-")
    assert raw["opset"] >= 17 and raw["max_length"] == 64
    assert raw["label_keys"] == list(LABEL_KEYS)
    assert raw["validation"]["max_abs_diff"] < 1e-4
    assert set(raw["files"]) == {"model.onnx", "tokenizer.json"}


@pytest.mark.slow
def test_fp16_export_runs_and_records_its_error(tmp_path: Path) -> None:
    ckpt = build_encoder_checkpoint(tmp_path / "ckpt", seed=8, layers=1)
    out = export_encoder(ckpt, tmp_path / "fp16", kind="encoder-classifier", max_length=48, fp16=True)
    meta = read_metadata(out)
    assert meta.dtype == "fp16"
    assert meta.validation.fp32_max_abs_diff < 1e-4 < meta.validation.max_abs_diff <= 0.05
    probs = load_classifier(out, CPU).predict(TEXTS).probs
    np.testing.assert_allclose(probs, sigmoid(torch_logits(ckpt, TEXTS, 48)), atol=0.02)


def test_external_data_export_loads_and_is_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Models over 2 GB keep weights in model.onnx_data; forced here with a zero threshold."""
    import onnx_export.quantize as quantize

    ckpt = build_encoder_checkpoint(tmp_path / "ckpt", seed=9, layers=1)
    plain = export_encoder(ckpt, tmp_path / "plain", kind="encoder-classifier", max_length=32)
    monkeypatch.setattr(quantize, "_EXTERNAL_DATA_THRESHOLD", 0)
    split = export_encoder(ckpt, tmp_path / "split", kind="encoder-classifier", max_length=32)
    meta = read_metadata(split)
    assert set(meta.files) == {"model.onnx", "model.onnx_data", "tokenizer.json"}
    assert (split / "model.onnx").stat().st_size < (split / "model.onnx_data").stat().st_size
    np.testing.assert_allclose(
        load_classifier(split, CPU).predict(TEXTS).probs,
        load_classifier(plain, CPU).predict(TEXTS).probs,
        atol=1e-6,
    )
    data = split / "model.onnx_data"
    data.write_bytes(data.read_bytes()[:-100])
    with pytest.raises(ModelLoadError, match="truncated"):
        load_classifier(split, CPU)


def test_cli_exports_an_encoder_and_reports_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from onnx_export.cli import main

    ckpt = build_encoder_checkpoint(tmp_path / "ckpt", labels=("safe", "unsafe"), layers=1)
    out = tmp_path / "judge"
    assert main(["encoder", str(ckpt), str(out), "--kind", "encoder-pair-judge", "--max-length", "64"]) == 0
    assert "encoder-pair-judge fp32 model_id=sha256-" in capsys.readouterr().out
    assert read_metadata(out).label_keys == ("safe", "unsafe")
    assert main(["encoder", str(tmp_path / "missing"), str(tmp_path / "x")]) == 2
    assert "config.json missing" in capsys.readouterr().err
