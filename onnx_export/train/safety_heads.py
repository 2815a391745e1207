"""Refit the seven safety-category rows of a multitask checkpoint's classifier on its frozen features.

Why: the heads of the sixth generation *rank* the right category first (AUROC 0.88-1.00) but tag a
harmful request with 5 of 7 categories, because training masked every category a source does not
label (``sources.CATEGORY_OVERLAPS`` now turns those into known negatives). A full fine-tune with the
new negatives moves the encoder, and with it the UnSmile and ``unsafe`` outputs the card was built on;
refitting only these seven rows of the final linear layer on the pooled features leaves every other
output exactly as it was. Each row is fitted by masked, class-weighted logistic regression starting
from its current weights, with an L2 pull back toward them, so a category keeps what it knew and
learns what it may not be.

    python -m onnx_export.train safety-heads --run build/gen6 --out build/gen6s [--data ../shared/data]

The output is a run directory (``checkpoint/``, ``train_summary.json`` with a ``safety_heads`` entry)
that ``ship multitask`` takes as it is. ~12 min on 2 cores, nearly all of it the forward passes; the
pooled features are kept in ``--run``'s ``pooled_features.npz`` (~40 MB) and reused while the picked
rows and the encoder are the same, so refitting with other settings, or with targets that keep the same
rows positive, then takes about a minute (new positives change the pick, and the features are redone).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from moderator.evaluation import auroc
from onnx_export.train import sources as src
from onnx_export.train.multitask import MultitaskConfig, Tokenised, build_rows, run_sorted
from topics.labels import SAFETY_KEYS

F32 = npt.NDArray[np.float32]
#: The dev sources whose rows know safety categories (those ``dev_report`` scores them on).
DEV_SOURCES = ("openai", "requests", "dktc")


@dataclass
class HeadsConfig:
    max_rows: int = 24_000  # rows whose features are computed; every row with a known positive is kept
    l2: float = 1e-3  # pull toward the starting row (per feature, on the mean loss)
    iterations: int = 200
    seed: int = 7
    threads: int = 2


def pooled_features(model: Any, data: Tokenised, max_tokens: int = 8192) -> F32:
    """The pooler output (what the classifier reads) of every row, length-sorted under a token budget."""
    return run_sorted(
        model, data, model.config.hidden_size, lambda b: model.bert(**b).pooler_output, max_tokens
    )


def fit_row(
    x: F32, y: F32, known: F32, w0: F32, b0: float, pos_weight: float, l2: float, iterations: int
) -> tuple[F32, float]:
    """One category's weights by L-BFGS on masked BCE + ``l2`` · ||w - w0||²."""
    import torch

    xs, ys, ms = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(known)
    start = torch.from_numpy(w0.astype(np.float32))
    w = start.clone().requires_grad_(True)
    b = torch.tensor([b0], dtype=torch.float32, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=iterations, line_search_fn="strong_wolfe")
    pw = torch.tensor(pos_weight)

    def closure() -> Any:
        opt.zero_grad()
        logits = xs @ w + b
        per = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, ys, pos_weight=pw, reduction="none"
        )
        loss = (per * ms).sum() / ms.sum().clamp(min=1.0) + l2 * ((w - start) ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy().astype(np.float32), float(b.detach()[0])


def _pick_rows(rows: src.Rows, max_rows: int, seed: int) -> list[int]:
    """Rows knowing any safety key: all with a known positive, then a seeded sample of the rest."""
    y, m = rows.targets()
    cols = src.SAFETY_COLS
    known: npt.NDArray[np.bool_] = np.asarray(m[:, cols].sum(1) > 0)
    positive: npt.NDArray[np.bool_] = np.asarray(((y[:, cols] * m[:, cols]) > 0).any(1))
    keep = [int(i) for i in np.flatnonzero(positive)]
    rest = [int(i) for i in np.flatnonzero(known & ~positive)]
    room = max(0, max_rows - len(keep))
    keep += random.Random(seed).sample(rest, min(room, len(rest)))
    return sorted(keep)


def _category_report(probs: dict[str, F32], dev: dict[str, src.Rows]) -> dict[str, Any]:
    """Per category: dev AUROC over known rows, and over harmful rows only (own vs ruled-out ones)."""
    out: dict[str, Any] = {}
    for k in SAFETY_KEYS:
        j = src.COL[k]
        ys, ps, ys_h, ps_h = [], [], [], []
        for name in dev:
            y, m = dev[name].targets()
            known = m[:, j] > 0
            ys.append(y[known, j])
            ps.append(probs[name][known, j])
            harmful = known & (y[:, src.SAFETY_COLS] * m[:, src.SAFETY_COLS]).any(1)
            ys_h.append(y[harmful, j])
            ps_h.append(probs[name][harmful, j])
        yy, pp, yh, ph = map(np.concatenate, (ys, ps, ys_h, ps_h))
        entry: dict[str, Any] = {"positives": int(yy.sum()), "negatives": int(len(yy) - yy.sum())}
        if 0 < yy.sum() < len(yy):
            entry["auroc"] = round(auroc(yy, pp), 4)
        if 0 < yh.sum() < len(yh):
            entry["auroc_among_harmful"] = round(auroc(yh, ph), 4)
        out[k] = entry
    return out


def _features_key(model: Any, parts: list[src.Rows], mcfg: MultitaskConfig) -> str:
    """What the pooled features depend on: every input text, the lengths they are cut at, the encoder's
    weights (a digest of its pooler and last layer; the refit never changes them)."""
    h = hashlib.sha256(f"{mcfg.max_length}/{mcfg.comment_max_length}".encode())
    for rows in parts:
        for first, second in zip(rows.first, rows.second, strict=True):
            h.update(first.encode("utf-8") + b"\0" + (second or "").encode("utf-8") + b"\1")
    for name, tensor in model.bert.named_parameters():
        if name.startswith(("pooler.", f"encoder.layer.{model.config.num_hidden_layers - 1}.")):
            h.update(tensor.detach().float().numpy().tobytes())
    return h.hexdigest()


def _load_features(cache: Path, key: str, dev_names: list[str]) -> tuple[F32, dict[str, F32]] | None:
    """The cached features if ``cache`` holds them for exactly these inputs, else None."""
    if not cache.is_file():
        return None
    with np.load(cache) as z:
        if str(z["key"]) != key:
            return None
        return z["train"], {k: z[f"dev_{k}"] for k in dev_names}


def refit_rows(
    model: Any,
    tok: Any,
    train: src.Rows,
    dev: dict[str, src.Rows],
    mcfg: MultitaskConfig,
    cfg: HeadsConfig,
    cache: Path | None = None,
) -> dict[str, Any]:
    """Refit ``model``'s safety rows in place on ``train`` (the rows ``_pick_rows`` keeps); report the
    categories on ``dev`` before and after. ``cache``: an ``.npz`` of the pooled features, reused when
    it was written for the same picked rows, dev rows and encoder."""
    import torch

    picked = train.subset(_pick_rows(train, cfg.max_rows, cfg.seed))
    print(json.dumps({"rows": len(picked), "dev": {k: len(v) for k, v in dev.items()}}), flush=True)
    t0 = time.time()
    key = _features_key(model, [picked, *dev.values()], mcfg)
    cached = _load_features(cache, key, list(dev)) if cache is not None else None
    if cached is not None:
        x_tr, x_dev = cached
    else:
        x_tr = pooled_features(model, Tokenised(tok, picked, mcfg))
        x_dev = {k: pooled_features(model, Tokenised(tok, v, mcfg)) for k, v in dev.items()}
        if cache is not None:
            arrays: dict[str, Any] = {"key": np.array(key), "train": x_tr}
            arrays.update({f"dev_{k}": v for k, v in x_dev.items()})
            np.savez(cache, **arrays)
    print(
        json.dumps({"features_seconds": round(time.time() - t0, 1), "cached": cached is not None}), flush=True
    )
    weight = model.classifier.weight.detach().numpy().copy()
    bias = model.classifier.bias.detach().numpy().copy()

    def probs(w: F32, b: F32) -> dict[str, F32]:
        return {k: (1 / (1 + np.exp(-(x @ w.T + b)))).astype(np.float32) for k, x in x_dev.items()}

    before = _category_report(probs(weight, bias), dev)
    y, m = picked.targets()
    fitted = {}
    for k in SAFETY_KEYS:
        j = src.COL[k]
        pos = float((y[:, j] * m[:, j]).sum())
        neg = float(((1 - y[:, j]) * m[:, j]).sum())
        if not pos or not neg:
            fitted[k] = {"positives": int(pos), "negatives": int(neg), "moved": 0.0}
            continue
        pw = float(np.clip(np.sqrt(neg / pos), 1.0, mcfg.max_pos_weight))
        w, b = fit_row(x_tr, y[:, j], m[:, j], weight[j], float(bias[j]), pw, cfg.l2, cfg.iterations)
        moved = round(float(np.linalg.norm(w - weight[j])), 4)
        fitted[k] = {"positives": int(pos), "negatives": int(neg), "moved": moved}
        weight[j], bias[j] = w, b
    after = _category_report(probs(weight, bias), dev)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.from_numpy(weight))
        model.classifier.bias.copy_(torch.from_numpy(bias))
    return {"rows": len(picked), "fitted": fitted, "dev_before": before, "dev_after": after}


