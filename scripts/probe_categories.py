"""Do the safety category tags name the right harm? Dev rows harmful in one known category, scored by a
shipped multitask model under its policy's thresholds.

Why: a request or reply harmful in one category (a bomb recipe: weapons) should not be tagged with the
others (sexual_minors). Until the seventh generation, training masked the categories a source does not
label, so nothing taught the heads that a weapons request is *not* sexual_minors; now a harmful row is
a known negative for every category outside its ``sources.CATEGORY_OVERLAPS``. Here "another category"
is any other category (the old measure), and "known negatives" only those the labels rule out
(not an overlap: a weapons row tagged crime is not counted against it there). Two ways of keeping only
the leading tags are measured against tagging every category over its threshold (what the policy does).

Last, the policy's opt-in leading-category rule (``judge.name_leading``: a flagged reply that names
nothing otherwise gets its top safety category): on the (prompt, reply) dev rows, how many flagged rows
it names and how often the name is a true or a ruled-out category; on the functional checks, each case
whose categories change when it is on.

    python scripts/probe_categories.py [--model models/moderator-multitask-e5-small] [--data ../shared/data]

CPU, ~3 min on 2 cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np
import numpy.typing as npt

from moderator.core.policy import Policy, load_policy
from moderator.evaluation import auroc
from moderator.runtime.metadata import read_metadata
from moderator.runtime.multitask import EncoderMultitask
from moderator.runtime.options import RuntimeOptions
from moderator.settings import DEFAULT_MODEL
from onnx_export.train import sources as src
from onnx_export.train.multitask import MultitaskConfig, build_rows
from onnx_export.train.report import functional_checks, read_checks, score_rows
from topics.labels import LABEL_KEYS, SAFETY_KEYS

SOURCES = ("requests", "openai")


def _logit(p: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    q = np.clip(p.astype(np.float64), 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q))


def _tags(
    name: str, fire: npt.NDArray[np.bool_], truth: npt.NDArray[np.bool_], negative: npt.NDArray[np.bool_]
) -> dict[str, float]:
    tp, fp, fn = (fire & truth).sum(), (fire & ~truth).sum(), (~fire & truth).sum()
    fp_known = (fire & negative).sum()
    return {
        "rule": name,  # type: ignore[dict-item]
        "tags_per_row": float(fire.sum(1).mean()),
        "true_category_tagged": float((fire & truth).any(1).mean()),
        "precision": float(tp / max(tp + fp, 1)),
        "precision_known": float(tp / max(tp + fp_known, 1)),
        "recall": float(tp / max(tp + fn, 1)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    model = EncoderMultitask(args.model, read_metadata(args.model), RuntimeOptions(device="cpu"))
    policy = json.loads((args.model / "policy.json").read_text())
    th = np.array([policy["safety"][k]["threshold"] for k in SAFETY_KEYS])
    col = [src.COL[k] for k in SAFETY_KEYS]
    _, dev = build_rows(args.data, MultitaskConfig(dev_cap=300))
    for name in SOURCES:
        rows = dev[name]
        probs = score_rows(model, rows)
        y, m = rows.targets()
        truth_all = np.stack([(m[:, j] > 0) & (y[:, j] == 1) for j in col], 1)
        negative_all = np.stack([(m[:, j] > 0) & (y[:, j] == 0) for j in col], 1)
        harmful = truth_all.any(1)
        p, truth, negative = probs[harmful][:, col], truth_all[harmful], negative_all[harmful]
        print(f"\n{name}: {int(harmful.sum())} rows harmful in a known category")
        for i, key in enumerate(SAFETY_KEYS):
            pos, neg = truth[:, i], truth.any(1) & ~truth[:, i]
            if pos.sum() and neg.sum():
                y_pn = np.r_[np.ones(int(pos.sum())), np.zeros(int(neg.sum()))]
                print(
                    f"  {key:14s} positives {int(pos.sum()):3d}, harmful in another category {int(neg.sum()):3d}: "
                    f"AUROC {auroc(y_pn, np.r_[p[pos, i], p[neg, i]]):.3f}; tagged on those others "
                    f"{np.mean(p[neg, i] >= th[i]):.2f}, on its own {np.mean(p[pos, i] >= th[i]):.2f}"
                )
            known = truth.any(1) & negative[:, i]
            if pos.sum() and known.sum():
                print(
                    f"  {'':14s} tagged on the {int(known.sum())} rows whose labels rule it out: "
                    f"{np.mean(p[known, i] >= th[i]):.2f}"
                )
        over = p >= th
        results = [_tags("every category over its threshold (policy)", over, truth, negative)]
        margin, raw = _logit(p) - _logit(th), _logit(p)
        for what, score in (("the best margin over threshold", margin), ("the highest score", raw)):
            best = np.where(over, score, -np.inf).max(1, keepdims=True)
            for delta in (0.0, 1.0, 2.0):
                kept = over & (score >= best - delta)
                results.append(_tags(f"within {delta:g} logit of {what}", kept, truth, negative))
        for r in results:
            print(
                f"  {r['rule']:58s} tags/row {r['tags_per_row']:.2f}, true category tagged "
                f"{r['true_category_tagged']:.2f}, precision {r['precision']:.2f} "
                f"(known negatives only {r['precision_known']:.2f}), recall {r['recall']:.2f}"
            )
        best_raw = np.where(over, raw, -np.inf).argmax(1)
        pairs = Counter(
            (SAFETY_KEYS[int(t.argmax())], SAFETY_KEYS[int(b)])
            for t, b, o in zip(truth, best_raw, over, strict=True)
            if o.any()
        )
        print(
            "  (true, highest-scoring tag):", ", ".join(f"{a}→{b} {n}" for (a, b), n in pairs.most_common(10))
        )
    shipped = load_policy(args.model / "policy.json")
    _leading_on_dev(model, dev, shipped)
    _leading_on_checks(model, shipped)
    return 0


LEADING_FLOOR = 0.02


def _leading_on_dev(model: EncoderMultitask, dev: dict[str, src.Rows], policy: Policy) -> None:
    """Per (prompt, reply) dev source: rows the judge flags that name nothing without the rule, those
    it names, and of the harmful ones how many get a true category or one their labels rule out."""
    on = dataclasses.replace(policy, name_leading=LEADING_FLOOR)
    print(f"\nleading-category rule (judge.name_leading {LEADING_FLOOR}) on (prompt, reply) dev rows:")
    for name, rows in dev.items():
        pair = [i for i, second in enumerate(rows.second) if second is not None]
        if not pair:
            continue
        probs = score_rows(model, rows)
        y, m = rows.targets()
        counts = dict.fromkeys(("harmful_silent", "named", "right", "ruled_out", "harmless_named"), 0)
        for i in pair:
            scores, unsafe = (
                probs[i, : len(LABEL_KEYS) + len(SAFETY_KEYS)],
                float(probs[i, src.COL["unsafe"]]),
            )
            if policy.decide(scores, unsafe).categories or unsafe < policy.judge_review:
                continue
            lead = on.decide(scores, unsafe).categories
            harmful = m[i, src.COL["unsafe"]] > 0 and y[i, src.COL["unsafe"]] > 0.5
            harmless = m[i, src.COL["unsafe"]] > 0 and y[i, src.COL["unsafe"]] < 0.5
            counts["harmful_silent"] += int(harmful)
            counts["harmless_named"] += int(harmless and bool(lead))
            if harmful and lead:
                j = src.COL[lead[0]]
                counts["named"] += 1
                counts["right"] += int(m[i, j] > 0 and y[i, j] > 0.5)
                counts["ruled_out"] += int(m[i, j] > 0 and y[i, j] < 0.5)
        print(f"  {name:14s} " + ", ".join(f"{k} {v}" for k, v in counts.items()))


def _leading_on_checks(model: EncoderMultitask, policy: Policy) -> None:
    """The functional checks whose categories change with the rule on, and the behaviours' category
    rates off → on."""
    on = dataclasses.replace(policy, name_leading=LEADING_FLOOR)
    cases = read_checks()
    off_r, on_r = functional_checks(model, policy, cases), functional_checks(model, on, cases)
    print("\nfunctional checks, category hits without → with the rule:")
    for name, b in off_r["behaviours"].items():
        after = on_r["behaviours"][name]
        if b["category_hits"] != after["category_hits"]:
            print(f"  {name}: {b['category_hits']} → {after['category_hits']} of {b['category_cases']}")
    before = {(m["behaviour"], m["text"]): m["categories"] for m in off_r["misses"]}
    for miss in on_r["misses"]:
        old = before.get((miss["behaviour"], miss["text"]))
        if old is not None and old != miss["categories"]:
            want = f"expected {miss['category']}" if miss["category"] else f"expected {miss['expect']}"
            print(
                f"  [{miss['behaviour']}] {miss['text'][:70]} ({want}, {miss['action']}): {old} → {miss['categories']}"
            )


if __name__ == "__main__":
    raise SystemExit(main())
