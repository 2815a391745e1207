"""Readers for the training corpora (UnSmile TSV, KoSBi JSON, SQuARe JSON) and their fixed splits.

Kept apart from the trainer so the vocabulary pruning, training and evaluation all read the same
rows the same way (the file readers themselves live in ``moderator.evaluation`` so ``moderator eval``
reads labelled files exactly as training does). Users retraining on their own data can pass a TSV in UnSmile's shape or JSONL
(``{"text", "labels"}`` for comments, ``{"prompt", "reply", "unsafe"}`` for replies).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from moderator.evaluation import (
    CommentSet,
    PairSet,
    read_comment_jsonl,
    read_comments,
    read_kosbi_json,
    read_pair_jsonl,
    read_pairs,
    read_unsmile_tsv,
)

__all__ = [
    "CommentSet",
    "PairSet",
    "corpus_texts",
    "read_comment_jsonl",
    "read_comments",
    "read_kosbi_json",
    "read_pair_jsonl",
    "read_pairs",
    "read_split",
    "read_square_questions",
    "read_unsmile_tsv",
    "split_or_all",
]

UNSMILE_FILE = Path("unsmile/unsmile_train_v1.0.tsv")
KOSBI_FILE = Path("kosbi/kosbi_valid.json")
SQUARE_FILE = Path("square/question_valid.json")
SPLIT_NAME = "train_dev_split.json"


def read_square_questions(path: Path) -> tuple[list[str], npt.NDArray[np.float32]]:
    """SQuARe: a question and whether it touches a sensitive topic (a prompt-side signal)."""
    rows = json.loads(path.read_text(encoding="utf-8"))
    return [r["question"] for r in rows], np.asarray([float(r["sensitive?"]) for r in rows], dtype=np.float32)


def read_split(path: Path) -> tuple[list[int], list[int]]:
    """The fixed ``train``/``dev`` row indices beside a data file."""
    obj = json.loads(path.read_text(encoding="utf-8"))
    return [int(i) for i in obj["train"]], [int(i) for i in obj["dev"]]


def split_or_all(data_file: Path, n: int) -> tuple[list[int], list[int]]:
    """Fixed split if the file has one beside it, else a seeded 90/10 split (user data)."""
    split = data_file.parent / SPLIT_NAME
    if split.exists():
        return read_split(split)
    rng = np.random.default_rng(20240601)
    order = rng.permutation(n).tolist()
    cut = max(1, n // 10)
    return sorted(order[cut:]), sorted(order[:cut])


def corpus_texts(data_dir: Path) -> Iterator[str]:
    """Every text of every corpus (all rows) and of the training templates: the vocabulary the pruned
    tokenizer must keep."""
    unsmile = data_dir / UNSMILE_FILE
    if unsmile.exists():
        yield from read_unsmile_tsv(unsmile).texts
    kosbi = data_dir / KOSBI_FILE
    if kosbi.exists():
        pairs = read_kosbi_json(kosbi)
        yield from pairs.prompts
        yield from pairs.replies
    square = data_dir / SQUARE_FILE
    if square.exists():
        yield from read_square_questions(square)[0]
    from onnx_export.train.sources import extra_corpus_texts

    yield from extra_corpus_texts(data_dir)
