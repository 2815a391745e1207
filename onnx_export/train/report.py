"""The multitask model's dev report: every figure its card states, from the shipped model itself.

Why one function: ``python -m onnx_export.train ship multitask`` writes the card from it and
``moderator eval --sources ../shared/data`` reruns it, so a reader can reproduce each number in the card
with the shipped ONNX model and the fixed dev splits. Texts are passed raw: the model normalises them
itself (``metadata.normalizer``), as in production.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from moderator.evaluation import auroc, binary_metrics, multilabel_metrics
from onnx_export.train import sources as src
from onnx_export.train.perturb import perturb
from onnx_export.train.templates import request_pairs
from topics.labels import LABEL_KEYS, MULTITASK_KEYS, SAFETY_KEYS

F32 = npt.NDArray[np.float32]
COL = src.COL
#: The keys a comment is flagged for (the verdict's categories): hate keys but ``clean``, and safety keys.
FLAG_KEYS = (*LABEL_KEYS[:-1], *SAFETY_KEYS)
REPLY_SOURCES = ("kosbi", "do_not_answer", "requests", "comment_reply")
#: Perturbation seed of the robustness figure; training's augmentation used the training seed.
PERTURB_SEED = 777


def dev_sets(data: Path, seed: int = 20240601) -> dict[str, src.Rows]:
    """Every source's fixed dev part (raw text), plus the request pairs and comments-as-replies built
    from dev-side rows only."""
    dev: dict[str, src.Rows] = {}
    for name, reader in src.READERS:
        dev[name] = reader(data)[1]
    _, q_dev = src.square_questions(data)
    both = src.Rows().extend(dev["unsmile"]).extend(dev["hatescore"])
    dev["comment_reply"] = src.comments_as_replies(both, q_dev, 1000, seed + 1, "comment_reply")
    requests = [r for r in src.read_requests(data) if src.request_split(r.text)]
    dev["requests"] = request_pairs(requests, random.Random(seed + 2))
    return dev


def score_rows(model: Any, rows: src.Rows) -> F32:
    """[n, 18] probabilities from an ``EncoderMultitask``: comments single, replies as pairs."""
    out = np.zeros((len(rows), len(MULTITASK_KEYS)), np.float32)
    single = [i for i, s in enumerate(rows.second) if s is None]
    pair = [i for i, s in enumerate(rows.second) if s is not None]
    if single:
        out[single] = model.score_comments([rows.first[i] for i in single]).probs
    if pair:
        out[pair] = model.score_replies([(rows.first[i], rows.second[i] or "") for i in pair]).probs
    return out


def _known(rows: src.Rows, probs: F32, key: str) -> tuple[F32, F32]:
    y, m = rows.targets()
    j = COL[key]
    keep = m[:, j] > 0
    return y[keep, j], probs[keep, j]


def flagged(probs: F32, thresholds: dict[str, float]) -> npt.NDArray[np.bool_]:
    """Rows with any ``FLAG_KEYS`` score at or over its level in ``thresholds``."""
    cols = [COL[k] for k in FLAG_KEYS]
    th = np.asarray([thresholds[k] for k in FLAG_KEYS], np.float32)
    return np.asarray((probs[:, cols] >= th).any(axis=1))


def dna_actions(data: Path) -> list[int]:
    """Do-Not-Answer ``action`` (0 = refuses) of each dev reply, in ``read_do_not_answer``'s order."""
    path = data / src.DNA_FILE
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    _, dv = src.read_split(path.parent / "train_dev_split.json")
    dev = set(dv)
    out: list[int] = []
    for i, r in enumerate(rows):
        if i not in dev:
            continue
        for m in src.DNA_MODELS:
            if (r.get(f"{m}_response") or "").strip():
                out.append(int(r[f"{m}_action"]))
    return out


