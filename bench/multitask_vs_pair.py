"""Benchmark: the multitask model (one pass per reply) vs the earlier classifier + judge (two passes).

Same texts (UnSmile dev comments; KoSBi dev (context, reply) pairs), same thread count, same process
order alternated per round. Comments: the multitask model vs the earlier classifier. Replies: one
multitask pass vs the earlier classifier on the reply text plus the earlier judge on the pair, which
is what the worker ran per reply before. The earlier models come from git history (commit 2f3fe0d)
unless ``--old-classifier``/``--old-judge`` point elsewhere. Prints items/s and the ratios.

    python -m bench.multitask_vs_pair --rounds 3 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

OLD_COMMIT = "2f3fe0d"
ROOT = Path(__file__).resolve().parents[1]


def _old_models(work: Path) -> tuple[Path, Path]:
    """Extract the earlier classifier and judge from git history into ``work``."""
    archive = subprocess.run(
        [
            "git",
            "-C",
            str(ROOT),
            "archive",
            OLD_COMMIT,
            "models/unsmile-e5-small",
            "models/kosbi-judge-e5-small",
        ],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
    return work / "models" / "unsmile-e5-small", work / "models" / "kosbi-judge-e5-small"


def _texts(data: Path, n: int) -> tuple[list[str], list[tuple[str, str]]]:
    from moderator.evaluation import read_comments
    from onnx_export.data import KOSBI_FILE, UNSMILE_FILE, read_pairs, read_split

    comments = read_comments(data / UNSMILE_FILE)
    _, dev = read_split((data / UNSMILE_FILE).parent / "train_dev_split.json")
    pairs = read_pairs(data / KOSBI_FILE)
    _, kdev = read_split((data / KOSBI_FILE).parent / "train_dev_split.json")
    texts = [comments.texts[i] for i in dev][:n]
    prs = [(pairs.prompts[i], pairs.replies[i]) for i in kdev][:n]
    return texts, prs


def _rate(fn: Any, items: list[Any], batch: int = 64) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(items), batch):
        fn(items[i : i + batch])
    return len(items) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.multitask_vs_pair", description=__doc__)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--model", type=Path, default=None, help="multitask model dir (default: the shipped one)")
    ap.add_argument("--old-classifier", type=Path)
    ap.add_argument("--old-judge", type=Path)
    ap.add_argument("--texts", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    from moderator.runtime.loader import load_classifier, load_judge
    from moderator.runtime.options import RuntimeOptions
    from moderator.settings import DEFAULT_MODEL

    options = RuntimeOptions(device="cpu", intra_op_threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        old_c, old_j = (args.old_classifier, args.old_judge)
        if old_c is None or old_j is None:
            old_c, old_j = _old_models(Path(tmp))
        multitask = load_classifier(args.model or DEFAULT_MODEL, options).multitask  # type: ignore[attr-defined]
        classifier, judge = load_classifier(old_c, options), load_judge(old_j, options)
        texts, pairs = _texts(args.data, args.texts)
        reply_texts = [r for _, r in pairs]
        multitask.score_comments(texts[:32])
        classifier.predict(texts[:32])
        judge.predict(pairs[:32])
        rows: dict[str, list[float]] = {
            k: [] for k in ("mt_comments", "old_comments", "mt_replies", "old_replies")
        }
        for r in range(args.rounds):
            order = [0, 1] if r % 2 == 0 else [1, 0]
            for side in order:
                if side == 0:
                    rows["mt_comments"].append(_rate(multitask.score_comments, texts))
                    rows["mt_replies"].append(_rate(multitask.score_replies, pairs))
                else:
                    rows["old_comments"].append(_rate(classifier.predict, texts))
                    t0 = time.perf_counter()
                    for i in range(0, len(pairs), 64):
                        classifier.predict(reply_texts[i : i + 64])
                        judge.predict(pairs[i : i + 64])
                    rows["old_replies"].append(len(pairs) / (time.perf_counter() - t0))
    med = {k: sorted(v)[len(v) // 2] for k, v in rows.items()}
    load = os.getloadavg()[0]
    out = {
        **{k: round(v, 1) for k, v in med.items()},
        "comments_ratio": round(med["mt_comments"] / med["old_comments"], 2),
        "replies_ratio": round(med["mt_replies"] / med["old_replies"], 2),
        "threads": args.threads,
        "rounds": args.rounds,
        "load_average_1min": round(load, 2),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(out))
    print(
        f"comments/s: multitask {med['mt_comments']:.0f} vs earlier classifier {med['old_comments']:.0f} "
        f"({out['comments_ratio']}x); replies/s: multitask {med['mt_replies']:.0f} (one pass) vs classifier + "
        f"judge {med['old_replies']:.0f} ({out['replies_ratio']}x); load average {load:.1f} on {os.cpu_count()} CPUs"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
