"""Loader and encoder runtime: order, batching, truncation, providers, and every way a directory breaks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from moderator.runtime.base import ReplyJudge, TextClassifier
from moderator.runtime.errors import ModelLoadError, ProviderError
from moderator.runtime.loader import load_classifier, load_judge
from moderator.runtime.options import RuntimeOptions
from moderator.runtime.session import create_session
from topics.labels import LABEL_KEYS

CPU = RuntimeOptions(device="cpu")
TEXTS = [
    "오늘 날씨 정말 좋다, 산책 가자!",
    "너 같은 놈은 그냥 꺼져라",
    "hi",
    "이 영화 진짜 재밌네요 추천합니다 " * 3,
    "Have a nice day everyone",
    "경상도 사람들은 다 그렇지 뭐",
    "긴 글 " * 200,
]


def copy_dir(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "model"
    shutil.copytree(src, dst)
    return dst


def test_classifier_implements_the_seam(tiny_classifier_dir: Path) -> None:
    model = load_classifier(tiny_classifier_dir, CPU)
    assert isinstance(model, TextClassifier)
    assert model.provider == "cpu"
    assert model.model_id == json.loads((tiny_classifier_dir / "metadata.json").read_text())["model_id"]
    out = model.predict(TEXTS)
    assert out.probs.shape == (len(TEXTS), 10) and out.probs.dtype == np.float32
    assert ((out.probs >= 0) & (out.probs <= 1)).all()
    assert out.truncated == [False] * 6 + [True]
    assert model.predict([]).probs.shape == (0, 10)


def test_rows_come_back_in_input_order_across_batches(tiny_classifier_dir: Path) -> None:
    one_by_one = np.concatenate([load_classifier(tiny_classifier_dir, CPU).predict([t]).probs for t in TEXTS])
    small = load_classifier(
        tiny_classifier_dir, RuntimeOptions(device="cpu", max_batch_tokens=40, max_batch_rows=2)
    )
    out = small.predict(TEXTS)
    np.testing.assert_allclose(out.probs, one_by_one, atol=1e-5)
    # one lane: a call within the token budget stays one batch (lanes would halve it, one half per lane)
    whole = load_classifier(tiny_classifier_dir, RuntimeOptions(device="cpu", lanes=1)).predict(TEXTS)
    # Sorting by length wastes less padding than one batch padded to the longest row.
    assert out.tokens == whole.tokens
    assert out.padded_tokens < whole.padded_tokens
    assert whole.padded_tokens == len(TEXTS) * 64


def test_judge_implements_the_seam(tiny_judge_dir: Path) -> None:
    judge = load_judge(tiny_judge_dir, CPU)
    assert isinstance(judge, ReplyJudge)
    pairs = [
        ("안녕?", "안녕하세요!"),
        ("How do I bake bread?", "Mix flour and water."),
        ("q " * 80, "a " * 80),
    ]
    out = judge.predict(pairs)
    assert out.unsafe.shape == (3,) and out.truncated == [False, False, True]
    single = [judge.predict([p]).unsafe[0] for p in pairs]
    np.testing.assert_allclose(out.unsafe, single, atol=1e-5)
    assert judge.predict([]).unsafe.shape == (0,)


def test_kind_mismatch_names_the_fix(tiny_classifier_dir: Path, tiny_judge_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="not a reply judge"):
        load_judge(tiny_classifier_dir, CPU)
    with pytest.raises(ModelLoadError, match="not a classifier"):
        load_classifier(tiny_judge_dir, CPU)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist") as err:
        load_classifier(tmp_path / "nope", CPU)
    assert err.value.path == tmp_path / "nope"


def test_missing_metadata(tiny_classifier_dir: Path, tmp_path: Path) -> None:
    d = copy_dir(tiny_classifier_dir, tmp_path)
    (d / "metadata.json").unlink()
    with pytest.raises(ModelLoadError, match=r"metadata.json is missing.*Fix: re-export"):
        load_classifier(d, CPU)


def test_corrupt_metadata(tiny_classifier_dir: Path, tmp_path: Path) -> None:
    d = copy_dir(tiny_classifier_dir, tmp_path)
    (d / "metadata.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        load_classifier(d, CPU)


def test_truncated_model_file(tiny_classifier_dir: Path, tmp_path: Path) -> None:
    d = copy_dir(tiny_classifier_dir, tmp_path)
    data = (d / "model.onnx").read_bytes()
    (d / "model.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated") as err:
        load_classifier(d, CPU)
    assert err.value.path == d / "model.onnx"


def test_corrupt_model_file_of_the_right_size(tiny_classifier_dir: Path, tmp_path: Path) -> None:
    d = copy_dir(tiny_classifier_dir, tmp_path)
    size = (d / "model.onnx").stat().st_size
    (d / "model.onnx").write_bytes(b"\x07garbage" * (size // 8) + b"\x00" * (size % 8))
    with pytest.raises(ModelLoadError, match="ONNX Runtime cannot load"):
        load_classifier(d, CPU)


def test_label_count_mismatch(tiny_classifier_dir: Path, tmp_path: Path) -> None:
    d = copy_dir(tiny_classifier_dir, tmp_path)
    raw = json.loads((d / "metadata.json").read_text())
    raw["label_keys"] = raw["label_keys"][:-1]
    (d / "metadata.json").write_text(json.dumps(raw))
    with pytest.raises(ModelLoadError, match=r"missing \['clean'\]"):
        load_classifier(d, CPU)


def test_unknown_format_version(tiny_classifier_dir: Path, tmp_path: Path) -> None:
    d = copy_dir(tiny_classifier_dir, tmp_path)
    raw = json.loads((d / "metadata.json").read_text())
    raw["format_version"] = 99
    (d / "metadata.json").write_text(json.dumps(raw))
    with pytest.raises(ModelLoadError, match="format_version 99"):
        load_classifier(d, CPU)


def test_tokenizer_from_another_model(tiny_classifier_dir: Path, tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models

    d = copy_dir(tiny_classifier_dir, tmp_path)
    other = Tokenizer(models.WordLevel({f"w{i}": i for i in range(5000)}, unk_token="w0"))
    other.save(str(d / "tokenizer.json"))
    raw = json.loads((d / "metadata.json").read_text())
    raw["files"]["tokenizer.json"] = (d / "tokenizer.json").stat().st_size  # same size: only vocab can tell
    (d / "metadata.json").write_text(json.dumps(raw))
    with pytest.raises(ModelLoadError, match="belongs to another model"):
        load_classifier(d, CPU)


def test_cuda_requested_without_cuda_fails_loudly(tiny_classifier_dir: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has onnxruntime-gpu; covered by the fallback check below")
    with pytest.raises(ProviderError, match="moderator\\[gpu\\]"):
        create_session(tiny_classifier_dir / "model.onnx", RuntimeOptions(device="cuda"))
    assert create_session(tiny_classifier_dir / "model.onnx", RuntimeOptions(device="auto")).provider == "cpu"


def test_runtime_loads_and_predicts_without_torch_or_transformers(
    tiny_classifier_dir: Path, tiny_judge_dir: Path
) -> None:
    """The worker image has no torch: loading and scoring must not import it (or the exporter)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from moderator.runtime.loader import load_classifier, load_judge\n"
        "from moderator.runtime.options import RuntimeOptions\n"
        "o = RuntimeOptions(device='cpu')\n"
        f"load_classifier(Path({str(tiny_classifier_dir)!r}), o).predict(['안녕'])\n"
        f"load_judge(Path({str(tiny_judge_dir)!r}), o).predict([('a', 'b')])\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'optimum', 'onnx_export')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[3])


