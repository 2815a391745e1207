"""Build the sample that `moderator demo` streams: moderator/demo_data/{comments,replies}.jsonl and NOTICE.

Why these sources: KoSBi and SQuARe (NAVER Cloud Corp., MIT) may be redistributed with their notice;
UnSmile (CC-BY-NC-ND) may not be, so it is never read here. Only KoSBi rows from the DEV part of the fixed
split are used, so the demo never shows a row the bundled judge model was trained on.

* replies.jsonl: KoSBi (context, sentence) pairs are "user message, chatbot reply" pairs, taken as
  {"id", "prompt", "reply", "bot"}.
* comments.jsonl: KoSBi dev contexts and sentences from other rows (disjoint from the replies) plus SQuARe
  questions, as {"id", "text", "channel"}.
* About 20% of each file repeats an earlier text (with a new id), always at least ``--min-gap`` records
  after its first appearance, so the demo's Redis cache shows hits rather than racing the first copy.

Deterministic for a given seed and input files:
    python scripts/build_demo_data.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "moderator" / "demo_data"
SEED = 20241122
CHANNELS = ("news", "community", "live-chat", "shopping-review", "webtoon")
BOTS = ("assistant-v1", "assistant-v2", "support-bot")

T = TypeVar("T")


def _clean(text: str) -> str:
    return " ".join(text.split())


def with_repeats(
    uniques: Sequence[T], n_repeats: int, rng: random.Random, min_gap: int
) -> list[tuple[T, bool]]:
    """``uniques`` in order, plus ``n_repeats`` copies of earlier items, each >= ``min_gap`` rows later.

    Returns (item, is_repeat) pairs.
    """
    if len(uniques) <= min_gap:
        raise ValueError(f"need more than {min_gap} unique rows to place repeats, got {len(uniques)}")
    # slot k means "insert a repeat right after the k-th unique item (1-based)"
    slots = sorted(rng.choices(range(min_gap + 1, len(uniques) + 1), k=n_repeats))
    out: list[tuple[T, bool]] = []
    slot_iter = iter(slots)
    next_slot = next(slot_iter, None)
    for k, item in enumerate(uniques, start=1):
        out.append((item, False))
        while next_slot == k:
            # any unique item that appeared at least min_gap rows before this point
            source = uniques[rng.randrange(0, k - min_gap)]
            out.append((source, True))
            next_slot = next(slot_iter, None)
    return out


def build(
    data: Path, n_comments: int, n_replies: int, repeat_share: float, seed: int, min_gap: int
) -> dict[str, Any]:
    rng = random.Random(seed)
    kosbi: list[dict[str, Any]] = json.loads(
        (data / "kosbi" / "kosbi_valid.json").read_text(encoding="utf-8")
    )
    split = json.loads((data / "kosbi" / "train_dev_split.json").read_text(encoding="utf-8"))
    square: list[dict[str, Any]] = json.loads(
        (data / "square" / "question_valid.json").read_text(encoding="utf-8")
    )
    dev = sorted(set(split["dev"]))
    if set(dev) & set(split["train"]):
        raise SystemExit("train_dev_split.json: train and dev overlap")

    # Group dev rows by context: the split is grouped that way, and it keeps one context in one file only.
    by_context: dict[str, list[int]] = {}
    for i in dev:
        by_context.setdefault(kosbi[i]["context"], []).append(i)
    contexts = sorted(by_context)
    rng.shuffle(contexts)

    n_reply_unique = n_replies - round(n_replies * repeat_share)
    n_comment_unique = n_comments - round(n_comments * repeat_share)
    n_square = n_comment_unique // 4  # a quarter of the comments are questions people ask

    # replies: one (context, sentence) pair per context, balanced safe/unsafe where the data allows
    reply_rows: list[int] = []
    used_contexts: set[str] = set()
    want = {"safe": n_reply_unique - n_reply_unique // 2, "unsafe": n_reply_unique // 2}
    for c in contexts:
        if sum(want.values()) == 0:
            break
        for i in by_context[c]:
            label = kosbi[i]["sentence_label"]
            if want.get(label, 0) > 0:
                reply_rows.append(i)
                want[label] -= 1
                used_contexts.add(c)
                break
    if len(reply_rows) != n_reply_unique:
        raise SystemExit(f"only {len(reply_rows)} dev pairs for {n_reply_unique} replies")
    rng.shuffle(reply_rows)

    # comments: texts (context or sentence) from dev contexts not used for replies, then SQuARe questions
    comment_texts: list[tuple[str, str]] = []  # (text, provenance)
    seen: set[str] = set()
    for c in contexts:
        if c in used_contexts:
            continue
        i = rng.choice(by_context[c])
        field = rng.choice(("context", "sentence"))
        text = _clean(kosbi[i][field])
        if text and text not in seen:
            seen.add(text)
            comment_texts.append((text, f"kosbi:{i}:{field}"))
        if len(comment_texts) == n_comment_unique - n_square:
            break
    square_rows = rng.sample(range(len(square)), k=len(square))
    for j in square_rows:
        if len(comment_texts) == n_comment_unique:
            break
        text = _clean(square[j]["question"])
        if text and text not in seen:
            seen.add(text)
            comment_texts.append((text, f"square:{j}"))
    if len(comment_texts) != n_comment_unique:
        raise SystemExit(f"only {len(comment_texts)} comment texts for {n_comment_unique}")
    rng.shuffle(comment_texts)

    comments = []
    for k, ((text, _), _repeat) in enumerate(
        with_repeats(comment_texts, n_comments - n_comment_unique, rng, min_gap), start=1
    ):
        comments.append({"id": f"demo-c-{k:04d}", "text": text, "channel": rng.choice(CHANNELS)})
    replies = []
    for k, (i, _repeat) in enumerate(
        with_repeats(reply_rows, n_replies - n_reply_unique, rng, min_gap), start=1
    ):
        replies.append(
            {
                "id": f"demo-r-{k:04d}",
                "prompt": _clean(kosbi[i]["context"]),
                "reply": _clean(kosbi[i]["sentence"]),
                "bot": rng.choice(BOTS),
            }
        )
    kosbi_comment_rows = sorted(int(p.split(":")[1]) for _, p in comment_texts if p.startswith("kosbi:"))
    square_used = sorted(int(p.split(":")[1]) for _, p in comment_texts if p.startswith("square:"))
    return {
        "comments": comments,
        "replies": replies,
        "kosbi_reply_rows": sorted(reply_rows),
        "kosbi_comment_rows": kosbi_comment_rows,
        "square_rows": square_used,
    }


def _ranges(rows: Sequence[int]) -> str:
    return " ".join(str(r) for r in rows)


def write(result: dict[str, Any], data: Path, out: Path, seed: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in ("comments", "replies"):
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for row in result[name]:
                f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
    licence = (data / "kosbi" / "LICENSE").read_text(encoding="utf-8").strip()
    notice = (data / "kosbi" / "NOTICE").read_text(encoding="utf-8").strip()
    n_comments, n_replies = len(result["comments"]), len(result["replies"])
    text = f"""moderator demo sample: comments.jsonl ({n_comments} rows) and replies.jsonl ({n_replies} rows)

