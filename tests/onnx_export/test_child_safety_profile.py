"""The default policy's child_safety profile: levels that keep 95% of dev positives, as a policy loads them."""

from __future__ import annotations

import numpy as np

from moderator.core.policy import parse_policy
from onnx_export.train import sources as src
from onnx_export.train.report import REPLY_SOURCES
from onnx_export.train.ship_multitask import CHILD_SAFETY_RECALL, child_safety_profile, default_policy
from topics.labels import LABEL_KEYS, MULTITASK_KEYS, SAFETY_KEYS

COL = src.COL


def _dev(rng: np.random.Generator) -> tuple[dict[str, src.Rows], dict[str, np.ndarray]]:
    """Rows labelled for self_harm (40 positives of 400), sexual_minors (none) and unsafe (reply sources)."""
    dev: dict[str, src.Rows] = {}
    probs: dict[str, np.ndarray] = {}
    for name in ("openai", *REPLY_SOURCES):
        rows = src.Rows()
        scores = []
        for i in range(100):
            positive = i % 10 == 0
            known = (
                {COL["unsafe"]: float(positive)}
                if name in REPLY_SOURCES
                else {COL["self_harm"]: float(positive)}
            )
            rows.add(f"text {i}", "reply" if name in REPLY_SOURCES else None, known, name)
            row = np.zeros(len(MULTITASK_KEYS), np.float32)
            row[COL["unsafe"] if name in REPLY_SOURCES else COL["self_harm"]] = (
                rng.uniform(0.2, 0.9) if positive else rng.uniform(0.0, 0.5)
            )
            scores.append(row)
        dev[name], probs[name] = rows, np.asarray(scores, np.float32)
    return dev, probs


def test_levels_keep_the_recall_target_and_never_rise_above_the_default() -> None:
    dev, probs = _dev(np.random.default_rng(3))
    thresholds = dict.fromkeys((*LABEL_KEYS, *SAFETY_KEYS, "unsafe"), 0.5)
    profile, report = child_safety_profile(dev, probs, thresholds)
    # unsafe has 40 dev positives (four reply sources); self_harm 10: too few to set a 95% level from
    assert set(report["keys"]) == {"unsafe"}
    assert report["left_at_default"] == {"self_harm": 10, "sexual_minors": 0}
    d = report["keys"]["unsafe"]
    assert d["positives"] == 40 and d["profile"]["recall"] >= CHILD_SAFETY_RECALL
    assert d["profile"]["level"] <= d["default"]["level"] == 0.5
    assert d["profile"]["flag_rate"] >= d["default"]["flag_rate"]
    # the level is the score of the positive that the target still needs, rounded down
    needed = int(np.ceil(CHILD_SAFETY_RECALL * 40))
    unsafe = np.concatenate(
        [probs[n][[i for i in range(100) if i % 10 == 0], COL["unsafe"]] for n in REPLY_SOURCES]
    )
    assert d["profile"]["level"] == min(np.floor(np.sort(unsafe)[::-1][needed - 1] * 1e4) / 1e4, 0.5)
    assert set(profile) == {"description", "judge"} and profile["judge"] == {"review": d["profile"]["level"]}
    assert "self_harm (10 dev positives)" in profile["description"]

    # with enough positives a safety key is lowered too, its block band kept
    more, _ = child_safety_profile(dev, probs, thresholds, min_positives=5)
    assert set(more["safety"]) == {"self_harm"}
    assert more["safety"]["self_harm"]["threshold"] <= 0.5

    # as the default policy carries it: loads, routes nowhere, lowers only what it names
    doc = default_policy(thresholds, {"unsafe_precision": {}}, profiles={"child_safety": more})
    policy = parse_policy(doc)
    child = policy.profiles["child_safety"]
    assert policy.bots == {} and policy.channels == {}
    assert child.safety["self_harm"].threshold == more["safety"]["self_harm"]["threshold"]
    assert child.safety["self_harm"].block == policy.safety["self_harm"].block
    assert child.judge_review == more["judge"]["review"] and child.judge_block == policy.judge_block
    assert child.safety["violence"] == policy.safety["violence"] and child.labels == policy.labels
