"""Scoring shipped models on labelled files, with numpy only (the worker carries no sklearn).

``moderator eval`` uses :func:`evaluate_classifier` / :func:`evaluate_judge`; the training commands
use the same metric functions to pick per-label thresholds on dev, so the figures in the model cards
and the figures ``moderator eval`` prints come from one implementation.

Labelled file formats: comments as UnSmile's TSV (``문장`` + the ten label columns) or JSONL
``{"text": ..., "labels": [keys] | {key: 0/1}}``; replies as KoSBi's JSON list (``context``,
``sentence``, ``sentence_label``) or JSONL ``{"prompt": ..., "reply": ..., "unsafe": 0/1}``.
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from moderator.exits import InputFormatError
from moderator.runtime.base import ReplyJudge, TextClassifier
from topics.labels import LABEL_KEYS, UNSMILE_COLUMNS

FloatArray = npt.NDArray[np.float32]


# ---------------------------------------------------------------------------------------------
# Readers


@dataclass(frozen=True)
class CommentSet:
    """Comments with a ``[n, 10]`` 0/1 matrix in ``LABEL_KEYS`` order."""

    texts: list[str]
    labels: FloatArray

    def subset(self, idx: Sequence[int]) -> CommentSet:
        return CommentSet([self.texts[i] for i in idx], self.labels[list(idx)])


@dataclass(frozen=True)
class PairSet:
    """(prompt, reply) pairs with a 0/1 ``unsafe`` vector."""

    prompts: list[str]
    replies: list[str]
    unsafe: FloatArray

    def subset(self, idx: Sequence[int]) -> PairSet:
        ids = list(idx)
        return PairSet([self.prompts[i] for i in ids], [self.replies[i] for i in ids], self.unsafe[ids])


_COMMENT_SHAPE = 'JSONL, one {"text": ..., "labels": [label keys]} per line (or UnSmile\'s .tsv)'
_PAIR_SHAPE = 'JSONL, one {"prompt": ..., "reply": ..., "unsafe": 0/1} per line (or KoSBi\'s .json)'


@contextlib.contextmanager
def _utf8(path: Path) -> Iterator[None]:
    try:
        yield
    except UnicodeDecodeError as exc:
        raise InputFormatError(
            f"{path}: not UTF-8 text (byte {exc.start})", "pass a UTF-8 text file"
        ) from None


def _text_lines(path: Path) -> list[str]:
    with _utf8(path):
        return path.read_text(encoding="utf-8").splitlines()


@contextlib.contextmanager
def _row_format(path: Path, line: int, shape: str) -> Iterator[None]:
    """Turn a malformed row (bad JSON, a missing key, a wrong type) into one error naming file, line, shape."""
    try:
        yield
    except InputFormatError:
        raise
    except json.JSONDecodeError as exc:
        where = f"{path}:{line}" if line else str(path)
        raise InputFormatError(f"{where}: not JSON ({exc.msg})", f"pass {shape}") from None
    except KeyError as exc:
        where = f"{path}:{line}" if line else str(path)
        raise InputFormatError(f"{where}: no field {exc}", f"pass {shape}") from None
    except (TypeError, AttributeError, ValueError, IndexError) as exc:
        where = f"{path}:{line}" if line else str(path)
        raise InputFormatError(f"{where}: unexpected shape ({exc})", f"pass {shape}") from None


def read_unsmile_tsv(path: Path) -> CommentSet:
    """UnSmile's TSV: ``문장`` then the label columns; quotes are literal text, not CSV quoting."""
    texts: list[str] = []
    rows: list[list[float]] = []
    with path.open(encoding="utf-8", errors="strict", newline="") as fh, _utf8(path):
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, [])
        missing = [c for c in UNSMILE_COLUMNS if c not in header]
        if missing:
            raise InputFormatError(
                f"{path}: missing label columns {missing}",
                "pass UnSmile's TSV (문장 and its label columns), or labelled JSONL with a .jsonl name",
            )
        cols = [header.index(c) for c in UNSMILE_COLUMNS]
        text_col = header.index("문장") if "문장" in header else 0
        for n, rec in enumerate(reader, 2):
            if not rec:
                continue
            with _row_format(path, n, "UnSmile's TSV: 문장 and the ten label columns (0/1)"):
                rows.append([float(rec[c]) for c in cols])
                texts.append(rec[text_col])
    return CommentSet(texts, np.asarray(rows, dtype=np.float32).reshape(-1, len(LABEL_KEYS)))


