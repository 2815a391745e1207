"""Long texts read in windows: which windowing finds hate hidden in padding, what it costs per window.

Long texts are built from UnSmile *dev* rows (never trained on): ``padded``: clean dev comments joined
to about ``--chars`` characters with one hate dev comment put at a random place; ``clean``: clean dev
comments only, same length. For each windowing the shipped model scores every text as the pipeline
does (``WindowedMultitask`` for the multitask model, ``WindowedClassifier`` otherwise: windows as rows
of the model's token-budget batching, max pooling) and the default policy decides on every column
(hate labels and, for the multitask model, safety categories). Compared: fixed overlapping windows of
``--sizes`` tokens, and whole sentences packed into windows of at most ``--sentence-units`` tokens
(64-token windows inside a longer sentence; 24 is the serving default). Reported: hate found in padded texts (against the same hate comments scored
alone), long clean texts flagged (against the per-comment false-flag rate of the clean rows used),
windows per text, milliseconds per window and per 1,000 characters. Run:

    .venv/bin/python -m bench.long_texts --texts 20 --chars 2000
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import DATA_DIR
from moderator.core.policy import load_policy
from moderator.evaluation import read_unsmile_tsv
from moderator.runtime.loader import load_classifier
from moderator.runtime.options import RuntimeOptions
from moderator.runtime.windowed import Scored, WindowedClassifier, WindowedMultitask
from moderator.runtime.windows import WindowConfig
from moderator.settings import DEFAULT_CLASSIFIER, DEFAULT_POLICY
from topics import LABEL_KEYS, normalize_text
from topics.labels import MULTITASK_KEYS

DATA = DATA_DIR / "unsmile"


def dev_rows(data: Path) -> tuple[list[str], list[str]]:
    """(clean dev comments, hate dev comments) of UnSmile's fixed dev split."""
    rows = read_unsmile_tsv(data / "unsmile_train_v1.0.tsv")
    dev = json.loads((data / "train_dev_split.json").read_text())["dev"]
    clean_col = LABEL_KEYS.index("clean")
    labels = np.asarray(rows.labels)
    clean = [normalize_text(rows.texts[i]) for i in dev if labels[i, clean_col] == 1]
    hate = [normalize_text(rows.texts[i]) for i in dev if labels[i, :clean_col].sum() > 0]
    return clean, hate


def build(
    clean: list[str], hate: list[str], n: int, chars: int, rng: random.Random
) -> tuple[list[str], list[str], list[str]]:
    padded, only_clean, needles = [], [], []
    for _ in range(n):
        parts: list[str] = []
        while sum(len(p) + 1 for p in parts) < chars:
            parts.append(rng.choice(clean))
        only_clean.append(" ".join(parts))
        needle = rng.choice(hate)
        needles.append(needle)
        body = parts[:]
        body.insert(rng.randrange(len(body) + 1), needle)
        padded.append(" ".join(body))
    return padded, only_clean, needles


