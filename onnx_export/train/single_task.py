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

import json
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from moderator.evaluation import (
    best_accuracy_threshold,
    best_f1_threshold,
    binary_metrics,
    multilabel_metrics,
)
from onnx_export.data import (
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


class _Subsettable(Protocol):
    def subset(self, idx: Sequence[int]) -> Any: ...


_Rows = TypeVar("_Rows", bound=_Subsettable)


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
        return padded_batch(self.ids, rows, self.pad_id, self.types)


def padded_batch(
    ids: Sequence[Sequence[int]],
    rows: Sequence[int],
    pad_id: int,
    types: Sequence[Sequence[int]] | None = None,
) -> dict[str, Any]:
    """Rows ``rows`` of unpadded token ids as one right-padded batch (dynamic padding to the longest);
    ``types`` None: one token type (XLM-R tells pairs apart by ``</s></s>``, as the runtime encodes them)."""
    import torch

    width = max(len(ids[i]) for i in rows)
    out = torch.full((len(rows), width), pad_id, dtype=torch.long)
    token_types = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, i in enumerate(rows):
        n = len(ids[i])
        out[r, :n] = torch.tensor(ids[i])
        if types is not None:
            token_types[r, :n] = torch.tensor(types[i])
        mask[r, :n] = 1
    return {"input_ids": out, "token_type_ids": token_types, "attention_mask": mask}


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


def adamw(model: Any, encoder_lr: float, head_lr: float, weight_decay: float) -> Any:
    """AdamW over the trainable parameters: the head and pooler at ``head_lr``, the encoder at
    ``encoder_lr``, no weight decay on biases and LayerNorms (frozen parameters are left out)."""
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
    return torch.optim.AdamW(
        [
            {"params": enc_decay, "lr": encoder_lr, "weight_decay": weight_decay},
            {"params": enc_no_decay, "lr": encoder_lr, "weight_decay": 0.0},
            {"params": head, "lr": head_lr, "weight_decay": weight_decay},
        ]
    )


def make_optimizer(model: Any, cfg: TrainConfig, total_steps: int) -> tuple[Any, Any]:
    """AdamW with a separate LR for the fresh head, warmup then linear decay to zero."""
    import torch

    opt = adamw(model, cfg.encoder_lr, cfg.head_lr, cfg.weight_decay)
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


def _train_and_dev(
    read: Callable[[Path], _Rows], train_file: Path, dev_file: Path | None, size: Callable[[_Rows], int]
) -> tuple[_Rows, _Rows]:
    """The train and dev rows: ``train_file``'s fixed split, or all of it and ``dev_file``."""
    data = read(train_file)
    if dev_file is None:
        train_idx, dev_idx = split_or_all(train_file, size(data))
        return data.subset(train_idx), data.subset(dev_idx)
    return data, read(dev_file)


def _sequence_classifier(backbone: Path, labels: Sequence[str], problem_type: str) -> tuple[Any, Any]:
    """The backbone's tokenizer, and the backbone with a fresh head over ``labels``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(backbone)
    model = AutoModelForSequenceClassification.from_pretrained(
        backbone,
        num_labels=len(labels),
        problem_type=problem_type,
        id2label=dict(enumerate(labels)),
        label2id={k: i for i, k in enumerate(labels)},
        ignore_mismatched_sizes=True,
    )
    return tok, model


def _write_json(path: Path, doc: Any) -> None:
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")


def train_classifier(
    train_file: Path, backbone: Path, out_dir: Path, cfg: TrainConfig, dev_file: Path | None = None
) -> dict[str, Any]:
    """Multi-label classifier over ``LABEL_KEYS``; writes checkpoint/, thresholds and dev metrics."""
    import torch

    set_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    train_set, dev_set = _train_and_dev(read_comments, train_file, dev_file, lambda d: len(d.texts))
    tok, model = _sequence_classifier(backbone, LABEL_KEYS, "multi_label_classification")
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
    _write_json(out_dir / "thresholds.json", thresholds)
    _write_json(out_dir / "train_summary.json", summary)
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

    if cfg.unsmile_replies and data_dir is None:
        raise ValueError("unsmile_replies needs the data directory (UnSmile + SQuARe)")
    set_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    train_set, dev_set = _train_and_dev(read_pairs, train_file, dev_file, lambda d: len(d.prompts))
    if cfg.unsmile_replies:
        assert data_dir is not None
        train_set = _concat_pairs(train_set, unsmile_reply_pairs(data_dir, cfg.unsmile_replies, cfg.seed))
    tok, model = _sequence_classifier(backbone, JUDGE_LABELS, "single_label_classification")
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
    _write_json(out_dir / "thresholds.json", thresholds)
    _write_json(out_dir / "train_summary.json", summary)
    return summary
