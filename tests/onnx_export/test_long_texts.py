"""Window-shaped training rows and the ``long`` review levels calibrated on long clean texts."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from onnx_export.train import sources as src
from onnx_export.train.long_texts import FLAG_KEYS, LONG_CLEAN_QUANTILE, calibrate_long, long_texts
from onnx_export.train.multitask import window_like
from topics.labels import MULTITASK_KEYS

COL = src.COL
CLEAN = [f"오늘 산책을 {i}번 했어요" for i in range(40)]
HATEFUL = [f"혐오 문장 {i} 한남충" for i in range(10)]


def comments() -> src.Rows:
    rows = src.Rows()
    for t in CLEAN:
        rows.add(t, None, src.all_clean(), "unsmile")
    for t in HATEFUL:
        rows.add(t, None, {COL["men"]: 1.0, COL["clean"]: 0.0, COL["unsafe"]: 1.0}, "unsmile")
    return rows


def test_window_like_rows_join_comments_and_carry_the_hidden_comments_targets() -> None:
    rows = window_like(comments(), 200, random.Random(1))
    assert len(rows) == 200
    y, m = rows.targets()
    for i, text in enumerate(rows.first):
        assert rows.second[i] is None
        hidden = [h for h in HATEFUL if h in text]
        if rows.source[i] == "window_clean":
            assert not hidden and m[i].all() and y[i, COL["clean"]] == 1 and y[i].sum() == 1
            assert 2 <= sum(c in text for c in CLEAN) <= 5
        else:
            assert rows.source[i] == "window_hate" and len(hidden) == 1
            # only what the hidden comment's source knew is known; at most two comments precede it
            assert y[i, COL["men"]] == 1 and y[i, COL["clean"]] == 0 and m[i].sum() == 3
            assert text.index(hidden[0]) <= sum(len(c) + 1 for c in sorted(CLEAN, key=len)[-2:])
    assert {"window_clean", "window_hate"} == set(rows.source)
    assert len(window_like(src.Rows(), 10, random.Random(1))) == 0


def test_long_texts_are_built_from_dev_comments_and_hide_one_hateful_comment() -> None:
    dev = {"unsmile": comments(), "hatescore": src.Rows()}
    clean, hate, hidden = long_texts(dev, 5, seed=3)
    assert len(clean) == len(hate) == len(hidden) == 5
    for c, h, x in zip(clean, hate, hidden, strict=True):
        assert len(c) >= 600 and not any(t in c for t in HATEFUL)
        assert x in HATEFUL and h.count(x) == 1 and len(h) == len(c) + len(x) + 1


@dataclass
class _Out:
    probs: np.ndarray
    truncated: list[bool]
    padded_tokens: int = 0


class _ScoreByWord:
    """A model without a tokenizer (so each text is one row): ``men`` scores 0.9 on 한남충, else a score
    drawn from the text's hash, so long clean texts spread over [0, 0.5)."""

    def score_comments(self, texts: list[str]) -> Any:
        probs = np.zeros((len(texts), len(MULTITASK_KEYS)), np.float32)
        for i, t in enumerate(texts):
            probs[i, COL["men"]] = 0.9 if "한남충" in t else (hash(t) % 1000) / 2000
        return _Out(probs, [False] * len(texts))


def test_calibrate_long_raises_a_level_to_the_clean_quantile_and_never_lowers_it() -> None:
    dev = {"unsmile": comments(), "hatescore": src.Rows()}
    thresholds = dict.fromkeys(FLAG_KEYS, 0.2)
    long, report = calibrate_long(_ScoreByWord(), dev, thresholds, n=200, seed=5)
    clean, _, _ = long_texts(dev, 200, seed=5)
    scores = np.asarray([(hash(t) % 1000) / 2000 for t in clean])
    assert long["men"] == pytest.approx(np.quantile(scores, LONG_CLEAN_QUANTILE) + 1e-4, abs=1e-4)
    assert all(long[k] == 0.2 for k in FLAG_KEYS if k != "men"), "a key no clean text reaches keeps its level"
    assert report["clean_flagged_at_long_levels"] <= 1 - LONG_CLEAN_QUANTILE + 1e-9
    assert report["clean_flagged_at_single_thresholds"] > 0.5
    assert report["hidden_hate_caught_in_long_text_at_long_levels"] == 1.0
    assert report["raised"] == {"men": [0.2, long["men"]]}
