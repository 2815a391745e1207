"""Refitting the safety-category rows of a multitask classifier: only those rows move, and they learn
the known negatives (a tiny backbone built in the test, synthetic rows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from onnx_export.backbone import build_backbone  # noqa: E402
from onnx_export.train import sources as src  # noqa: E402
from onnx_export.train.multitask import MultitaskConfig  # noqa: E402
from onnx_export.train.safety_heads import HeadsConfig, _pick_rows, fit_row, refit_rows  # noqa: E402
from tests.onnx_export.test_backbone import write_image, write_tokenizer  # noqa: E402
from topics.labels import MULTITASK_KEYS, SAFETY_KEYS  # noqa: E402

COL = src.COL


def _rows(n: int) -> src.Rows:
    """Violence replies ("욕설 …") and weapons replies ("hello …", a known violence negative only
    through the implicit negatives), plus clean comments."""
    rows = src.Rows()
    for i in range(n):
        rows.add(
            "안녕하세요", "욕설 욕설" + " 욕설" * (i % 3), src.unsafe_targets("violence"), "tpl_violence"
        )
        weapons = src.unsafe_targets("weapons")
        weapons[COL["violence"]] = 0.0  # as if violence were ruled out for it
        rows.add("안녕하세요", "hello hello" + " hello" * (i % 3), weapons, "tpl_weapons")
        rows.add("안녕하세요" * (1 + i % 2), None, src.all_clean(), "clean")
    return rows


@pytest.fixture(scope="module")
def model_and_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, object]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    d = tmp_path_factory.mktemp("bb")
    write_image(d / "m.bin", np.random.default_rng(5))
    write_tokenizer(d / "tokenizer.json")
    backbone = build_backbone(d / "m.bin", d / "tokenizer.json", ["안녕하세요 욕설 hello"], d / "backbone")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        backbone, num_labels=len(MULTITASK_KEYS), problem_type="multi_label_classification"
    )
    return model, AutoTokenizer.from_pretrained(backbone)


def test_only_the_safety_rows_move_and_they_separate_the_categories(model_and_tokenizer: tuple) -> None:
    model, tok = model_and_tokenizer
    w_before = model.classifier.weight.detach().clone()
    b_before = model.classifier.bias.detach().clone()
    report = refit_rows(model, tok, _rows(20), {"requests": _rows(5)}, MultitaskConfig(), HeadsConfig(l2=0.0))
    w_after, b_after = model.classifier.weight.detach(), model.classifier.bias.detach()
    safety = [COL[k] for k in SAFETY_KEYS]
    others = [j for j in range(len(MULTITASK_KEYS)) if j not in safety]
    assert torch.equal(w_after[others], w_before[others]) and torch.equal(b_after[others], b_before[others])
    assert not torch.equal(w_after[COL["violence"]], w_before[COL["violence"]])
    assert report["fitted"]["violence"]["moved"] > 0
    assert report["dev_after"]["violence"]["auroc_among_harmful"] == 1.0
    assert report["dev_after"]["weapons"]["auroc"] == 1.0
    # sexual_minors: only known negatives here, so it keeps its weights
    assert report["fitted"]["sexual_minors"] == {"positives": 0, "negatives": 60, "moved": 0.0}


def test_fit_row_ignores_unknown_targets_and_stays_near_its_start_under_l2() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    known = np.ones(200, np.float32)
    known[:50] = 0.0
    flipped = y.copy()
    flipped[:50] = 1 - flipped[:50]  # labels of unknown rows must not matter
    w0 = np.zeros(8, np.float32)
    w1, b1 = fit_row(x, y, known, w0, 0.0, 1.0, 0.0, 100)
    w2, b2 = fit_row(x, flipped, known, w0, 0.0, 1.0, 0.0, 100)
    assert np.allclose(w1, w2, atol=1e-4) and abs(b1 - b2) < 1e-4
    assert np.argmax(np.abs(w1)) == 0 and w1[0] > 0
    w3, _ = fit_row(x, y, known, w0, 0.0, 1.0, 10.0, 100)
    assert np.linalg.norm(w3) < 0.1 * np.linalg.norm(w1)


def test_pick_rows_keeps_every_known_positive_and_caps_the_rest() -> None:
    rows = _rows(30)  # 60 harmful (positives), 30 clean (safety known 0)
    rows.add("no safety key known", None, {COL["profanity"]: 1.0}, "curse")
    picked = _pick_rows(rows, 70, 1)
    assert len(picked) == 70 and len(rows) - 1 not in picked
    y, m = rows.targets()
    positive = [i for i in range(len(rows)) if (y[i, src.SAFETY_COLS] * m[i, src.SAFETY_COLS]).any()]
    assert set(positive) <= set(picked)


def test_cli_refuses_a_directory_that_is_not_a_run_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from onnx_export.train.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["safety-heads", "--run", str(tmp_path), "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    assert "is not a multitask run directory" in capsys.readouterr().err


def test_features_are_cached_per_row_and_only_new_rows_are_computed(
    model_and_tokenizer: tuple, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, tok = model_and_tokenizer
    state = {k: v.clone() for k, v in model.classifier.state_dict().items()}
    cache = tmp_path / "features.npz"
    first = refit_rows(model, tok, _rows(6), {"requests": _rows(2)}, MultitaskConfig(), HeadsConfig(), cache)
    # 18 train and 6 dev rows, 8 distinct texts: each run once, the dev rows all seen in train
    assert cache.is_file() and '"computed": 8' in capsys.readouterr().out
    model.classifier.load_state_dict(state)
    again = refit_rows(model, tok, _rows(6), {"requests": _rows(2)}, MultitaskConfig(), HeadsConfig(), cache)
    assert '"computed": 0' in capsys.readouterr().out
    assert again["fitted"] == first["fitted"] and again["dev_after"] == first["dev_after"]
    model.classifier.load_state_dict(state)
    more = _rows(6)
    more.add("처음 보는 문장", None, src.all_clean(), "clean")
    refit_rows(model, tok, more, {"requests": _rows(2)}, MultitaskConfig(), HeadsConfig(), cache)
    assert '"computed": 1' in capsys.readouterr().out  # only the new text
    model.classifier.load_state_dict(state)
    # features of another encoder are never read: the cache starts over
    with torch.no_grad():
        model.bert.pooler.dense.bias.add_(1.0)
    refit_rows(model, tok, _rows(6), {"requests": _rows(2)}, MultitaskConfig(), HeadsConfig(), cache)
    assert '"computed": 8' in capsys.readouterr().out
    with torch.no_grad():
        model.bert.pooler.dense.bias.sub_(1.0)
    model.classifier.load_state_dict(state)


def test_unsafe_refit_moves_only_that_row_and_learns_the_safe_pairs(model_and_tokenizer: tuple) -> None:
    model, tok = model_and_tokenizer
    state = {k: v.clone() for k, v in model.classifier.state_dict().items()}
    rows = _rows(20)
    for i in range(20):  # safe answers that share the harmful replies' prompt (the risky-word rows)
        rows.add("안녕하세요", "hello 욕설" + " hello" * (i % 3), src.all_clean(), "tpl_risky_words")
    w_before = model.classifier.weight.detach().clone()
    report = refit_rows(
        model, tok, rows, {"requests": _rows(5)}, MultitaskConfig(), HeadsConfig(l2=0.0, keys="unsafe")
    )
    w_after = model.classifier.weight.detach()
    moved = [j for j in range(len(MULTITASK_KEYS)) if not torch.equal(w_after[j], w_before[j])]
    assert moved == [COL["unsafe"]]
    assert report["fitted"]["unsafe"]["negatives"] == 40 and report["fitted"]["unsafe"]["positives"] == 40
    assert set(report["dev_after"]) == {"unsafe"} and "requests" in report["dev_after"]["unsafe"]["sources"]
    model.classifier.load_state_dict(state)


def test_pick_rows_for_unsafe_takes_reply_pairs_before_comments() -> None:
    rows = src.Rows()
    for i in range(10):
        rows.add(f"comment {i}", None, src.all_clean(), "unsmile")
        rows.add(f"question {i}", f"answer {i}", src.all_clean(), "do_not_answer")
    picked = _pick_rows(rows, 12, 1, ["unsafe"])
    pairs = [i for i in picked if rows.second[i] is not None]
    assert len(picked) == 12 and len(pairs) == 10


def test_keys_must_be_refittable_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="--keys takes some of"):
        HeadsConfig(keys="unsafe,clean").key_list()
    assert HeadsConfig(keys=" unsafe , drugs ").key_list() == ["unsafe", "drugs"]
    from onnx_export.train.cli import main

    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "train_summary.json").write_text("{}")
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "safety-heads",
                "--data",
                str(tmp_path),
                "--run",
                str(tmp_path),
                "--out",
                str(tmp_path / "o"),
                "--keys",
                "profanity",
            ]
        )
    assert exc.value.code == 2 and "--keys takes some of" in capsys.readouterr().err
