"""Review levels for scores pooled over the windows of a long text, calibrated on long dev texts.

Why: serving reads a long text as ~64-token windows and takes the max per key (see
``moderator.runtime.windows``). A threshold picked on single comments is crossed by one of sixty
windows of ordinary talk far more often than by one comment, so a long friendly text gets flagged.
Each key's ``long`` level (``policy.LabelBand.long``) is the smallest level at or above its single-text
threshold that at most ``LONG_CLEAN_QUANTILE`` of long clean dev texts reach. Long texts are built
from the dev parts only (clean UnSmile and HateScore comments joined until a length drawn from
``LENGTHS``), scored the way the pipeline scores them (normalised, windowed, max-pooled), and the
report also gives the recall on long texts that hide one hateful dev comment somewhere inside.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from moderator.core.normalize import normalize_text
from moderator.runtime.windowed import WindowedMultitask
from onnx_export.train import sources as src
from onnx_export.train.report import FLAG_KEYS, flagged
from topics.labels import MULTITASK_KEYS

#: Share of long clean dev texts a key's ``long`` level may still flag.
LONG_CLEAN_QUANTILE = 0.99
#: Character lengths of the long texts (drawn uniformly): a few windows up to ~100.
LENGTHS = (600, 4000)
COL = src.COL


def _comments(dev: dict[str, src.Rows], clean: bool) -> list[str]:
    """Dev comments of UnSmile and HateScore that are (not) clean."""
    out = []
    j = COL["clean"]
    for name in ("unsmile", "hatescore"):
        rows = dev[name]
        y, m = rows.targets()
        for i, text in enumerate(rows.first):
            if rows.second[i] is None and m[i, j] > 0 and (y[i, j] == 1) == clean:
                out.append(text)
    return out


def long_texts(dev: dict[str, src.Rows], n: int, seed: int) -> tuple[list[str], list[str], list[str]]:
    """``n`` long clean texts, ``n`` long texts hiding one hateful comment, and those comments."""
    rng = random.Random(seed)
    clean = _comments(dev, clean=True)
    hateful = _comments(dev, clean=False)
    out_clean, out_hate, hidden = [], [], []
    for _ in range(n):
        target = rng.randint(*LENGTHS)
        parts: list[str] = []
        while sum(len(p) + 1 for p in parts) < target:
            parts.append(rng.choice(clean))
        out_clean.append(normalize_text(" ".join(parts)))
        h = rng.choice(hateful)
        parts.insert(rng.randint(0, len(parts)), h)
        out_hate.append(normalize_text(" ".join(parts)))
        hidden.append(normalize_text(h))
    return out_clean, out_hate, hidden


def calibrate_long(model: Any, dev: dict[str, src.Rows], thresholds: dict[str, float], n: int = 200,
                   seed: int = 4242) -> tuple[dict[str, float], dict[str, Any]]:  # fmt: skip
    """(``long`` level per flag key, report). ``model``: an ``EncoderMultitask`` as shipped."""
    windowed = WindowedMultitask(model, MULTITASK_KEYS)
    clean, hate, hidden = long_texts(dev, n, seed)
    pooled_clean = windowed.score_comments(clean)
    pooled_hate = windowed.score_comments(hate)
    alone = model.score_comments(hidden).probs
    long: dict[str, float] = {}
    for k in FLAG_KEYS:
        q = float(np.quantile(pooled_clean.scores[:, COL[k]], LONG_CLEAN_QUANTILE))
        # just above the quantile, so the texts at it are not flagged; never below the single level
        long[k] = round(max(thresholds[k], min(q + 1e-4, 1.0)), 4)
    single = {k: thresholds[k] for k in FLAG_KEYS}
    hidden_caught = flagged(alone, single)
    hate_caught = flagged(pooled_hate.scores, long)
    report = {
        "texts": n,
        "characters": list(LENGTHS),
        "windows_per_text": round(pooled_clean.windows / n, 1),
        "quantile": LONG_CLEAN_QUANTILE,
        "clean_flagged_at_single_thresholds": float(flagged(pooled_clean.scores, single).mean()),
        "clean_flagged_at_long_levels": float(flagged(pooled_clean.scores, long).mean()),
        "hidden_hate_caught_alone": float(hidden_caught.mean()),
        "hidden_hate_caught_in_long_text_at_long_levels": float(hate_caught.mean()),
        "hidden_hate_caught_in_long_text_of_those_caught_alone": float(hate_caught[hidden_caught].mean()),
        "raised": {k: [single[k], long[k]] for k in FLAG_KEYS if long[k] > single[k]},
    }
    return long, report