def refit_safety_heads(data: Path, run_dir: Path, out_dir: Path, cfg: HeadsConfig) -> dict[str, Any]:
    """Refit the safety rows of ``run_dir``'s checkpoint on the rows its run trained on (rebuilt from
    ``data`` with its config, so with today's targets); write a run directory to ``out_dir``."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    t0 = time.time()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    summary = json.loads((run_dir / "train_summary.json").read_text(encoding="utf-8"))
    mcfg = MultitaskConfig(**summary["config"])
    train, dev_all = build_rows(data, mcfg)
    tok = AutoTokenizer.from_pretrained(run_dir / "checkpoint")
    model = AutoModelForSequenceClassification.from_pretrained(run_dir / "checkpoint")
    report: dict[str, Any] = {"from": str(run_dir), "config": asdict(cfg)}
    dev = {k: dev_all[k] for k in DEV_SOURCES}
    report.update(refit_rows(model, tok, train, dev, mcfg, cfg, cache=run_dir / "pooled_features.npz"))
    report["seconds"] = round(time.time() - t0, 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / "checkpoint"
    if ckpt.exists():
        shutil.rmtree(ckpt)
    model.save_pretrained(ckpt)
    tok.save_pretrained(ckpt)
    summary["safety_heads"] = report
    (out_dir / "train_summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    return report


def safety_heads_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m onnx_export.train safety-heads")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--run", type=Path, required=True, help="a multitask run directory (checkpoint/ inside)")
    ap.add_argument("--out", type=Path, required=True)
    defaults = HeadsConfig()
    for name, value in asdict(defaults).items():
        ap.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)
    args = ap.parse_args(argv)
    if not (args.run / "checkpoint").is_dir() or not (args.run / "train_summary.json").is_file():
        ap.error(f"{args.run} is not a multitask run directory (needs checkpoint/ and train_summary.json)")
    if not args.data.is_dir():
        ap.error(f"no data directory at {args.data} (the ../shared/data layout)")
    cfg = HeadsConfig(**{k: getattr(args, k) for k in asdict(defaults)})
    report = refit_safety_heads(args.data, args.run, args.out, cfg)
    print(json.dumps({k: report[k] for k in ("rows", "fitted", "dev_before", "dev_after", "seconds")}))
    print(f"written to {args.out}")
