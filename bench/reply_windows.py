"""Long replies: the reply judge's dev figures (one input cut at the model's length) against serving
(the reply read in windows with the message in each), on the reply dev sets.

The model card's reply tables score a (message, reply) pair as one input that the tokenizer cuts at
``max_length``; the pipeline never cuts silently, so it reads a reply longer than one window in
windows (``WindowedMultitask.score_replies``) and max-pools ``unsafe``. This prints, per dev set,
how many replies need windows, and AUROC, false flags on safe replies and recall on unsafe ones at the
shipped review level, both ways (and with whole-sentence windows, which comments use). Run:

    .venv/bin/python -m bench.reply_windows --rows 500
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench.common import DATA_DIR
from moderator.evaluation import auroc
from moderator.runtime.metadata import read_metadata
from moderator.runtime.multitask import EncoderMultitask
from moderator.runtime.options import RuntimeOptions
from moderator.runtime.windowed import WindowedMultitask
from moderator.runtime.windows import WindowConfig, Windower, plan_sentence_spans
from moderator.settings import DEFAULT_MODEL
from onnx_export.train import sources as src
from onnx_export.train.report import REPLY_SOURCES, dev_sets
from topics.labels import MULTITASK_KEYS

Pairs = list[tuple[str, str]]


class SentencePairWindower(Windower):
    """Serving's windower, except that a pair's reply too is read in windows of whole sentences."""

    def plan(
        self, text: str, offsets: Sequence[tuple[int, int]], size: int, pair: bool
    ) -> tuple[list[tuple[int, int]], bool]:
        config = self.config
        return plan_sentence_spans(
            text, offsets, size, config.sentence_tokens, config.overlap, config.max_windows
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=500, help="pairs per dev set at most (a fixed random draw)")
    ap.add_argument("--data", type=Path, default=DATA_DIR)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    model = EncoderMultitask(
        args.model, read_metadata(args.model), RuntimeOptions(device="cpu", intra_op_threads=args.threads)
    )
    review = float(json.loads((args.model / "thresholds.json").read_text())["unsafe"])
    dev = dev_sets(args.data)
    col = src.COL["unsafe"]
    sets: dict[str, tuple[Pairs, npt.NDArray[np.float32]]] = {}
    for name in REPLY_SOURCES:
        rows = dev[name]
        y, m = rows.targets()
        idx = [i for i, second in enumerate(rows.second) if second is not None and m[i, col] > 0]
        random.Random(1).shuffle(idx)
        idx = idx[: args.rows]
        sets[name] = ([(rows.first[i], rows.second[i] or "") for i in idx], y[idx, col])

    windowed = WindowedMultitask(model, MULTITASK_KEYS, WindowConfig())
    sentences = WindowedMultitask(model, MULTITASK_KEYS, WindowConfig())
    sentences.windower = SentencePairWindower(model.encoder, WindowConfig())
    assert windowed.windower is not None
    ways: dict[str, Callable[[Pairs], npt.NDArray[np.float32]]] = {
        "one input, cut (dev tables)": lambda pairs: model.score_replies(pairs).probs[:, col],
        "windows (serving)": lambda pairs: windowed.score_replies(pairs).scores[:, col],
        "whole-sentence windows": lambda pairs: sentences.score_replies(pairs).scores[:, col],
    }
    print(f"unsafe review level {review}; up to {args.rows} dev pairs per set")
    print(
        f"{'set':15s} {'pairs':>5s} {'windowed':>8s} {'way':28s} {'AUROC':>6s} {'safe flagged':>12s} {'unsafe found':>12s}"
    )
    for name, (pairs, y) in sets.items():
        split = windowed.windower.split([r for _, r in pairs], [p for p, _ in pairs])
        share = float(np.mean([c > 1 for c in split.counts]))
        for way, score in ways.items():
            p = score(pairs)
            safe = y == 0
            area = auroc(y, p) if 0 < y.sum() < len(y) else float("nan")
            print(
                f"{name:15s} {len(pairs):>5d} {share:>8.2f} {way:28s} {area:>6.3f} "
                f"{float((p[safe] >= review).mean()):>12.3f} {float((p[~safe] >= review).mean()):>12.3f}"
            )


if __name__ == "__main__":
    main()