def test_graph_that_does_not_match_metadata_fails_at_load(tiny_judge_dir: Path, tmp_path: Path) -> None:
    """A pair judge's 2-logit graph relabelled as a ten-label classifier is caught before any batch."""
    d = copy_dir(tiny_judge_dir, tmp_path)
    raw = json.loads((d / "metadata.json").read_text())
    raw["kind"] = "encoder-classifier"
    raw["label_keys"] = list(LABEL_KEYS)
    (d / "metadata.json").write_text(json.dumps(raw))
    with pytest.raises(ModelLoadError, match=r"logits of shape \(1, 2\) but metadata.json lists 10 labels"):
        load_classifier(d, CPU)


def test_silent_cuda_fallback_is_caught(
    tiny_classifier_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """onnxruntime-gpu without CUDA libraries lists CUDA, then builds a CPU session: the factory notices."""
    import moderator.runtime.session as session_module

    monkeypatch.setattr(
        session_module.ort,
        "get_available_providers",
        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    with pytest.raises(ProviderError, match="asked for CUDA but the session runs on"):
        create_session(tiny_classifier_dir / "model.onnx", RuntimeOptions(device="cuda"))
    with caplog.at_level("WARNING", logger="moderator.runtime.session"):
        model = load_classifier(tiny_classifier_dir, RuntimeOptions(device="auto"))
    assert model.provider == "cpu"
    assert "falls back to CPU" in caplog.text
    assert model.predict(["안녕"]).probs.shape == (1, 10)


def test_batch_token_budget_follows_the_provider_unless_set() -> None:
    from moderator.runtime.options import CPU_BATCH_TOKENS, GPU_BATCH_TOKENS

    auto = RuntimeOptions()
    assert auto.batch_tokens("cpu") == CPU_BATCH_TOKENS < auto.batch_tokens("cuda") == GPU_BATCH_TOKENS
    assert RuntimeOptions(max_batch_tokens=300).batch_tokens("cuda") == 300


def test_every_metadata_kind_has_one_registry_entry_with_its_role() -> None:
    from moderator.runtime.loader import KINDS
    from moderator.runtime.metadata import CLASSIFIER_KINDS, JUDGE_KINDS, MODEL_KINDS

    assert set(KINDS) == set(MODEL_KINDS)
    assert {k for k, v in KINDS.items() if v.role in ("classifier", "both")} == CLASSIFIER_KINDS
    assert {k for k, v in KINDS.items() if v.role in ("judge", "both")} == JUDGE_KINDS
    for entry in KINDS.values():
        module, _, name = entry.implementation.partition(":")
        assert callable(getattr(__import__(module, fromlist=[name]), name))
