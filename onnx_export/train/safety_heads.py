"""Refit the safety rows of a multitask checkpoint's classifier (the seven categories, and ``unsafe``
on request) on its frozen features.

Why: the heads of the sixth generation *rank* the right category first (AUROC 0.88-1.00) but tag a
harmful request with 5 of 7 categories, because training masked every category a source does not
label (``sources.CATEGORY_OVERLAPS`` now turns those into known negatives). A full fine-tune with the
new negatives moves the encoder, and with it the UnSmile and ``unsafe`` outputs the card was built on;
refitting only chosen rows of the final linear layer on the pooled features leaves every other
output exactly as it was. Each row is fitted by masked, class-weighted logistic regression starting
from its current weights, with an L2 pull back toward them, so a row keeps what it knew and learns
what it may not be. ``--keys unsafe --risky-pairs N`` refits the judge's row with ``N`` extra safe
answers to questions that use a risky word harmlessly (``templates.RISKY_WORDS``).

    python -m onnx_export.train safety-heads --run build/gen6 --out build/gen6s [--data ../shared/data]

The output is a run directory (``checkpoint/``, ``train_summary.json`` with a ``safety_heads`` entry)
that ``ship multitask`` takes as it is. The forward passes are nearly all of the time (~11 min per
24k rows on 2 cores); the pooled features are kept per row in ``--run``'s ``pooled_features.npz``
(with a digest of the encoder), so a refit with other settings or other targets computes only rows it
has not seen.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from moderator.evaluation import auroc
from onnx_export.train import sources as src
from onnx_export.train.multitask import MultitaskConfig, Tokenised, build_rows, normalise, run_sorted
from onnx_export.train.templates import risky_word_pairs
from topics.labels import SAFETY_KEYS

F32 = npt.NDArray[np.float32]
#: The dev sources whose rows know safety categories (those ``dev_report`` scores them on).
DEV_SOURCES = ("openai", "requests", "dktc")
#: The dev sources whose rows know ``unsafe`` as the judge reads it (replies, and DKTC's conversations).
UNSAFE_DEV_SOURCES = ("kosbi", "do_not_answer", "requests", "comment_reply", "openai", "dktc")


@dataclass
class HeadsConfig:
    max_rows: int = 24_000  # rows whose features are computed; every row with a known positive is kept
    l2: float = 1e-3  # pull toward the starting row (per feature, on the mean loss)
    iterations: int = 200
    seed: int = 7
    threads: int = 2
    keys: str = ",".join(SAFETY_KEYS)  # the rows refitted (safety categories and/or ``unsafe``)
    risky_pairs: int = 0  # extra safe rows from ``templates.risky_word_pairs``

    def key_list(self) -> list[str]:
        keys = [k.strip() for k in self.keys.split(",") if k.strip()]
        allowed = (*SAFETY_KEYS, "unsafe")
        bad = [k for k in keys if k not in allowed]
        if bad or not keys:
            raise ValueError(f"--keys takes some of {', '.join(allowed)}; got {self.keys!r}")
        return keys


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


def _pick_rows(rows: src.Rows, max_rows: int, seed: int, keys: Sequence[str] = SAFETY_KEYS) -> list[int]:
    """Rows knowing any of ``keys``, by priority: every row with a known safety-category positive among
    ``keys``; then (when ``unsafe`` is refitted) every (message, reply) pair, the judge's input; then a
    seeded sample of the rest, up to ``max_rows``."""
    y, m = rows.targets()
    cols = [src.COL[k] for k in keys]
    categories = [src.COL[k] for k in keys if k in SAFETY_KEYS]
    known: npt.NDArray[np.bool_] = np.asarray(m[:, cols].sum(1) > 0)
    positive: npt.NDArray[np.bool_] = np.asarray(((y[:, categories] * m[:, categories]) > 0).any(1))
    keep = [int(i) for i in np.flatnonzero(positive)]
    rest = [int(i) for i in np.flatnonzero(known & ~positive)]
    if "unsafe" in keys:
        pairs = [i for i in rest if rows.second[i] is not None]
        room = max(0, max_rows - len(keep))
        keep += random.Random(seed + 1).sample(pairs, min(room, len(pairs)))
        taken = set(pairs)
        rest = [i for i in rest if i not in taken]
    room = max(0, max_rows - len(keep))
    keep += random.Random(seed).sample(rest, min(room, len(rest)))
    return sorted(keep)


def _auroc_entry(yy: F32, pp: F32) -> dict[str, Any]:
    entry: dict[str, Any] = {"positives": int(yy.sum()), "negatives": int(len(yy) - yy.sum())}
    if 0 < yy.sum() < len(yy):
        entry["auroc"] = round(auroc(yy, pp), 4)
    return entry


def _category_report(probs: dict[str, F32], dev: dict[str, src.Rows], keys: Sequence[str]) -> dict[str, Any]:
    """Per refitted row: dev AUROC over known rows; for a category also over harmful rows only (own vs
    ruled-out ones); for ``unsafe`` also per source (KoSBi and Do-Not-Answer are the card's figures)."""
    out: dict[str, Any] = {}
    for k in keys:
        j = src.COL[k]
        names = [n for n in (UNSAFE_DEV_SOURCES if k == "unsafe" else DEV_SOURCES) if n in dev]
        ys, ps, ys_h, ps_h = [], [], [], []
        per_source: dict[str, Any] = {}
        for name in names:
            y, m = dev[name].targets()
            known = m[:, j] > 0
            ys.append(y[known, j])
            ps.append(probs[name][known, j])
            if k == "unsafe":
                per_source[name] = _auroc_entry(y[known, j], probs[name][known, j])
                continue
            harmful = known & (y[:, src.SAFETY_COLS] * m[:, src.SAFETY_COLS]).any(1)
            ys_h.append(y[harmful, j])
            ps_h.append(probs[name][harmful, j])
        entry = _auroc_entry(np.concatenate(ys), np.concatenate(ps))
        if ys_h:
            yh, ph = np.concatenate(ys_h), np.concatenate(ps_h)
            if 0 < yh.sum() < len(yh):
                entry["auroc_among_harmful"] = round(auroc(yh, ph), 4)
        if per_source:
            entry["sources"] = per_source
        out[k] = entry
    return out


def _row_digest(first: str, second: str | None) -> bytes:
    return hashlib.blake2b(
        first.encode("utf-8") + b"\0" + (b"\1" if second is None else second.encode("utf-8")), digest_size=16
    ).digest()


def _encoder_digest(model: Any, mcfg: MultitaskConfig) -> str:
    """What every pooled feature depends on besides its text: the lengths texts are cut at and the
    encoder's weights (a digest of its pooler and last layer; the refit never changes them)."""
    h = hashlib.sha256(f"{mcfg.max_length}/{mcfg.comment_max_length}".encode())
    for name, tensor in model.bert.named_parameters():
        if name.startswith(("pooler.", f"encoder.layer.{model.config.num_hidden_layers - 1}.")):
            h.update(tensor.detach().float().numpy().tobytes())
    return h.hexdigest()


class FeatureCache:
    """Pooled features per row (keyed by a digest of its texts), for one encoder, in an ``.npz``: rows
    seen before are read back, only new ones run through the encoder. ``path`` None: no file."""

    def __init__(self, path: Path | None, encoder: str) -> None:
        self.path, self.encoder = path, encoder
        self.rows: dict[bytes, F32] = {}
        if path is not None and path.is_file():
            with np.load(path) as z:
                if "encoder" in z.files and str(z["encoder"]) == encoder:
                    self.rows = dict(zip(z["digests"].tolist(), z["features"], strict=True))

    def features(self, model: Any, tok: Any, rows: src.Rows, mcfg: MultitaskConfig) -> tuple[F32, int]:
        """Features of every row of ``rows`` in order, and how many had to be computed."""
        digests = [_row_digest(a, b) for a, b in zip(rows.first, rows.second, strict=True)]
        first_of: dict[bytes, int] = {}
        for i, d in enumerate(digests):
            if d not in self.rows:
                first_of.setdefault(d, i)  # a repeated text is run once
        missing = sorted(first_of.values())
        if missing:
            new = pooled_features(model, Tokenised(tok, rows.subset(missing), mcfg))
            self.rows.update({digests[i]: new[k] for k, i in enumerate(missing)})
        width = model.config.hidden_size
        out = np.stack([self.rows[d] for d in digests]) if digests else np.zeros((0, width), np.float32)
        return out.astype(np.float32), len(missing)

    def save(self) -> None:
        if self.path is None or not self.rows:
            return
        digests = list(self.rows)
        np.savez(
            self.path,
            encoder=np.array(self.encoder),
            digests=np.array(digests, dtype="S16"),
            features=np.stack([self.rows[d] for d in digests]),
        )


def refit_rows(
    model: Any,
    tok: Any,
    train: src.Rows,
    dev: dict[str, src.Rows],
    mcfg: MultitaskConfig,
    cfg: HeadsConfig,
    cache: Path | None = None,
) -> dict[str, Any]:
    """Refit ``model``'s rows of ``cfg.keys`` in place on ``train`` (the rows ``_pick_rows`` keeps);
    report them on ``dev`` before and after. ``cache``: an ``.npz`` of pooled features per row."""
    import torch

    keys = cfg.key_list()
    picked = train.subset(_pick_rows(train, cfg.max_rows, cfg.seed, keys))
    print(json.dumps({"rows": len(picked), "dev": {k: len(v) for k, v in dev.items()}}), flush=True)
    t0 = time.time()
    store = FeatureCache(cache, _encoder_digest(model, mcfg))
    x_tr, computed = store.features(model, tok, picked, mcfg)
    x_dev: dict[str, F32] = {}
    for name, rows in dev.items():
        x_dev[name], n = store.features(model, tok, rows, mcfg)
        computed += n
    store.save()
    print(json.dumps({"features_seconds": round(time.time() - t0, 1), "computed": computed}), flush=True)
    weight = model.classifier.weight.detach().numpy().copy()
    bias = model.classifier.bias.detach().numpy().copy()

    def probs(w: F32, b: F32) -> dict[str, F32]:
        # the sigmoid as 0.5·(1 + tanh(z/2)): no overflow for large negative logits
        return {k: (0.5 * (1.0 + np.tanh((x @ w.T + b) / 2))).astype(np.float32) for k, x in x_dev.items()}

    before = _category_report(probs(weight, bias), dev, keys)
    y, m = picked.targets()
    fitted = {}
    for k in keys:
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
    after = _category_report(probs(weight, bias), dev, keys)
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
    if cfg.risky_pairs:
        extra = risky_word_pairs(random.Random(cfg.seed + 11), cfg.risky_pairs)
        normalise(extra)  # as build_rows does to every row, and serving to every text
        train.extend(extra)
    tok = AutoTokenizer.from_pretrained(run_dir / "checkpoint")
    model = AutoModelForSequenceClassification.from_pretrained(run_dir / "checkpoint")
    report: dict[str, Any] = {"from": str(run_dir), "config": asdict(cfg)}
    keys = cfg.key_list()
    wanted = set(UNSAFE_DEV_SOURCES if "unsafe" in keys else ()) | set(
        DEV_SOURCES if set(keys) & set(SAFETY_KEYS) else ()
    )
    dev = {k: dev_all[k] for k in dev_all if k in wanted}
    report.update(refit_rows(model, tok, train, dev, mcfg, cfg, cache=run_dir / "pooled_features.npz"))
    report["seconds"] = round(time.time() - t0, 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / "checkpoint"
    if ckpt.exists():
        shutil.rmtree(ckpt)
    model.save_pretrained(ckpt)
    tok.save_pretrained(ckpt)
    # a refit of a refit keeps the earlier one's report (the rows it fitted are still in the checkpoint)
    earlier = summary.get("safety_heads")
    if earlier is not None:
        report["after"] = earlier
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
    try:
        cfg.key_list()
    except ValueError as exc:
        ap.error(str(exc))
    report = refit_safety_heads(args.data, args.run, args.out, cfg)
    print(json.dumps({k: report[k] for k in ("rows", "fitted", "dev_before", "dev_after", "seconds")}))
    print(f"written to {args.out}")