#: Everyday sentences written for this check: what a long, harmless comment or story reads like.
FRIENDLY = [
    "오늘 날씨가 정말 좋아서 친구들이랑 공원에 산책을 다녀왔어요.",
    "주말에 가족들과 맛있는 저녁을 먹으면서 즐거운 시간을 보냈습니다.",
    "새로 시작한 드라마가 너무 재미있어서 다음 화가 기다려져요.",
    "도서관에서 빌린 책을 다 읽었는데 마지막 장면이 감동적이었어요.",
    "동네 빵집에서 산 크루아상이 바삭하고 고소해서 또 가고 싶네요.",
    "요즘 아침마다 조깅을 하는데 몸도 마음도 가벼워지는 느낌이에요.",
    "강아지랑 한강에서 피크닉을 했는데 사람들이 많이 귀여워해 줬어요.",
    "이번 여름휴가는 제주도로 가려고 숙소를 알아보는 중이에요.",
    "회사 동료가 생일이라고 케이크를 사 와서 다 같이 나눠 먹었어요.",
    "퇴근하고 좋아하는 음악을 들으면서 천천히 걸어오니 기분이 좋네요.",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--texts", type=int, default=20)
    ap.add_argument("--chars", type=int, default=2000)
    ap.add_argument(
        "--sizes", default="32,64,128,0", help="window tokens to compare (0: the model's maximum)"
    )
    ap.add_argument(
        "--sentence-units",
        default="16,24,32",
        help="sentence-packed windows to compare: at most this many tokens of whole sentences each",
    )
    ap.add_argument("--overlap", type=float, default=0.25, help="share of a window its neighbour repeats")
    ap.add_argument("--everyday-only", action="store_true", help="skip the UnSmile-clean padding")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    clean, hate = dev_rows(args.data)
    classifier = load_classifier(
        DEFAULT_CLASSIFIER, RuntimeOptions(device="cpu", intra_op_threads=args.threads)
    )
    policy = load_policy(DEFAULT_POLICY)

    def flagged(scores: np.ndarray) -> list[bool]:
        return [bool(policy.decide(row, None).categories) for row in scores]

    def scorer(config: WindowConfig) -> Any:
        """What the pipeline scores comments with: the multitask model's every column, or the classifier's."""
        multitask = getattr(classifier, "multitask", None)
        if multitask is not None:
            return WindowedMultitask(multitask, MULTITASK_KEYS, config).score_comments
        return WindowedClassifier(classifier, config).score

    def score(config: WindowConfig, texts: list[str]) -> Scored:
        return scorer(config)(texts)

    # UnSmile padding = clean dev comments the model does not flag alone, so a flag on a long clean
    # text is the windowing's doing. They are hard negatives still: news comments about the groups.
    alone_clean = flagged(score(WindowConfig(), clean).scores)
    quiet = [c for c, f in zip(clean, alone_clean, strict=True) if not f]
    paddings = {"everyday sentences": FRIENDLY, f"UnSmile dev clean ({len(quiet)} unflagged alone)": quiet}
    if args.everyday_only:
        del paddings[f"UnSmile dev clean ({len(quiet)} unflagged alone)"]
    print(
        f"{args.texts} texts with one UnSmile dev hate comment at a random place + {args.texts} without, "
        f"~{args.chars} chars each, per padding; overlap {args.overlap}; policy: default"
    )
    header = f"{'padding':34s} {'window':>14s} {'hate found':>10s} {'clean flagged':>13s} {'windows/text':>12s} {'ms/window':>9s} {'ms/1k chars':>11s}"
    print(header)
    for name, padding in paddings.items():
        rng = random.Random(20261129)
        padded, used_clean, needles = build(padding, hate, args.texts, args.chars, rng)
        alone = np.mean(flagged(score(WindowConfig(), needles).scores))
        configs = [(int(s), 0) for s in args.sizes.split(",")]
        configs += [(64, int(u)) for u in args.sentence_units.split(",")]
        for size, unit in configs:
            config = WindowConfig(max_windows=10_000, overlap=args.overlap, tokens=size, sentence_tokens=unit)
            run = scorer(config)
            label = f"sentences <={unit}" if unit else f"fixed {size or 'max'}"
            run(padded[:2])  # warm
            started = time.perf_counter()
            found = run(padded)
            hit = run(used_clean)
            seconds = time.perf_counter() - started
            windows = found.windows + hit.windows
            chars = sum(map(len, padded)) + sum(map(len, used_clean))
            print(
                f"{name:34s} {label:>14s} {np.mean(flagged(found.scores)):>10.2f} "
                f"{np.mean(flagged(hit.scores)):>13.2f} {windows / (2 * args.texts):>12.1f} "
                f"{seconds / windows * 1000:>9.2f} {seconds / chars * 1e6:>11.1f}"
            )
        print(f"{'':34s} (the same hate comments alone: {alone:.2f} flagged)")


if __name__ == "__main__":
    main()
