"""Attribute levels: which harm a flagged reply names, chosen among harmful dev rows only."""

from __future__ import annotations

import numpy as np

from moderator.core.policy import parse_policy
from onnx_export.train import sources as src
from onnx_export.train.report import REPLY_SOURCES
from onnx_export.train.ship_multitask import calibrate_attribution, child_safety_profile, default_policy
from topics.labels import LABEL_KEYS, MULTITASK_KEYS, SAFETY_KEYS

COL = src.COL


def _dev() -> tuple[dict[str, src.Rows], dict[str, np.ndarray]]:
    """Harmful rows: 20 drugs (drugs score 0.3-0.5), 20 crime (drugs score 0.05-0.25); harmless rows with
    drugs scores up to 0.6 (they set a high threshold and must not move the attribute level)."""
    rows = src.Rows()
    scores = []
    rng = np.random.default_rng(5)
    for i in range(60):
        kind = ("drugs", "crime", "safe")[i // 20]
        unsafe = kind != "safe"
        known = {COL["unsafe"]: float(unsafe), COL["drugs"]: float(kind == "drugs")}
        if unsafe:
            known[COL["crime"]] = float(kind == "crime")
        rows.add(f"reply {i}", "question", known, "requests")
        row = np.zeros(len(MULTITASK_KEYS), np.float32)
        row[COL["drugs"]] = {"drugs": rng.uniform(0.3, 0.5), "crime": rng.uniform(0.05, 0.25)}.get(
            kind, rng.uniform(0.0, 0.6)
        )
        row[COL["crime"]] = 0.6 if kind == "crime" else 0.1
        scores.append(row)
    # the same rows under every reply source (the child_safety profile reads `unsafe` from each)
    return dict.fromkeys(REPLY_SOURCES, rows), dict.fromkeys(REPLY_SOURCES, np.asarray(scores, np.float32))


def test_attribute_levels_separate_harms_and_stay_under_the_thresholds() -> None:
    dev, probs = _dev()
    thresholds = dict.fromkeys((*LABEL_KEYS, *SAFETY_KEYS, "unsafe"), 0.55)
    levels, report = calibrate_attribution(dev, probs, thresholds)
    assert calibrate_attribution(dev, probs, thresholds, min_positives=81)[0] == {}  # 80 positives each
    # drugs: harmful drugs rows 0.3-0.5, harmful crime rows under 0.25: the cut falls between
    assert 0.25 <= levels["drugs"] <= 0.3
    d = report["keys"]["drugs"]
    assert (d["positives"], d["rows"]) == (80, 160)  # the harmless rows are not among them
    assert d["attribute"]["recall"] == 1.0 and d["attribute"]["precision"] == 1.0
    assert d["threshold"]["recall"] == 0.0  # at the threshold no harmful drugs row is named
    assert levels["crime"] <= thresholds["crime"]
    # keys with no harmful row that knows them get no level
    assert "sexual" not in levels and report["left_without"]["sexual"] == 0

    # carried into the default policy and its child_safety profile, loadable as a policy
    profile, _ = child_safety_profile(dev, probs, thresholds, min_positives=1, attribute=levels)
    doc = default_policy(thresholds, {"unsafe_precision": {}}, profiles={"child_safety": profile},
                         attribute=levels)  # fmt: skip
    policy = parse_policy(doc)
    assert policy.safety["drugs"].attribute == levels["drugs"]
    assert policy.safety["sexual"].attribute is None
    assert policy.profiles["child_safety"].safety["drugs"].attribute == levels["drugs"]