Built by scripts/build_demo_data.py (seed {seed}) from two files of NAVER's Korean Safety Benchmarks
(naver-ai/korean-safety-benchmarks), MIT licence, reproduced below:
  * kosbi_valid.json (KoSBi): only rows in the "dev" part of kosbi/train_dev_split.json were taken, so the
    demo shows no row a bundled model was trained on.
  * question_valid.json (SQuARe): questions used as comment texts.
Texts are whitespace-normalised; ids, channels and bot names are made up; about 20% of the rows repeat an
earlier text under a new id. No UnSmile rows are included.

Rows taken (0-based indices into the source files):
  kosbi_valid.json, context+sentence as prompt+reply (replies.jsonl): {_ranges(result["kosbi_reply_rows"])}
  kosbi_valid.json, context or sentence as comment text (comments.jsonl): {_ranges(result["kosbi_comment_rows"])}
  question_valid.json, question as comment text (comments.jsonl): {_ranges(result["square_rows"])}

================================================================================
LICENSE (kosbi/LICENSE, identical for square/)
================================================================================
{licence}

================================================================================
NOTICE (kosbi/NOTICE, identical for square/)
================================================================================
{notice}
"""
    (out / "NOTICE").write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared" / "data", help="shared/data folder"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--comments", type=int, default=300)
    parser.add_argument("--replies", type=int, default=150)
    parser.add_argument("--repeat-share", type=float, default=0.2)
    parser.add_argument("--min-gap", type=int, default=40)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    result = build(args.data, args.comments, args.replies, args.repeat_share, args.seed, args.min_gap)
    write(result, args.data, args.out, args.seed)
    print(f"wrote {len(result['comments'])} comments and {len(result['replies'])} replies to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
