"""Ship a multitask run: int8 ONNX + lexical branch, thresholds calibrated on every source's dev part
with the shipped graph itself, the dev report, speed, and the model card.

    python -m onnx_export.train ship multitask --run build/multitask --out models/moderator-multitask-e5-small

Thresholds: the ten UnSmile keys are F1-optimal on UnSmile dev and HateScore dev together (so the
neutral group mentions in HateScore pull them up where they would false-flag), then raised, the key
losing least F1 first, until at most ``CLEAN_FLAG_BUDGET`` of HateScore's clean dev rows (neutral
sentences that name a group) are flagged; each safety key is
F1-optimal over every dev row whose source knows it; ``unsafe`` is accuracy-optimal over the reply
sources' dev rows (KoSBi, Do-Not-Answer, request pairs, comments as replies).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from moderator.core.normalize import NORMALIZER_ID, normalize_text
from moderator.evaluation import (
    auroc,
    best_accuracy_threshold,
    best_f1_threshold,
    binary_metrics,
    multilabel_metrics,
)
from onnx_export.train import sources as src
from onnx_export.train.lexical import LexicalModel, add_lexical_branch, set_lexical_weights, train_lexical
from onnx_export.train.long_texts import calibrate_long
from onnx_export.train.multitask import MultitaskConfig, build_rows
from onnx_export.train.report import REPLY_SOURCES, dev_sets, flagged, multitask_report, score_rows
from onnx_export.train.ship import (
    _quantize_exported,
    _refresh_metadata,
    record_drift,
    write_thresholds,
)
from topics.labels import LABEL_KEYS, MULTITASK_KEYS, SAFETY_KEYS

MULTITASK_DIR = Path("models/moderator-multitask-e5-small")
#: Lexical weights searched per block (the ten UnSmile columns; the safety + unsafe columns).
BLOCK_WEIGHTS = (0.0, 0.2, 0.4, 0.6)
F32 = npt.NDArray[np.float32]
COL = src.COL
HATE_COLS = list(range(len(LABEL_KEYS)))
SAFETY_COLS = list(range(len(LABEL_KEYS), len(MULTITASK_KEYS)))


def _ids(model: Any, rows: src.Rows, normalised: bool) -> list[list[int]]:
    """Token ids exactly as ``model`` (an ``EncoderMultitask``) feeds them: its normaliser, its pair
    encoder for replies and its comment encoder (cut at the trained comment length) for comments."""
    norm = (lambda t: t) if normalised else normalize_text
    out: list[list[int]] = [[] for _ in range(len(rows))]
    single = [i for i, b in enumerate(rows.second) if b is None]
    pair = [i for i, b in enumerate(rows.second) if b is not None]
    for idx, encoder, item in (
        (single, model.comment_encoder, lambda i: norm(rows.first[i])),
        (pair, model.encoder, lambda i: (norm(rows.first[i]), norm(rows.second[i] or ""))),
    ):
        for s in range(0, len(idx), 512):
            chunk = idx[s : s + 512]
            for i, ids in zip(chunk, encoder.encode([item(i) for i in chunk]).ids, strict=True):
                out[i] = ids
    return out


def _logit(p: F32) -> npt.NDArray[np.float64]:
    q = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.asarray(np.log(q / (1 - q)))


def _sig(x: npt.NDArray[np.float64]) -> F32:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def _set_comment_length(out_dir: Path, tokens: int) -> None:
    """Serve comments at the length they were trained at (see ``EncoderMultitask``)."""
    from moderator.runtime.metadata import METADATA_FILE

    path = out_dir / METADATA_FILE
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["comment_max_length"] = int(tokens)
    path.write_text(json.dumps(raw, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


#: Most of HateScore's clean dev rows (neutral sentences that name a group) the calibrated thresholds
#: may flag: issue #11's ceiling. F1-optimal levels alone let a noisy key (``profanity``) spend it.
CLEAN_FLAG_BUDGET = 0.03


#: Safety keys take the highest level within this much F1 of the best. Why: after the safety heads were
#: refitted, violence's dev F1 was flat (0.967-0.971) from 0.3 to 0.8 and the F1-optimal 0.44 tagged a
#: friendly sentence repeated 400 times and an English insult as violence; 0.79 keeps 612 of its 636
#: dev hits and 4 of its 23 false alarms (crime 0.58 -> 0.81: 250 of 253 hits, 1 of 2 false alarms).
SAFETY_F1_TOLERANCE = 0.005


def calibrate(dev: dict[str, src.Rows], probs: dict[str, F32]) -> dict[str, float]:
    """Per-key thresholds (see the module docstring), then the group-hate and profanity levels raised
    as little as needed to keep HateScore's clean dev rows under ``CLEAN_FLAG_BUDGET``."""
    th: dict[str, float] = {}
    for k in LABEL_KEYS:
        th[k] = round(best_f1_threshold(*_known(dev, probs, k, ("unsmile", "hatescore"))), 4)
    for k in SAFETY_KEYS:
        th[k] = round(best_f1_threshold(*_known(dev, probs, k), tolerance=SAFETY_F1_TOLERANCE), 4)
    th["unsafe"] = round(best_accuracy_threshold(*_known(dev, probs, "unsafe")), 4)
    return _within_clean_budget(th, dev, probs)


