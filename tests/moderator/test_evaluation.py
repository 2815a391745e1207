"""numpy metrics in ``moderator.evaluation`` agree with scikit-learn; readers parse the shipped formats."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from moderator.evaluation import (
    auroc,
    best_accuracy_threshold,
    best_f1_threshold,
    binary_metrics,
    evaluate_classifier,
    evaluate_judge,
    format_report,
    lrap,
    multilabel_metrics,
    read_comments,
    read_pairs,
)
from moderator.runtime.base import ClassifierOutput, JudgeOutput
from topics.labels import LABEL_KEYS, UNSMILE_COLUMNS

metrics = pytest.importorskip("sklearn.metrics")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multilabel_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random((200, 10)) < 0.2).astype(int)
    y[:5] = 0  # rows with no label: LRAP counts them as 1, like sklearn
    scores = np.clip(y * 0.3 + rng.random((200, 10)) * 0.8, 0, 1)
    scores[10:20, :3] = 0.5  # ties
    th = rng.uniform(0.3, 0.7, size=10)
    got = multilabel_metrics(y, scores, th)
    pred = scores >= th
    p, r, f, s = metrics.precision_recall_fscore_support(y, pred, average=None, zero_division=0)
    for j in range(10):
        assert got["per_label"][j]["precision"] == pytest.approx(p[j])
        assert got["per_label"][j]["recall"] == pytest.approx(r[j])
        assert got["per_label"][j]["f1"] == pytest.approx(f[j])
        assert got["per_label"][j]["support"] == s[j]
    assert got["macro_f1"] == pytest.approx(metrics.f1_score(y, pred, average="macro", zero_division=0))
    assert got["micro_f1"] == pytest.approx(metrics.f1_score(y, pred, average="micro", zero_division=0))
    assert got["lrap"] == pytest.approx(metrics.label_ranking_average_precision_score(y, scores))
    assert lrap(y, scores) == pytest.approx(metrics.label_ranking_average_precision_score(y, scores))


@pytest.mark.parametrize("seed", [0, 1])
def test_auroc_matches_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=300)
    s = np.round(y * 0.2 + rng.random(300), 1)  # coarse scores → many ties
    assert auroc(y, s) == pytest.approx(metrics.roc_auc_score(y, s))
    assert np.isnan(auroc(np.ones(5), np.arange(5.0)))


def test_binary_metrics_and_thresholds() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=400)
    s = np.clip(y * 0.35 + rng.random(400) * 0.65, 0, 1)
    m = binary_metrics(y, s, 0.5)
    assert m["accuracy"] == pytest.approx(metrics.accuracy_score(y, s >= 0.5))
    assert m["f1"] == pytest.approx(metrics.f1_score(y, s >= 0.5))
    t = best_f1_threshold(y, s)
    grid = np.linspace(0, 1, 501)
    assert metrics.f1_score(y, s >= t) >= max(metrics.f1_score(y, s >= g) for g in grid) - 1e-12
    ta = best_accuracy_threshold(y, s)
    assert np.mean((s >= ta) == y) >= max(np.mean((s >= g) == y) for g in grid) - 1e-12
    assert best_f1_threshold(np.zeros(4), np.arange(4.0)) == 0.5


def test_f1_tolerance_takes_the_highest_level_on_a_flat_stretch() -> None:
    # 20 positives at 0.9, 2 negatives at 0.5, 3 positives at 0.4. Cutting at 0.4 catches all 23 with
    # 2 false alarms (F1 0.958); cutting between 0.5 and 0.9 catches 20 with none (F1 0.930).
    y = np.array([1] * 20 + [0, 0] + [1, 1, 1])
    s = np.array([0.9] * 20 + [0.5, 0.5] + [0.4, 0.4, 0.4])
    low = best_f1_threshold(y, s)
    assert low <= 0.4
    assert best_f1_threshold(y, s, tolerance=0.0) == low
    assert best_f1_threshold(y, s, tolerance=0.01) == low  # 0.028 apart: not flat enough
    high = best_f1_threshold(y, s, tolerance=0.03)
    assert 0.5 < high <= 0.9
    assert metrics.f1_score(y, s >= high) == pytest.approx(40 / 43)


class _FixedClassifier:
    """Returns preset probabilities keyed by text: the evaluation plumbing is what is under test."""

    model_id = "fixed"
    provider = "test"

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    def predict(self, texts: Sequence[str]) -> ClassifierOutput:
        return ClassifierOutput(np.asarray([self.table[t] for t in texts], np.float32), [False] * len(texts))


class _FixedJudge:
    model_id = "fixed-judge"
    provider = "test"

    def __init__(self, table: dict[tuple[str, str], float]) -> None:
        self.table = table

    def predict(self, pairs: Sequence[tuple[str, str]]) -> JudgeOutput:
        return JudgeOutput(np.asarray([self.table[p] for p in pairs], np.float32), [False] * len(pairs))


def test_evaluate_classifier_reads_tsv_and_jsonl(tmp_path: Path) -> None:
    rows = [("여자는 집에나 있어", "women_family"), ('그냥 "좋은" 하루', "clean"), ("ㅅㅂ 뭐래", "profanity")]
    tsv = tmp_path / "u.tsv"
    lines = ["문장\t" + "\t".join(UNSMILE_COLUMNS) + "\t개인지칭"]
    for text, key in rows:
        lines.append(text + "\t" + "\t".join("1" if k == key else "0" for k in LABEL_KEYS) + "\t0")
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    jsonl = tmp_path / "u.jsonl"
    jsonl.write_text(
        "".join(json.dumps({"text": t, "labels": [k]}, ensure_ascii=False) + "\n" for t, k in rows)
    )
    assert read_comments(tsv).texts == read_comments(jsonl).texts == [t for t, _ in rows]
    np.testing.assert_array_equal(read_comments(tsv).labels, read_comments(jsonl).labels)
    table = {t: [0.9 if k == key else 0.1 for k in LABEL_KEYS] for t, key in rows}
    table[rows[2][0]][LABEL_KEYS.index("clean")] = 0.95  # one wrong extra label
    report = evaluate_classifier(_FixedClassifier(table), tsv, {k: 0.5 for k in LABEL_KEYS})
    assert report["per_label"]["women_family"]["f1"] == 1.0
    assert report["per_label"]["clean"]["precision"] == 0.5
    assert report["micro_precision"] == pytest.approx(3 / 4)
    assert report["lrap"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert "macro F1" in format_report(report)
    in_memory = evaluate_classifier(
        _FixedClassifier(table), read_comments(jsonl), {k: 0.5 for k in LABEL_KEYS}
    )
    assert in_memory["file"] == "<in memory>"
    for key in ("n", "macro_f1", "micro_f1", "lrap", "per_label"):  # per-label AUROC holds NaNs here
        assert in_memory[key] == report[key], key
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "x", "labels": ["nonsense"]}) + "\n")
    with pytest.raises(ValueError, match="unknown labels"):
        read_comments(bad)


def test_evaluate_judge_reads_kosbi_and_jsonl(tmp_path: Path) -> None:
    kosbi = tmp_path / "k.json"
    rows = [
        ("요즘 어때?", "좋아요", "safe"),
        ("저 사람들은?", "다 범죄자야", "unsafe"),
        ("왜?", "몰라", "safe"),
    ]
    kosbi.write_text(
        json.dumps(
            [{"context": c, "sentence": s, "sentence_label": lab} for c, s, lab in rows], ensure_ascii=False
        )
    )
    jsonl = tmp_path / "k.jsonl"
    jsonl.write_text(
        "".join(json.dumps({"prompt": c, "reply": s, "unsafe": lab == "unsafe"}) + "\n" for c, s, lab in rows)
    )
    assert read_pairs(kosbi).replies == read_pairs(jsonl).replies
    judge = _FixedJudge({(c, s): p for (c, s, _), p in zip(rows, [0.2, 0.7, 0.6], strict=True)})
    report = evaluate_judge(judge, kosbi, 0.5)
    assert report["accuracy"] == pytest.approx(2 / 3)
    assert report["auroc"] == pytest.approx(1.0)
    assert "accuracy" in format_report(report)
    in_memory = evaluate_judge(judge, read_pairs(jsonl), 0.5, rows=[1, 2])
    assert in_memory["n"] == 2 and in_memory["accuracy"] == pytest.approx(1 / 2)