def multitask_report(
    model: Any,
    data: Path,
    thresholds: dict[str, float],
    probs: dict[str, F32] | None = None,
    dev: dict[str, src.Rows] | None = None,
) -> dict[str, Any]:
    """Per-source dev figures at ``thresholds`` (the 17 score keys and ``unsafe``)."""
    dev = dev if dev is not None else dev_sets(data)
    probs = probs if probs is not None else {k: score_rows(model, v) for k, v in dev.items()}
    rep: dict[str, Any] = {
        "model_id": getattr(model, "model_id", "?"),
        "dev_rows": {k: len(v) for k, v in dev.items()},
    }
    # UnSmile: the ten labels at the calibrated thresholds
    y, _ = dev["unsmile"].targets()
    cols = [COL[k] for k in LABEL_KEYS]
    th10 = [thresholds[k] for k in LABEL_KEYS]
    met = multilabel_metrics(y[:, cols], probs["unsmile"][:, cols], th10)
    rep["unsmile"] = {
        "macro_f1": met["macro_f1"],
        "micro_f1": met["micro_f1"],
        "lrap": met["lrap"],
        "per_label": {
            k: {**d, "threshold": t, "auroc": auroc(y[:, COL[k]], probs["unsmile"][:, COL[k]])}
            for k, d, t in zip(LABEL_KEYS, met["per_label"], th10, strict=True)
        },
    }
    # perturbed UnSmile dev (a seed training did not use); the model's own normaliser runs on it
    rng = random.Random(PERTURB_SEED)
    pert = dev["unsmile"].subset(range(len(dev["unsmile"])))
    pert.first = [perturb(t, rng) for t in pert.first]
    p_pert = score_rows(model, pert)
    met_p = multilabel_metrics(y[:, cols], p_pert[:, cols], th10)
    rep["unsmile_perturbed"] = {
        "macro_f1": met_p["macro_f1"],
        "lrap": met_p["lrap"],
        "drop": met["macro_f1"] - met_p["macro_f1"],
        "changed_rows": int(sum(a != b for a, b in zip(pert.first, dev["unsmile"].first, strict=True))),
    }
    # HateScore: false flags on Clean rows (neutral sentences naming groups), recall on hate rows
    y_h, _ = dev["hatescore"].targets()
    flags = flagged(probs["hatescore"], thresholds)
    clean = y_h[:, COL["clean"]] == 1
    rep["hatescore"] = {
        "clean_rows": int(clean.sum()),
        "clean_false_flag_rate": float(flags[clean].mean()) if clean.any() else float("nan"),
        "hate_rows": int((~clean).sum()),
        "hate_recall": float(flags[~clean].mean()) if (~clean).any() else float("nan"),
        "unsafe_auroc": auroc(1 - y_h[:, COL["clean"]], 1 - probs["hatescore"][:, COL["clean"]]),
    }
    yc, pc = _known(dev["curse"], probs["curse"], "profanity")
    rep["curse"] = {"n": len(yc), **binary_metrics(yc, pc, thresholds["profanity"])}
    # DKTC: every row harmful; recall of violence / crime / any flag
    yd, _ = dev["dktc"].targets()
    pd = probs["dktc"]
    crime_rows = yd[:, COL["crime"]] == 1
    rep["dktc"] = {
        "n": len(yd),
        "violence_recall": float((pd[:, COL["violence"]] >= thresholds["violence"]).mean()),
        "crime_recall_on_extortion": float((pd[crime_rows, COL["crime"]] >= thresholds["crime"]).mean()),
        "flag_recall": float(flagged(pd, thresholds).mean()),
    }
    # OpenAI moderation half: AUROC per category (and how many dev positives it rests on)
    rep["openai"] = {}
    for k in ("sexual", "sexual_minors", "violence", "self_harm", "unsafe"):
        yo, po = _known(dev["openai"], probs["openai"], k)
        rep["openai"][k] = {"positives": int(yo.sum()), "n": len(yo), "auroc": auroc(yo, po)}
    # replies
    rep["replies"] = {}
    for name in REPLY_SOURCES:
        yr, pr = _known(dev[name], probs[name], "unsafe")
        rep["replies"][name] = {"n": len(yr), **binary_metrics(yr, pr, thresholds["unsafe"])}
    actions = dna_actions(data)
    yn, _ = dev["do_not_answer"].targets()
    if len(actions) == len(yn):
        refusal = (np.asarray(actions) == 0) & (yn[:, COL["unsafe"]] == 0)
        pn = probs["do_not_answer"]
        rep["do_not_answer_refusals"] = {
            "n": int(refusal.sum()),
            "unsafe_flag_rate": float((pn[refusal, COL["unsafe"]] >= thresholds["unsafe"]).mean()),
            "any_flag_rate": float(
                (
                    (pn[refusal, COL["unsafe"]] >= thresholds["unsafe"]) | flagged(pn[refusal], thresholds)
                ).mean()
            ),
        }
    yq, _ = dev["requests"].targets()
    pq = probs["requests"]
    comply = yq[:, COL["unsafe"]] == 1
    rep["requests"] = {
        "refusals": int((~comply).sum()),
        "refusal_flag_rate": float((pq[~comply, COL["unsafe"]] >= thresholds["unsafe"]).mean()),
        "compliance_recall": float((pq[comply, COL["unsafe"]] >= thresholds["unsafe"]).mean()),
    }
    # safety keys pooled over every dev row that knows them
    rep["safety"] = {}
    for k in SAFETY_KEYS:
        ys, ps = [], []
        for name, rows in dev.items():
            a, b = _known(rows, probs[name], k)
            ys.append(a)
            ps.append(b)
        yy, pp = np.concatenate(ys), np.concatenate(ps)
        rep["safety"][k] = {"positives": int(yy.sum()), "n": len(yy), **binary_metrics(yy, pp, thresholds[k])}
    # the judge's precision at candidate block thresholds, pooled over the reply sources
    ys, ps = [], []
    for name in REPLY_SOURCES:
        a, b = _known(dev[name], probs[name], "unsafe")
        ys.append(a)
        ps.append(b)
    yy, pp = np.concatenate(ys), np.concatenate(ps)
    rep["unsafe_precision"] = {
        f"{t:.2f}": {"precision": binary_metrics(yy, pp, t)["precision"], "flagged": int((pp >= t).sum())}
        for t in (thresholds["unsafe"], 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
    }
    rep["unsafe_pooled_auroc"] = auroc(yy, pp)
    return rep


def read_thresholds(model_dir: Path) -> dict[str, float]:
    """``thresholds.json`` of a multitask model as one key → threshold map."""
    raw = json.loads((model_dir / "thresholds.json").read_text(encoding="utf-8"))
    return {**raw["labels"], **raw["safety"], "unsafe": float(raw["unsafe"])}


CHECKS_DIR = Path(__file__).resolve().parents[2] / "tests" / "models" / "checks"


def read_checks(checks_dir: Path = CHECKS_DIR) -> list[dict[str, Any]]:
    """The hand-written functional checks (``tests/models/checks/*.jsonl``)."""
    cases: list[dict[str, Any]] = []
    for path in sorted(checks_dir.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                cases.append(json.loads(line))
    return cases


def functional_checks(model: Any, policy: Any, cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Each case through the model and the policy: per behaviour, the share that behaved as expected
    (``allow`` not flagged / ``flag`` flagged) and, for flags, the share whose expected category fired
    (``unsafe``: the judge's P(unsafe) reached review). Every miss is listed."""
    comments = [c for c in cases if c["kind"] == "comment"]
    replies = [c for c in cases if c["kind"] == "reply"]
    outs: list[tuple[dict[str, Any], F32, float | None]] = []
    if comments:
        res = model.score_comments([c["text"] for c in comments])
        outs += [(c, res.scores[i], None) for i, c in enumerate(comments)]
    if replies:
        res = model.score_replies([(c["prompt"], c["reply"]) for c in replies])
        outs += [(c, res.scores[i], float(res.unsafe[i])) for i, c in enumerate(replies)]
    per: dict[str, dict[str, Any]] = {}
    by_lang: dict[str, dict[str, Any]] = {}
    misses: list[dict[str, Any]] = []
    for case, scores, unsafe in outs:
        d = policy.decide(scores, unsafe)
        flagged = d.action != "allow"
        ok = flagged if case["expect"] == "flag" else not flagged
        cat = case.get("category")
        hit = None
        if case["expect"] == "flag" and cat:
            hit = (
                (unsafe is not None and unsafe >= policy.judge_review)
                if cat == "unsafe"
                else cat in d.categories
            )
        b = per.setdefault(case["behaviour"], {"n": 0, "passed": 0, "category_hits": 0, "category_cases": 0})
        b["n"] += 1
        b["passed"] += int(ok)
        if hit is not None:
            b["category_cases"] += 1
            b["category_hits"] += int(hit)
        if not ok or hit is False:
            text = case.get("text") or f"{case['prompt']} → {case['reply']}"
            misses.append({"behaviour": case["behaviour"], "expect": case["expect"], "category": cat,
                           "action": d.action, "categories": d.categories,
                           "unsafe": None if unsafe is None else round(unsafe, 3), "text": text})  # fmt: skip
        text_all = (case.get("text") or "") + (case.get("reply") or "")
        lang = "ko" if any("\uac00" <= ch <= "\ud7a3" for ch in text_all) else "en"
        g = by_lang.setdefault(f"{lang}_{case['expect']}", {"n": 0, "passed": 0})
        g["n"] += 1
        g["passed"] += int(ok)
    for b in per.values():
        b["pass_rate"] = b["passed"] / b["n"]
        b["category_rate"] = b["category_hits"] / b["category_cases"] if b["category_cases"] else None
    return {"behaviours": per, "by_language": by_lang, "misses": misses, "n": len(outs)}