def read_comment_jsonl(path: Path) -> CommentSet:
    """JSONL ``{"text": ..., "labels": [keys]}`` (or a ``{key: 0/1}`` mapping)."""
    texts: list[str] = []
    rows: list[list[float]] = []
    for n, line in enumerate(_text_lines(path), 1):
        if not line.strip():
            continue
        with _row_format(path, n, _COMMENT_SHAPE):
            obj = json.loads(line)
            labels = obj["labels"]
            on = {k for k, v in labels.items() if v} if isinstance(labels, dict) else set(labels)
            text = str(obj["text"])
        unknown = on - set(LABEL_KEYS)
        if unknown:
            raise InputFormatError(
                f"{path}:{n}: unknown labels {sorted(unknown)}", f"use the label keys {', '.join(LABEL_KEYS)}"
            )
        texts.append(text)
        rows.append([1.0 if k in on else 0.0 for k in LABEL_KEYS])
    return CommentSet(texts, np.asarray(rows, dtype=np.float32).reshape(-1, len(LABEL_KEYS)))


def read_kosbi_json(path: Path) -> PairSet:
    """KoSBi: ``context`` is the user message, ``sentence`` the reply, ``sentence_label`` the verdict."""
    with _row_format(path, 0, 'a JSON list of {"context", "sentence", "sentence_label"} (KoSBi)'):
        with _utf8(path):
            rows = json.loads(path.read_text(encoding="utf-8"))
        return PairSet(
            [str(r["context"]) for r in rows],
            [str(r["sentence"]) for r in rows],
            np.asarray([1.0 if r["sentence_label"] == "unsafe" else 0.0 for r in rows], dtype=np.float32),
        )


def read_pair_jsonl(path: Path) -> PairSet:
    """JSONL ``{"prompt": ..., "reply": ..., "unsafe": 0/1 or bool}``."""
    prompts: list[str] = []
    replies: list[str] = []
    unsafe: list[float] = []
    for n, line in enumerate(_text_lines(path), 1):
        if not line.strip():
            continue
        with _row_format(path, n, _PAIR_SHAPE):
            obj = json.loads(line)
            prompt, reply, label = str(obj["prompt"]), str(obj["reply"]), 1.0 if obj["unsafe"] else 0.0
        prompts.append(prompt)
        replies.append(reply)
        unsafe.append(label)
    return PairSet(prompts, replies, np.asarray(unsafe, dtype=np.float32))


def read_comments(path: Path) -> CommentSet:
    """Dispatch on suffix: ``.tsv`` is UnSmile's shape, anything else JSONL."""
    return read_unsmile_tsv(path) if path.suffix.lower() == ".tsv" else read_comment_jsonl(path)


def read_pairs(path: Path) -> PairSet:
    """Dispatch on suffix: ``.json`` is KoSBi's shape, anything else JSONL."""
    return read_kosbi_json(path) if path.suffix.lower() == ".json" else read_pair_jsonl(path)


# ---------------------------------------------------------------------------------------------
# Metrics


def _prf(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def multilabel_metrics(
    y_true: npt.ArrayLike, probs: npt.ArrayLike, thresholds: npt.ArrayLike
) -> dict[str, Any]:
    """Per-label precision/recall/F1/support at thresholds, macro and micro F1, and LRAP."""
    y = np.asarray(y_true, dtype=np.float64) > 0.5
    p = np.asarray(probs, dtype=np.float64)
    th = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (p.shape[1],))
    pred = p >= th
    per: list[dict[str, float]] = []
    tps = fps = fns = 0.0
    for j in range(p.shape[1]):
        tp = float(np.sum(pred[:, j] & y[:, j]))
        fp = float(np.sum(pred[:, j] & ~y[:, j]))
        fn = float(np.sum(~pred[:, j] & y[:, j]))
        tps, fps, fns = tps + tp, fps + fp, fns + fn
        pr, rc, f1 = _prf(tp, fp, fn)
        per.append({"precision": pr, "recall": rc, "f1": f1, "support": float(np.sum(y[:, j]))})
    micro = _prf(tps, fps, fns)
    return {
        "n": int(p.shape[0]),
        "per_label": per,
        "macro_f1": float(np.mean([d["f1"] for d in per])) if per else 0.0,
        "micro_precision": micro[0],
        "micro_recall": micro[1],
        "micro_f1": micro[2],
        "lrap": lrap(y, p),
    }