#: A category gets an attribute level only with at least this many harmful dev rows of its own (the
#: bar ``CHILD_SAFETY_MIN_POSITIVES`` sets for the same reason: below it one or two rows set the level).
ATTRIBUTE_MIN_POSITIVES = 20


def calibrate_attribution(
    dev: dict[str, src.Rows],
    probs: dict[str, F32],
    thresholds: dict[str, float],
    min_positives: int = ATTRIBUTE_MIN_POSITIVES,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Per safety category, the level at which a reply the judge flags is tagged with it: F1-optimal
    over the dev rows that are harmful and know the category (the other harmful rows are its negatives:
    the question is *which* harm, not whether), never above the category's own threshold.

    Why: the thresholds are set on every dev row, harmless ones included, so they sit high (crime
    0.84, drugs 0.40 on the shipped model) and a harmful reply the judge flags often names no category.
    The report gives, per category, recall and precision among harmful dev rows at the threshold and at
    the attribute level, with the number of rows behind them, and the categories left without a level
    for want of harmful dev rows (``min_positives``)."""
    levels: dict[str, float] = {}
    report: dict[str, Any] = {
        "rows": "dev rows with unsafe = 1 that know the category",
        "min_positives": min_positives,
        "keys": {},
        "left_without": {},
    }
    targets = {name: rows.targets() for name, rows in dev.items()}  # once per source, not per key
    for key in SAFETY_KEYS:
        ys, ps = [], []
        for name, (y, m) in targets.items():
            keep = (m[:, COL[key]] > 0) & (m[:, COL["unsafe"]] > 0) & (y[:, COL["unsafe"]] > 0.5)
            ys.append(y[keep, COL[key]])
            ps.append(probs[name][keep, COL[key]])
        y, p = np.concatenate(ys), np.concatenate(ps)
        positives = int((y > 0.5).sum())
        if positives < min_positives or positives == len(y):
            report["left_without"][key] = positives
            continue
        level = min(round(best_f1_threshold(y, p), 4), thresholds[key])
        levels[key] = level
        report["keys"][key] = {
            "positives": positives,
            "rows": len(y),
            "threshold": _operating_point(y, p, thresholds[key]),
            "attribute": _operating_point(y, p, level),
        }
    return levels, report


def calibrated_on(note: str = "") -> str:
    """How ``calibrate`` chose the levels, for ``thresholds.json``."""
    return (
        "fixed dev splits of every source, on this int8 export: UnSmile keys F1-optimal on UnSmile + "
        f"HateScore dev, then raised (least F1 lost first) until at most {CLEAN_FLAG_BUDGET:.0%} of "
        "HateScore's clean dev rows are flagged; safety keys at the highest level within "
        f"{SAFETY_F1_TOLERANCE} of the best F1 on every dev row that knows them; "
        f"unsafe accuracy-optimal on the reply sources' dev rows; {datetime.now(UTC):%Y-%m-%d}{note}"
    )


def _within_clean_budget(
    th: dict[str, float], dev: dict[str, src.Rows], probs: dict[str, F32], budget: float = CLEAN_FLAG_BUDGET
) -> dict[str, float]:
    """Greedy: while too many clean HateScore dev rows are flagged, raise one hate key's level past
    the lowest clean row it flags, choosing the key whose F1 (UnSmile + HateScore dev) falls least
    per clean row freed. Safety keys are left alone (they are calibrated on their own sources)."""
    if "hatescore" not in dev:
        return th
    y_h, _ = dev["hatescore"].targets()
    clean_p = probs["hatescore"][y_h[:, COL["clean"]] == 1]
    if not len(clean_p):
        return th
    keys = [k for k in LABEL_KEYS if k != "clean"]
    known = {k: _known(dev, probs, k, ("unsmile", "hatescore")) for k in keys}
    th = dict(th)
    f1_now = {k: binary_metrics(*known[k], th[k])["f1"] for k in keys}
    while flagged(clean_p, th).mean() > budget:
        best: tuple[float, str, float, float] | None = None
        for k in keys:
            over = np.sort(clean_p[:, COL[k]][clean_p[:, COL[k]] >= th[k]])
            if not len(over):
                continue
            # past the lowest clean row this key flags (a row two keys flag needs both: counted per key)
            level = round(float(over[0]) + 1e-4, 4)
            freed = int((over < level).sum())
            f1_then = binary_metrics(*known[k], level)["f1"]
            ratio = max(f1_now[k] - f1_then, 0.0) / max(1, freed)
            if best is None or ratio < best[0]:
                best = (ratio, k, level, f1_then)
        if best is None:
            break
        _, key, level, f1_then = best
        th[key], f1_now[key] = level, f1_then
    return th


def _known(
    dev: dict[str, src.Rows], probs: dict[str, F32], key: str, sources: tuple[str, ...] | None = None
) -> tuple[npt.NDArray[Any], F32]:
    """(targets, scores) of ``key`` over the dev rows of ``sources`` that label it; by default every
    source, and for ``unsafe`` the reply sources'."""
    if sources is None:
        sources = REPLY_SOURCES if key == "unsafe" else tuple(dev)
    ys, ps = [], []
    for name in sources:
        y, m = dev[name].targets()
        keep = m[:, COL[key]] > 0
        ys.append(y[keep, COL[key]])
        ps.append(probs[name][keep, COL[key]])
    return np.concatenate(ys), np.concatenate(ps)


def _block_scores(dev: dict[str, src.Rows], probs: dict[str, F32]) -> tuple[float, float]:
    """(hate block score, safety block score) used to pick the lexical weights on dev."""
    th = calibrate(dev, probs)
    y, _ = dev["unsmile"].targets()
    met = multilabel_metrics(y[:, HATE_COLS], probs["unsmile"][:, HATE_COLS], [th[k] for k in LABEL_KEYS])
    yh, _ = dev["hatescore"].targets()
    hs = auroc(1 - yh[:, COL["clean"]], 1 - probs["hatescore"][:, COL["clean"]])
    hate = met["macro_f1"] + met["lrap"] + hs
    aucs = []
    for k in (*SAFETY_KEYS, "unsafe"):
        a = auroc(*_known(dev, probs, k, tuple(dev)))  # every source, unsafe included
        if a == a:
            aucs.append(a)
    return float(np.nan_to_num(hate)), float(np.mean(aucs)) if aucs else 0.0


#: Block bands of the default policy. A group-hate key blocks at 0.9, the noisier other_hate and
#: profanity at 0.95; the safety categories that matter most for the seeds' child-facing and
#: emotional-support bots (sexual content with minors, self-harm encouragement) block at 0.5.
BLOCK_BANDS = {
    **dict.fromkeys(("women_family", "men", "lgbtq", "race_nationality", "age", "region", "religion"), 0.9),
    "other_hate": 0.95,
    "profanity": 0.95,
    "violence": 0.85,
    "sexual": 0.9,
    "sexual_minors": 0.5,
    "crime": 0.9,
    "weapons": 0.85,
    "drugs": 0.85,
    "self_harm": 0.5,
}
#: The judge blocks on its own only from the lowest threshold whose pooled dev precision is at least this.
JUDGE_BLOCK_PRECISION = 0.95


#: The ``child_safety`` profile keeps at least this share of each key's dev positives: for a
#: children's companion or an emotional-support bot a missed self-harm or grooming reply costs more
#: than a reply held for review.
CHILD_SAFETY_RECALL = 0.95
#: The keys the profile may lower (``unsafe``: the judge's review level).
CHILD_SAFETY_KEYS = ("self_harm", "sexual_minors", "unsafe")
#: A key is lowered only with at least this many dev positives: below it, a 95%-recall level is set by
#: the one or two lowest-scoring positives (with the shipped model's 10 self-harm positives it was
#: 0.0012, over which a fifth of benign replies to children scored). The issue's bar for holding a
#: category to a target is the same 20.
CHILD_SAFETY_MIN_POSITIVES = 20


def _operating_point(y: npt.NDArray[Any], p: F32, level: float) -> dict[str, float]:
    flagged = p >= level
    positives = int(y.sum())
    hits = int((flagged & (y > 0.5)).sum())
    return {
        "level": level,
        "recall": hits / positives if positives else float("nan"),
        "precision": hits / int(flagged.sum()) if flagged.any() else float("nan"),
        "flag_rate": float(flagged.mean()),
    }


def child_safety_profile(
    dev: dict[str, src.Rows],
    probs: dict[str, F32],
    thresholds: dict[str, float],
    min_positives: int = CHILD_SAFETY_MIN_POSITIVES,
    attribute: dict[str, float] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``child_safety`` profile of the default policy and its dev report.

    Per key in ``CHILD_SAFETY_KEYS`` with at least ``min_positives`` dev positives: the
    highest review level (4 decimals, rounded down) at which dev recall is at least
    ``CHILD_SAFETY_RECALL``, never above the default threshold; blocking stays as the default policy
    has it (and a lowered safety band keeps the base's ``attribute`` level, capped at its new
    threshold: a profile's band replaces the base's whole). The report gives recall, precision and the share of rows flagged at the default threshold
    and at the profile's level, with the number of dev positives behind them, and the keys left at
    the default for want of positives.
    """
    attribute = attribute or {}
    levels: dict[str, float] = {}
    report: dict[str, Any] = {
        "recall_target": CHILD_SAFETY_RECALL,
        "min_positives": min_positives,
        "keys": {},
        "left_at_default": {},
    }
    for key in CHILD_SAFETY_KEYS:
        y, p = _known(dev, probs, key)
        positive = np.sort(p[y > 0.5])[::-1]
        if len(positive) < min_positives:
            report["left_at_default"][key] = len(positive)
            continue
        kept = positive[int(np.ceil(CHILD_SAFETY_RECALL * len(positive))) - 1]
        level = min(float(np.floor(float(kept) * 1e4) / 1e4), thresholds[key])
        levels[key] = level
        report["keys"][key] = {
            "positives": len(positive),
            "rows": len(y),
            "default": _operating_point(y, p, thresholds[key]),
            "profile": _operating_point(y, p, level),
        }
    lowered = ", ".join(f"{k} at {v}" for k, v in levels.items()) or "nothing"
    left = ", ".join(f"{k} ({n} dev positives)" for k, n in report["left_at_default"].items())
    profile: dict[str, Any] = {
        "description": "For children's companion and emotional-support bots: reviews "
        f"{lowered}, the levels that keep {CHILD_SAFETY_RECALL:.0%} of the dev positives (more replies held "
        "for review; see the model card, Profiles)"
        + (f"; left at the default for want of dev positives: {left}." if left else ".")
    }
    safety = {
        k: {"threshold": levels[k], "block": max(BLOCK_BANDS[k], thresholds[k])}
        | ({"attribute": min(attribute[k], levels[k])} if k in attribute else {})
        for k in levels
        if k != "unsafe"
    }
    if safety:
        profile["safety"] = safety
    if "unsafe" in levels:
        profile["judge"] = {"review": levels["unsafe"]}
    return profile, report


def default_policy(
    thresholds: dict[str, float],
    report: dict[str, Any],
    long: dict[str, float] | None = None,
    profiles: dict[str, Any] | None = None,
    attribute: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The default policy for this model: review at the calibrated thresholds (at the ``long`` levels
    for scores pooled over a long text's windows), block in the bands above (never below the review
    threshold), judge blocking alone only where dev precision supports it; ``profiles`` (e.g.
    ``child_safety``) ship with no bot or channel routed to them: a deployment names its own;
    ``attribute``: per safety category, the level that names it on a reply the judge flags."""
    long = long or {}
    attribute = attribute or {}
    block_at = None
    for t, d in sorted(report["unsafe_precision"].items(), key=lambda kv: float(kv[0])):
        if (
            float(t) >= thresholds["unsafe"]
            and d["precision"] >= JUDGE_BLOCK_PRECISION
            and d["flagged"] >= 20
        ):
            block_at = float(t)
            break

    def band(k: str) -> dict[str, float]:
        out = {"threshold": thresholds[k], "block": max(BLOCK_BANDS[k], thresholds[k])}
        if k in long:
            out["long"] = min(long[k], out["block"])
        if k in attribute:
            out["attribute"] = min(attribute[k], out["threshold"])
        return out

    return {
        "name": "default",
        "description": "For models/moderator-multitask-e5-small: review at the thresholds calibrated on the dev "
        "splits (models/moderator-multitask-e5-small/thresholds.json); block at high confidence for hate labels, "
        "at 0.5 for sexual content with minors and self-harm; the judge blocks alone only where its dev "
        f"precision is >= {JUDGE_BLOCK_PRECISION} (see the model card)"
        + (
            "; scores pooled over the windows of a long text review at the long levels calibrated on long "
            "clean dev texts."
            if long
            else "."
        )
        + (
            " A reply the judge flags is also tagged with each safety category at or over its attribute "
            "level (F1-optimal among harmful dev rows)."
            if attribute
            else ""
        ),
        "labels": {k: band(k) for k in LABEL_KEYS if k != "clean"},
        "safety": {k: band(k) for k in SAFETY_KEYS},
        "judge": {"review": thresholds["unsafe"], "block": block_at},
        "truncated_action": None,
        "profiles": profiles or {},
        "bots": {},
        "channels": {},
    }


def _policy_and_checks(
    out_dir: Path,
    model: Any,
    dev: dict[str, src.Rows],
    probs: dict[str, F32],
    th: dict[str, float],
    report: dict[str, Any],
) -> None:
    """The shipped model's last steps, for a fresh ship and a recalibration alike: the default policy
    (with its ``child_safety`` profile) into ``policy.json``, then the functional checks under both,
    the outside files and the speed, into ``report``."""
    from moderator.core.policy import parse_policy
    from onnx_export.train.report import functional_checks, read_checks

    # the long levels stay out of the default policy: on long dev texts they trade too much recall
    # (see the card's long-text table); a policy may opt in with `long` per key
    attribute, attribute_report = calibrate_attribution(dev, probs, th)
    report["attribution"] = attribute_report
    child, child_report = child_safety_profile(dev, probs, th, attribute=attribute)
    report["profiles"] = {"child_safety": child_report}
    policy_doc = default_policy(th, report, profiles={"child_safety": child}, attribute=attribute)
    (out_dir / "policy.json").write_text(json.dumps(policy_doc, ensure_ascii=False, indent=2) + "\n")
    policy = parse_policy(policy_doc)
    checks = read_checks()
    report["functional"] = functional_checks(model, policy, checks)
    report["functional_child_safety"] = functional_checks(model, policy.profiles["child_safety"], checks)
    report["outside"] = outside_checks(model, th)
    texts = list(dev["unsmile"].first)
    pairs = list(zip(dev["kosbi"].first, [s or "" for s in dev["kosbi"].second], strict=True))
    report["comments_per_second"] = _bench(model.score_comments, texts)
    report["replies_per_second"] = _bench(model.score_replies, pairs)


def _bench(fn: Any, items: list[Any], batch: int = 64, repeats: int = 2) -> float:
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(0, len(items), batch):
            fn(items[i : i + batch])
        best = max(best, len(items) / (time.perf_counter() - t0))
    return best


def outside_checks(model: Any, th: dict[str, float]) -> dict[str, Any]:
    """The earlier models' hand-written outside files (``onnx_export/outside``), scored the same way."""
    from moderator.evaluation import binary_metrics, read_comment_jsonl, read_pair_jsonl
    from onnx_export.train.ship import OUTSIDE_DIR

    comments = read_comment_jsonl(OUTSIDE_DIR / "comments.jsonl")
    pc = model.score_comments(comments.texts).probs
    cols = [COL[k] for k in LABEL_KEYS]
    met = multilabel_metrics(comments.labels, pc[:, cols], [th[k] for k in LABEL_KEYS])
    replies = read_pair_jsonl(OUTSIDE_DIR / "replies.jsonl")
    pr = model.score_replies(list(zip(replies.prompts, replies.replies, strict=True))).unsafe
    rep = binary_metrics(replies.unsafe, pr, th["unsafe"])
    return {
        "comments": {"n": len(comments.texts), "macro_f1": met["macro_f1"], "lrap": met["lrap"]},
        "replies": {"n": len(replies.prompts), "accuracy": rep["accuracy"], "auroc": rep["auroc"]},
    }


def lexical_scale(
    w_hate: float, w_safe: float, dtype: type[np.floating[Any]] = np.float32
) -> npt.NDArray[Any]:
    """Per-column weight of the lexical branch: ``w_hate`` on the UnSmile keys, ``w_safe`` on the rest
    (float32 as the graph holds it; the dev search mixes float64 logits with float64 weights)."""
    return np.asarray([w_hate] * len(HATE_COLS) + [w_safe] * len(SAFETY_COLS), dtype)


def ship_multitask(
    run_dir: Path,
    out_dir: Path,
    data: Path,
    threads: int = 1,
    dev_cap: int = 0,
    lexical_weights: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Export, quantise, add the lexical branch, calibrate, report (see the module docstring).

    ``dev_cap`` > 0 scores only that many rows per dev source (quick checks; the card uses all).
    ``lexical_weights`` (hate, safety): use these instead of the ones the dev search picks (the search
    is still run and reported).
    """
    from moderator.runtime.metadata import read_metadata
    from moderator.runtime.multitask import EncoderMultitask
    from moderator.runtime.options import RuntimeOptions
    from onnx_export.encoder import export_encoder

    summary = json.loads((run_dir / "train_summary.json").read_text(encoding="utf-8"))
    cfg = MultitaskConfig(**summary["config"])
    dev = dev_sets(data)  # one fixed seed, so runs trained with other seeds are compared on the same rows
    if dev_cap:
        dev = {k: v.subset(range(min(len(v), dev_cap))) for k, v in dev.items()}
    samples = [normalize_text(t) for t in dev["unsmile"].first[:32]]
    export_encoder(
        run_dir / "checkpoint",
        out_dir,
        kind="encoder-multitask",
        max_length=cfg.max_length,
        int8=False,
        name=out_dir.name,
        source=f"onnx_export.train multitask ({summary['train_rows']} rows, {summary['steps']} steps)",
        sample_texts=samples,
        normalizer=NORMALIZER_ID,
    )
    _set_comment_length(out_dir, cfg.comment_max_length)
    options = RuntimeOptions(device="cpu", intra_op_threads=threads)

    def load() -> EncoderMultitask:
        return EncoderMultitask(out_dir, read_metadata(out_dir), options)

    def all_probs(model: EncoderMultitask) -> dict[str, F32]:
        return {k: score_rows(model, v) for k, v in dev.items()}

    drift_rows = {k: v.subset(range(min(len(v), 150))) for k, v in dev.items()}

    def flat() -> F32:
        # int8 drift on the first 150 dev rows of each source (the full dev is scored once, after)
        model = load()
        return np.concatenate([score_rows(model, v) for v in drift_rows.values()])

    t0 = time.time()
    qdrift = _quantize_exported(out_dir, flat)
    print(f"int8 done ({time.time() - t0:.0f}s), drift {qdrift}", flush=True)
    model = load()
    nn_probs = all_probs(model)
    meta = read_metadata(out_dir)
    train, _ = build_rows(data, cfg)
    y_tr, m_tr = train.targets()
    lex: LexicalModel = train_lexical(_ids(model, train, True), y_tr, int(meta.vocab_size), mask=m_tr)
    lex_dev = {k: lex.logits(_ids(model, v, False)).astype(np.float64) for k, v in dev.items()}
    shift = -np.log(np.asarray(summary["pos_weight"], dtype=np.float64))
    nn_dev = {k: _logit(v) + shift for k, v in nn_probs.items()}

    def mixed(w_hate: float, w_safe: float) -> dict[str, F32]:
        w = lexical_scale(w_hate, w_safe, np.float64)
        return {k: _sig((1 - w) * nn_dev[k] + w * lex_dev[k]) for k in dev}

    search = []
    for weight in BLOCK_WEIGHTS:
        hate, safe = _block_scores(dev, mixed(weight, weight))
        search.append({"weight": weight, "hate_block": hate, "safety_block": safe})
        print(f"lexical weight {weight}: hate block {hate:.4f}, safety block {safe:.4f}", flush=True)
    w_hate = max(search, key=lambda r: r["hate_block"])["weight"]
    w_safe = max(search, key=lambda r: r["safety_block"])["weight"]
    chosen = "dev search"
    if lexical_weights is not None:
        (w_hate, w_safe), chosen = lexical_weights, "given (--lexical-weights)"
    w = lexical_scale(w_hate, w_safe)
    add_lexical_branch(out_dir / "model.onnx", lex, (1 - w).astype(np.float32), shift.astype(np.float32), w)
    _refresh_metadata(out_dir, f"+ hashed uni/bigram linear branch (weights {w_hate} hate / {w_safe} safety)")
    model = load()
    probs = all_probs(model)
    expected = mixed(w_hate, w_safe)
    gap = max(float(np.max(np.abs(probs[k] - expected[k]))) for k in dev)
    if gap > 1e-3:
        raise RuntimeError(f"lexical branch in ONNX disagrees with its numpy reference by {gap}")
    th = calibrate(dev, probs)
    thresholds = {
        "labels": {k: th[k] for k in LABEL_KEYS},
        "safety": {k: th[k] for k in SAFETY_KEYS},
        "unsafe": th["unsafe"],
        "calibrated_on": calibrated_on(),
    }
    long, long_report = calibrate_long(model, dev, th)
    thresholds["long"] = long
    write_thresholds(out_dir, thresholds)
    report = multitask_report(model, data, th, probs=probs, dev=dev)
    report["long_texts"] = long_report
    report["int8_probability_drift"] = qdrift
    report["int8_activations"] = "per row, 7-bit"  # what quantize_int8 writes (the card says so)
    report["int8_drift_rows"] = sum(len(v) for v in drift_rows.values())
    report["lexical"] = {
        "hate_weight": w_hate,
        "safety_weight": w_safe,
        "chosen_by": chosen,
        "search": search,
    }
    report["nn_only"] = multitask_report(
        model, data, calibrate(dev, mixed(0.0, 0.0)), probs=mixed(0.0, 0.0), dev=dev
    )["unsmile"]
    report["training"] = {k: v for k, v in summary.items() if k not in ("best",)}
    report["training"]["best_step"] = summary["best"]["step"]
    report["threads"] = threads
    _policy_and_checks(out_dir, model, dev, probs, th, report)
    report["size_mb"] = (out_dir / "model.onnx").stat().st_size / 1e6
    (out_dir / "dev_metrics.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=2, default=float) + "\n"
    )
    return report


def rows_requantize(out_dir: Path, dev: dict[str, src.Rows], threads: int = 1) -> dict[str, float]:
    """Give a shipped per-tensor int8 model per-row activation scales, in place, and measure the drift.

    The weights stay byte for byte (``quantize_int8`` now writes the same graph from fp32), so this is
    what a fresh ship step would produce from the same training run. The drift is measured against the
    same int8 weights in fp32 (``dequantize_int8``) on the first 150 dev rows of each source: it is the
    activation rounding alone (the weight rounding is not in it: the fp32 training graph is not kept).
    """
    import shutil
    import tempfile

    import onnx

    from moderator.runtime.metadata import read_metadata
    from moderator.runtime.multitask import EncoderMultitask
    from moderator.runtime.options import RuntimeOptions
    from onnx_export.quantize import ROW_QUANT, dequantize_int8, quantize_activations_per_row, save_model

    options = RuntimeOptions(device="cpu", intra_op_threads=threads)
    rows = {k: v.subset(range(min(len(v), 150))) for k, v in dev.items()}
    model_path = out_dir / "model.onnx"
    graph = onnx.load(str(model_path))
    if any(n.name.endswith(ROW_QUANT) for n in graph.graph.node):
        raise RuntimeError(f"{model_path} already has per-row activation scales")
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".fp32-") as tmp:
        ref_dir = Path(tmp) / out_dir.name
        shutil.copytree(out_dir, ref_dir)
        save_model(dequantize_int8(onnx.load(str(model_path))), ref_dir / "model.onnx")
        _refresh_metadata(ref_dir, "dequantised")
        ref_model = EncoderMultitask(ref_dir, read_metadata(ref_dir), options)
        before = np.concatenate([score_rows(ref_model, v) for v in rows.values()])
    save_model(quantize_activations_per_row(graph), model_path)
    _refresh_metadata(out_dir, "activations quantised per row (7-bit, no batch dependence)")
    model = EncoderMultitask(out_dir, read_metadata(out_dir), options)
    after = np.concatenate([score_rows(model, v) for v in rows.values()])
    return record_drift(
        out_dir,
        before,
        after,
        "int8 with per-row activation scales vs the same int8 weights in fp32 over {rows} dev rows "
        "(99th percentile {p99:.4f}, mean {mean:.4f}); weight rounding not included",
    )


def recalibrate(
    out_dir: Path,
    data: Path,
    threads: int = 1,
    rows_int8: bool = False,
    lexical_weights: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Re-score dev with a shipped model as it is served now (e.g. after its metadata's lengths changed),
    re-pick the thresholds and the default policy, and redo the report; the export, int8 and lexical
    figures and the training history are kept from the existing ``dev_metrics.json``. ``rows_int8``
    first moves a per-tensor int8 model to per-row activation scales (:func:`rows_requantize`) and
    reports that drift instead. ``lexical_weights`` (hate, safety) first re-weighs the lexical branch in
    the graph (:func:`~onnx_export.train.lexical.set_lexical_weights`)."""
    from moderator.runtime.metadata import read_metadata
    from moderator.runtime.multitask import EncoderMultitask
    from moderator.runtime.options import RuntimeOptions

    old = json.loads((out_dir / "dev_metrics.json").read_text(encoding="utf-8"))
    dev = dev_sets(data)
    drift = rows_requantize(out_dir, dev, threads) if rows_int8 else None
    reweighed: dict[str, Any] | None = None
    if lexical_weights is not None:
        before = set_lexical_weights(out_dir / "model.onnx", lexical_scale(*lexical_weights))
        w_hate, w_safe = lexical_weights
        _refresh_metadata(out_dir, f"lexical branch re-weighed to {w_hate} hate / {w_safe} safety")
        reweighed = {
            **old.get("lexical", {}),
            "hate_weight": w_hate,
            "safety_weight": w_safe,
            "chosen_by": "given (--recalibrate --lexical-weights)",
            "before": {"hate_weight": float(before[0]), "safety_weight": float(before[-1])},
        }
    model = EncoderMultitask(
        out_dir, read_metadata(out_dir), RuntimeOptions(device="cpu", intra_op_threads=threads)
    )
    probs = {k: score_rows(model, v) for k, v in dev.items()}
    th = calibrate(dev, probs)
    thresholds = json.loads((out_dir / "thresholds.json").read_text(encoding="utf-8"))
    thresholds.update(
        labels={k: th[k] for k in LABEL_KEYS}, safety={k: th[k] for k in SAFETY_KEYS}, unsafe=th["unsafe"]
    )
    long, long_report = calibrate_long(model, dev, th)
    thresholds["long"] = long
    thresholds["calibrated_on"] = calibrated_on(
        "; recalibrated (same weights)" + (" after per-row activation scales" if rows_int8 else "")
    )
    write_thresholds(out_dir, thresholds)
    report = multitask_report(model, data, th, probs=probs, dev=dev)
    report["long_texts"] = long_report
    kept = ("int8_probability_drift", "int8_drift_rows", "int8_activations", "lexical", "nn_only", "training")
    for key in (*kept, "size_mb"):
        if key in old:
            report[key] = old[key]
    if reweighed is not None:
        report["lexical"] = reweighed
    if drift is not None:
        report["int8_probability_drift"] = {**drift, "reference": "same int8 weights in fp32"}
        report["int8_drift_rows"] = sum(min(len(v), 150) for v in dev.values())
        report["int8_activations"] = "per row, 7-bit"
        report["size_mb"] = (out_dir / "model.onnx").stat().st_size / 1e6
    report["threads"] = threads
    _policy_and_checks(out_dir, model, dev, probs, th, report)
    (out_dir / "dev_metrics.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=2, default=float) + "\n"
    )
    return report


def _weight_pair(text: str) -> tuple[float, float]:
    """``"0.4,0.6"`` → (0.4, 0.6); argparse turns the ValueError into one clear usage line."""
    parts = text.split(",")
    try:
        pair = (float(parts[0]), float(parts[1])) if len(parts) == 2 else None
    except ValueError:
        pair = None
    if pair is None or not all(0.0 <= w <= 1.0 for w in pair):
        raise argparse.ArgumentTypeError(f"expected HATE,SAFETY, two weights from 0 to 1, got {text!r}")
    return pair


def ship_multitask_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m onnx_export.train ship multitask")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--run", type=Path, default=Path("build/multitask"))
    ap.add_argument("--out", type=Path, default=MULTITASK_DIR)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dev-cap", type=int, default=0, help="rows per dev source (quick checks only)")
    ap.add_argument(
        "--recalibrate", action="store_true", help="re-score and re-calibrate the model already in --out"
    )
    ap.add_argument(
        "--rows-int8",
        action="store_true",
        help="with --recalibrate: first move a per-tensor int8 model in --out to per-row activation scales",
    )
    ap.add_argument(
        "--lexical-weights",
        type=_weight_pair,
        metavar="HATE,SAFETY",
        help="lexical-branch weights (0-1) for the UnSmile keys and the safety keys instead of the dev "
        "search's; with --recalibrate, re-weighs the model already in --out",
    )
    args = ap.parse_args(argv)
    if args.rows_int8 and not args.recalibrate:
        ap.error("--rows-int8 goes with --recalibrate (a fresh ship step quantises per row already)")
    if args.recalibrate:
        report = recalibrate(
            args.out, args.data, args.threads, rows_int8=args.rows_int8, lexical_weights=args.lexical_weights
        )
    else:
        report = ship_multitask(
            args.run, args.out, args.data, args.threads, args.dev_cap, lexical_weights=args.lexical_weights
        )
    from onnx_export.train.card_multitask import write_multitask_card

    write_multitask_card(args.out, report)
    print(
        json.dumps(
            {k: report[k] for k in ("unsmile", "hatescore", "replies", "safety")}, indent=1, default=float
        )[:6000]
    )
    print(f"written to {args.out}")