def lrap(y_true: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Label ranking average precision, with sklearn's conventions for ties and empty rows."""
    y = np.asarray(y_true) > 0.5
    s = np.asarray(scores, dtype=np.float64)
    if s.shape[0] == 0:
        return 0.0
    total = 0.0
    n_labels = s.shape[1]
    for yi, si in zip(y, s, strict=True):
        rel = np.flatnonzero(yi)
        if rel.size == 0 or rel.size == n_labels:
            total += 1.0
            continue
        rel_scores = si[rel]
        rank_all = (si[None, :] >= rel_scores[:, None]).sum(axis=1)
        rank_rel = (rel_scores[None, :] >= rel_scores[:, None]).sum(axis=1)
        total += float(np.mean(rank_rel / rank_all))
    return total / s.shape[0]


def _average_ranks(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def auroc(y_true: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half); NaN with one class only."""
    y = np.asarray(y_true) > 0.5
    s = np.asarray(scores, dtype=np.float64)
    n_pos = int(y.sum())
    n_neg = int(len(y) - n_pos)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def binary_metrics(y_true: npt.ArrayLike, p_unsafe: npt.ArrayLike, threshold: float) -> dict[str, Any]:
    """Accuracy, precision/recall/F1 of ``unsafe`` at a threshold, and AUROC."""
    y = np.asarray(y_true) > 0.5
    s = np.asarray(p_unsafe, dtype=np.float64)
    pred = s >= threshold
    tp = float(np.sum(pred & y))
    fp = float(np.sum(pred & ~y))
    fn = float(np.sum(~pred & y))
    pr, rc, f1 = _prf(tp, fp, fn)
    return {
        "n": int(len(y)),
        "accuracy": float(np.mean(pred == y)) if len(y) else 0.0,
        "precision": pr,
        "recall": rc,
        "f1": f1,
        "auroc": auroc(y, s),
        "threshold": float(threshold),
    }


def best_f1_threshold(y_true: npt.ArrayLike, scores: npt.ArrayLike, tolerance: float = 0.0) -> float:
    """Threshold maximising F1 of one label (midpoint between neighbouring scores; 0.5 if no positives).

    ``tolerance`` > 0: the highest threshold whose F1 is within it of the best, so where F1 is flat
    the level with the fewest false alarms wins instead of whichever cut happens to be a hair ahead."""
    y = np.asarray(y_true) > 0.5
    s = np.asarray(scores, dtype=np.float64)
    if not y.any():
        return 0.5
    order = np.argsort(-s, kind="mergesort")
    ss, ys = s[order], y[order]
    tp = np.cumsum(ys)
    fp = np.cumsum(~ys)
    f1 = 2 * tp / (tp + fp + y.sum())
    # Only cut where the next score differs, so a threshold separates exactly the first k.
    valid = np.append(ss[1:] < ss[:-1], True)
    scored = np.where(valid, f1, -1.0)
    k = int(np.argmax(scored))
    if tolerance > 0:
        k = int(np.flatnonzero(scored >= scored[k] - tolerance)[0])  # fewest rows above the cut
    return float((ss[k] + ss[k + 1]) / 2.0) if k + 1 < len(ss) else float(ss[k])


def best_accuracy_threshold(y_true: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Threshold maximising accuracy (the judge's target metric)."""
    y = np.asarray(y_true) > 0.5
    s = np.asarray(scores, dtype=np.float64)
    cands = np.unique(np.concatenate([s, [0.5]]))
    mids = np.concatenate([[cands[0] - 1e-6], (cands[1:] + cands[:-1]) / 2.0, [cands[-1] + 1e-6]])
    accs = [float(np.mean((s >= t) == y)) for t in mids]
    # Prefer the candidate closest to 0.5 among equal accuracies, so ties do not drift to extremes.
    best = max(accs)
    return float(min((abs(t - 0.5), t) for t, a in zip(mids, accs, strict=True) if a == best)[1])


# ---------------------------------------------------------------------------------------------
# Model-level evaluation


def _batched(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def classifier_probs(classifier: TextClassifier, texts: Sequence[str], batch: int = 256) -> FloatArray:
    """``[n, 10]`` probabilities from any ``TextClassifier``, in batches."""
    parts = [classifier.predict(list(chunk)).probs for chunk in _batched(texts, batch)]
    if not parts:
        return np.zeros((0, len(LABEL_KEYS)), dtype=np.float32)
    return np.concatenate(parts).astype(np.float32)


def judge_probs(judge: ReplyJudge, pairs: Sequence[tuple[str, str]], batch: int = 256) -> FloatArray:
    """``[n]`` P(unsafe) from any ``ReplyJudge``, in batches."""
    parts = [judge.predict(list(chunk)).unsafe for chunk in _batched(pairs, batch)]
    if not parts:
        return np.zeros((0,), dtype=np.float32)
    return np.concatenate(parts).astype(np.float32)


def _threshold_vector(thresholds: Mapping[str, float] | Sequence[float] | float) -> list[float]:
    if isinstance(thresholds, Mapping):
        return [float(thresholds.get(k, 0.5)) for k in LABEL_KEYS]
    if isinstance(thresholds, int | float):
        return [float(thresholds)] * len(LABEL_KEYS)
    vec = [float(t) for t in thresholds]
    if len(vec) != len(LABEL_KEYS):
        raise ValueError(f"need {len(LABEL_KEYS)} thresholds, got {len(vec)}")
    return vec


def evaluate_classifier(
    classifier: TextClassifier,
    source: Path | CommentSet,
    thresholds: Mapping[str, float] | Sequence[float] | float = 0.5,
    rows: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Score a classifier on a labelled comment file or set (optionally only ``rows`` of it): P/R/F1, LRAP."""
    data = source if isinstance(source, CommentSet) else read_comments(Path(source))
    if rows is not None:
        data = data.subset(rows)
    th = _threshold_vector(thresholds)
    probs = classifier_probs(classifier, data.texts)
    m = multilabel_metrics(data.labels, probs, th)
    m["per_label"] = {
        k: {**d, "threshold": t} for k, d, t in zip(LABEL_KEYS, m["per_label"], th, strict=True)
    }
    m["per_label_auroc"] = {k: auroc(data.labels[:, j], probs[:, j]) for j, k in enumerate(LABEL_KEYS)}
    where = "<in memory>" if isinstance(source, CommentSet) else str(source)
    return {"kind": "comment", "file": where, "model_id": classifier.model_id, **m}


def evaluate_judge(
    judge: ReplyJudge, source: Path | PairSet, threshold: float = 0.5, rows: Sequence[int] | None = None
) -> dict[str, Any]:
    """Score a judge on a labelled pair file or set (optionally only ``rows`` of it): accuracy, P/R/F1, AUROC."""
    data = source if isinstance(source, PairSet) else read_pairs(Path(source))
    if rows is not None:
        data = data.subset(rows)
    probs = judge_probs(judge, list(zip(data.prompts, data.replies, strict=True)))
    m = binary_metrics(data.unsafe, probs, threshold)
    where = "<in memory>" if isinstance(source, PairSet) else str(source)
    return {"kind": "reply", "file": where, "model_id": judge.model_id, **m}


def format_report(report: Mapping[str, Any]) -> str:
    """Plain-text table of an ``evaluate_*`` report."""
    lines = [
        f"{report.get('kind', '?')} evaluation of {report.get('model_id', '?')} on {report.get('file', '?')}"
    ]
    lines.append(f"rows: {report['n']}")
    if report.get("kind") == "reply" or "accuracy" in report:
        lines.append(f"threshold {report['threshold']:.3f}")
        for key in ("accuracy", "precision", "recall", "f1", "auroc"):
            lines.append(f"{key:>10}: {report[key]:.4f}")
        return "\n".join(lines)
    lines.append(f"{'label':<18}{'thr':>7}{'prec':>8}{'recall':>8}{'f1':>8}{'auroc':>8}{'support':>9}")
    aurocs = report.get("per_label_auroc", {})
    for key, d in report["per_label"].items():
        lines.append(
            f"{key:<18}{d.get('threshold', float('nan')):>7.3f}{d['precision']:>8.4f}{d['recall']:>8.4f}"
            f"{d['f1']:>8.4f}{aurocs.get(key, float('nan')):>8.4f}{int(d['support']):>9d}"
        )
    lines.append(f"macro F1: {report['macro_f1']:.4f}")
    lines.append(
        f"micro F1: {report['micro_f1']:.4f} (P {report['micro_precision']:.4f}, R {report['micro_recall']:.4f})"
    )
    lines.append(f"LRAP:     {report['lrap']:.4f}")
    return "\n".join(lines)
