"""Train the one shared-backbone multitask model: 18 sigmoid outputs for comments and replies.

Why one model: a reply used to run the hate classifier and the safety judge separately (two encoder
passes); one encoder with one head over ``MULTITASK_KEYS`` (ten UnSmile keys, seven safety keys,
``unsafe``) scores a comment (single text) or a reply (user message, reply pair) in one pass. Each
source knows only some outputs, so the loss is BCE masked to the known ones (``sources.Rows``).

Recipe (CPU, 2 cores): the pruned e5-small backbone, embeddings frozen (no Adam update on the vocabulary
matrix), all 12 layers fine-tuned, length-bucketed batches with dynamic padding, warmup + linear decay
planned over a step budget measured on this machine (``--max-minutes``), dev evaluation a few times
per run keeping the best checkpoint. Text is normalised with ``moderator.core.normalize`` exactly as
serving does, and a share of Korean comments gets a perturbed copy (``perturb``).
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from moderator.core.normalize import NORMALIZER_ID, normalize_text
from moderator.evaluation import auroc, best_f1_threshold, multilabel_metrics
from onnx_export.train import sources as src
from onnx_export.train.perturb import perturb
from onnx_export.train.single_task import adamw, padded_batch
from onnx_export.train.templates import (
    comment_lines,
    contrast_pairs,
    hate_and_neutral,
    helpful_pairs,
    request_pairs,
    risky_word_pairs,
    safety_pairs,
    varied_harm_pairs,
)
from onnx_export.train.templates_categories import category_comments, varied_category_pairs
from topics.labels import LABEL_KEYS, MULTITASK_KEYS, SAFETY_KEYS


@dataclass(frozen=True)
class MultitaskConfig:
    """Hyper-parameters (the card repeats the ones used)."""

    max_minutes: float = 50.0  # training wall budget: the LR schedule is planned to end inside it
    epochs: float = 2.0  # upper bound; the step budget usually ends first
    batch_size: int = 32
    max_length: int = 96  # pairs; comments use ``comment_max_length``
    comment_max_length: int = 64
    encoder_lr: float = 5e-5
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_frac: float = 0.05
    seed: int = 20240601
    threads: int = 1  # on 2 cores shared with other work, 1 thread ran 2.5x faster than 2 (measured)
    frozen_layers: int = 8  # embeddings + this many bottom layers get no gradient (no graph is kept)
    max_pos_weight: float = 4.0
    evals: int = 1  # dev evaluations per run (the last at the end)
    perturb_frac: float = 0.2  # share of Korean comments that also get a perturbed copy
    comment_replies: int = 4000  # UnSmile/HateScore comments as replies to SQuARe questions
    window_rows: int = 0  # window-shaped comments: several train comments joined (see ``window_like``)
    template_groups: int = 60  # per UnSmile group: neutral/positive/counter/negation/hate comments each
    template_safety: int = 220  # per safety category: request pairs (compliant + safe)
    template_comments: int = 0  # threats, illegal offers, English hate/insults/neutral (``comment_lines``)
    dktc_snippets: int = 0  # three-line runs of DKTC train conversations (``dktc_snippets``)
    template_helpful: int = 0  # safe helpful/supportive (request, reply) pairs (``helpful_pairs``)
    template_varied_harm: int = 0  # unsafe compliant replies written one by one (``varied_harm_pairs``)
    template_contrast: int = 0  # harmful and safe replies in the same caring voice (``contrast_pairs``)
    template_risky: int = 0  # safe answers to questions with a risky word (``risky_word_pairs``)
    template_categories: int = 0  # per safety category: varied unsafe/safe pairs (``varied_category_pairs``)
    template_offers: int = 0  # per category: illegal offers, and harmless crime talk (``category_comments``)
    max_steps: int = 0  # >0: hard cap (timing runs, tests)
    source_scale: float = 1.0  # multiplies SOURCE_CAPS (tests use a small fraction)
    dev_cap: int = 300  # rows per dev source for the in-run evaluations (shipping scores all of dev)
    init_from: str = ""  # warm start: a checkpoint dir or a shipped ONNX model dir (see warmstart)
    source_caps: str = ""  # overrides of SOURCE_CAPS, "tag=rows,tag=rows" (a second, reply-heavy pass)
    step_seconds: float = 0.0  # >0: planned s/step (else measured on the first steps)


#: Most training rows drawn per source tag (seeded sample). On 2 shared cores a run sees ~1 pass over
#: ~45k rows; the caps keep the rare sources (templates, requests, OpenAI, KoSBi) from being drowned
#: by the large comment sets. Tags not listed are taken whole.
SOURCE_CAPS: dict[str, int] = {
    "unsmile": 8000,
    "hatescore_clean": 5000,
    "curse": 3000,
    "perturbed": 4000,
    "comment_reply": 3000,
}


def cap_sources(rows: src.Rows, caps: dict[str, int], scale: float, seed: int) -> src.Rows:
    """Keep at most ``caps[tag] * scale`` rows of each tag (all rows of unlisted tags, times ``scale``)."""
    rng = random.Random(seed)
    by_tag: dict[str, list[int]] = {}
    for i, tag in enumerate(rows.source):
        by_tag.setdefault(tag, []).append(i)
    keep: list[int] = []
    for tag, idx in by_tag.items():
        n = min(len(idx), max(1, int(caps.get(tag, len(idx)) * scale)))
        keep.extend(sorted(rng.sample(idx, n)))
    return rows.subset(sorted(keep))


def build_rows(data: Path, cfg: MultitaskConfig) -> tuple[src.Rows, dict[str, src.Rows]]:
    """Training rows of every source plus templates and perturbed copies; dev rows per source."""
    rng = random.Random(cfg.seed)
    train, dev = src.Rows(), {}
    for name, reader in src.READERS:
        tr, dv = reader(data)
        train.extend(tr)
        dev[name] = dv
    q_train, q_dev = src.square_questions(data)
    korean_comments = src.Rows()
    for i, s in enumerate(train.source):
        if s in ("unsmile", "hatescore_clean", "hatescore_hate", "curse"):
            korean_comments.extend(train.subset([i]))
    train.extend(
        src.comments_as_replies(korean_comments, q_train, cfg.comment_replies, cfg.seed, "comment_reply")
    )
    dev["comment_reply"] = src.comments_as_replies(
        dev["unsmile"].subset(range(len(dev["unsmile"]))).extend(dev["hatescore"]),
        q_dev,
        1000,
        cfg.seed + 1,
        "comment_reply",
    )
    requests = src.read_requests(data)
    req_tr = [r for r in requests if not src.request_split(r.text)]
    req_dv = [r for r in requests if src.request_split(r.text)]
    train.extend(request_pairs(req_tr, rng))
    dev["requests"] = request_pairs(req_dv, random.Random(cfg.seed + 2))
    train.extend(hate_and_neutral(rng, cfg.template_groups))
    train.extend(safety_pairs(rng, cfg.template_safety, q_train))
    train.extend(comment_lines(rng, cfg.template_comments))
    # their own generators: a run without these rows draws every other row exactly as before
    train.extend(helpful_pairs(random.Random(cfg.seed + 3), cfg.template_helpful))
    train.extend(varied_harm_pairs(random.Random(cfg.seed + 4), cfg.template_varied_harm))
    train.extend(contrast_pairs(random.Random(cfg.seed + 5), cfg.template_contrast))
    train.extend(risky_word_pairs(random.Random(cfg.seed + 6), cfg.template_risky))
    train.extend(varied_category_pairs(random.Random(cfg.seed + 7), cfg.template_categories))
    train.extend(category_comments(random.Random(cfg.seed + 8), cfg.template_offers))
    train.extend(src.dktc_snippets(data, cfg.dktc_snippets, rng))
    train.extend(window_like(korean_comments, cfg.window_rows, rng))
    # perturbed copies of Korean comments (the normaliser runs on them below, as in serving)
    n_pert = int(cfg.perturb_frac * len(korean_comments))
    for i in rng.sample(range(len(korean_comments)), n_pert):
        row = korean_comments.subset([i])
        row.first[0] = perturb(row.first[0], rng)
        row.source[0] = "perturbed"
        train.extend(row)
    caps = dict(SOURCE_CAPS)
    for item in filter(None, (p.strip() for p in cfg.source_caps.split(","))):
        tag, _, n = item.partition("=")
        caps[tag.strip()] = int(n)
    train = cap_sources(train, caps, cfg.source_scale, cfg.seed)
    normalise(train)
    for d in dev.values():
        normalise(d)
    return train, dev


def window_like(comments: src.Rows, n: int, rng: random.Random) -> src.Rows:
    """Rows shaped like the serving windows of a long text: 2-6 train comments joined by spaces.

    Why: serving reads a long text as ~64-token windows of several sentences and max-pools them, so
    a window of ordinary talk must score as low as the single comments the thresholds were
    calibrated on. Half the rows join clean comments only (known clean on every output); the other
    half hide one hateful comment among clean ones and carry that comment's targets (its known
    UnSmile keys, ``unsafe`` and the safety keys it knows) with ``clean`` 0.
    """
    col = src.COL
    clean = [
        i for i in range(len(comments)) if comments.mask[i][col["clean"]] and comments.y[i][col["clean"]] == 1
    ]
    hateful = [
        i for i in range(len(comments)) if comments.mask[i][col["clean"]] and comments.y[i][col["clean"]] == 0
    ]
    out = src.Rows()
    if not clean or not hateful:
        return out
    for k in range(n):
        parts = [comments.first[i] for i in rng.sample(clean, rng.randint(2, 5))]
        if k % 2 == 0:
            out.add(" ".join(parts), None, src.all_clean(), "window_clean")
            continue
        h = rng.choice(hateful)
        parts.insert(rng.randint(0, len(parts)), comments.first[h])
        # keep the hateful comment inside the 64 training tokens: at most two clean comments before it
        at = parts.index(comments.first[h])
        if at > 2:
            parts = parts[at - 2 :]
        known = {j: float(comments.y[h][j]) for j in range(src.K) if comments.mask[h][j]}
        out.add(" ".join(parts), None, known, "window_hate")
    return out


def normalise(rows: src.Rows) -> None:
    rows.first = [normalize_text(t) for t in rows.first]
    rows.second = [None if t is None else normalize_text(t) for t in rows.second]


class Tokenised:
    """Token ids per row (comments single, replies as pairs), no padding."""

    def __init__(self, tok: Any, rows: src.Rows, cfg: MultitaskConfig):
        self.ids: list[list[int]] = [[] for _ in range(len(rows))]
        single = [i for i, s in enumerate(rows.second) if s is None]
        pair = [i for i, s in enumerate(rows.second) if s is not None]
        if single:
            enc = tok([rows.first[i] for i in single], truncation=True, max_length=cfg.comment_max_length)
            for i, ids in zip(single, enc["input_ids"], strict=True):
                self.ids[i] = ids
        if pair:
            enc = tok(
                [rows.first[i] for i in pair],
                [rows.second[i] or "" for i in pair],
                truncation="longest_first",
                max_length=cfg.max_length,
            )
            for i, ids in zip(pair, enc["input_ids"], strict=True):
                self.ids[i] = ids
        self.pad_id = int(tok.pad_token_id)

    @property
    def lengths(self) -> list[int]:
        return [len(x) for x in self.ids]

    def batch(self, rows: list[int]) -> dict[str, Any]:
        return padded_batch(self.ids, rows, self.pad_id)


def bucketed(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    window = batch_size * 50
    out: list[list[int]] = []
    for s in range(0, len(idx), window):
        chunk = sorted(idx[s : s + window], key=lambda i: lengths[i])
        out.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(out)
    return out


def run_sorted(
    model: Any, data: Tokenised, width: int, forward: Callable[[dict[str, Any]], Any], max_tokens: int = 8192
) -> npt.NDArray[np.float32]:
    """``forward(batch)`` (a float tensor of ``width`` columns) for every row, in length-sorted batches
    under a token budget, without gradients and in eval mode; rows come back in input order."""
    import torch

    lengths = data.lengths
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    out = np.zeros((len(lengths), width), np.float32)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        cur: list[int] = []
        for i in [*order, -1]:
            if i >= 0 and not (cur and (len(cur) + 1) * lengths[i] > max_tokens):
                cur.append(i)
                continue
            if cur:
                out[cur] = forward(data.batch(cur)).float().numpy()
            cur = [i] if i >= 0 else []
    model.train(was_training)
    return out


def predict(model: Any, data: Tokenised, max_tokens: int = 8192) -> npt.NDArray[np.float32]:
    """Sigmoid outputs for every row (length-sorted batches under a token budget)."""
    import torch

    return run_sorted(
        model, data, len(MULTITASK_KEYS), lambda b: torch.sigmoid(model(**b).logits), max_tokens
    )


def dev_report(probs: dict[str, npt.NDArray[np.float32]], dev: dict[str, src.Rows]) -> dict[str, Any]:
    """The dev figures that pick the checkpoint and go into the card (all per source)."""
    col = src.COL
    rep: dict[str, Any] = {}
    y, m = dev["unsmile"].targets()
    p = probs["unsmile"]
    cols = [col[k] for k in LABEL_KEYS]
    th = [best_f1_threshold(y[:, j], p[:, j]) for j in cols]
    met = multilabel_metrics(y[:, cols], p[:, cols], th)
    rep["unsmile_macro_f1"], rep["unsmile_lrap"] = met["macro_f1"], met["lrap"]
    for name in ("kosbi", "do_not_answer", "comment_reply", "requests", "hatescore", "curse", "openai"):
        y, m = dev[name].targets()
        u = col["unsafe"]
        known = m[:, u] > 0
        if known.sum() and 0 < y[known, u].sum() < known.sum():
            rep[f"{name}_unsafe_auroc"] = auroc(y[known, u], probs[name][known, u])
    for k in SAFETY_KEYS:
        j = col[k]
        ys, ps = [], []
        for name in ("openai", "requests", "dktc"):
            y, m = dev[name].targets()
            known = m[:, j] > 0
            ys.append(y[known, j])
            ps.append(probs[name][known, j])
        yy, pp = np.concatenate(ys), np.concatenate(ps)
        if 0 < yy.sum() < len(yy):
            rep[f"{k}_auroc"] = auroc(yy, pp)
    y, m = dev["hatescore"].targets()
    clean_rows = y[:, col["clean"]] == 1
    rep["hatescore_clean_auroc_vs_hate"] = auroc(
        1 - y[:, col["clean"]], 1 - probs["hatescore"][:, col["clean"]]
    )
    rep["hatescore_clean_rows"] = int(clean_rows.sum())
    return rep


def selection_score(rep: dict[str, Any]) -> float:
    safety = [v for k, v in rep.items() if k.endswith("_auroc") and k.split("_auroc")[0] in SAFETY_KEYS]
    return (
        rep["unsmile_macro_f1"]
        + rep["unsmile_lrap"]
        + rep.get("kosbi_unsafe_auroc", 0.5)
        + rep.get("do_not_answer_unsafe_auroc", 0.5)
        + rep.get("hatescore_clean_auroc_vs_hate", 0.5)
        + (float(np.mean(safety)) if safety else 0.5)
    )


def train_multitask(data: Path, backbone: Path, out_dir: Path, cfg: MultitaskConfig) -> dict[str, Any]:
    """Build the rows, fine-tune, evaluate ``cfg.evals`` times, keep the best checkpoint in ``out_dir``."""
    import torch
    from tqdm import tqdm
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    train, dev = build_rows(data, cfg)
    manifest = {"train": dict(Counter(train.source)), "dev": {k: len(v) for k, v in dev.items()}}
    (out_dir / "data_manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
    print(json.dumps(manifest, ensure_ascii=False), flush=True)
    tok = AutoTokenizer.from_pretrained(backbone)
    model = AutoModelForSequenceClassification.from_pretrained(
        backbone,
        num_labels=len(MULTITASK_KEYS),
        problem_type="multi_label_classification",
        id2label=dict(enumerate(MULTITASK_KEYS)),
        label2id={k: i for i, k in enumerate(MULTITASK_KEYS)},
        ignore_mismatched_sizes=True,
    )
    if cfg.init_from:
        from onnx_export.train.warmstart import warm_start

        loaded = warm_start(model, Path(cfg.init_from))
        print(f"warm start from {cfg.init_from}: {len(loaded)} tensors", flush=True)
    for p in model.bert.embeddings.parameters():
        p.requires_grad = False
    for layer in model.bert.encoder.layer[: cfg.frozen_layers]:
        for p in layer.parameters():
            p.requires_grad = False
    tr = Tokenised(tok, train, cfg)
    dev = {k: v.subset(sorted(random.Random(cfg.seed).sample(range(len(v)), min(len(v), cfg.dev_cap))))
           for k, v in dev.items()}  # fmt: skip
    dv = {k: Tokenised(tok, v, cfg) for k, v in dev.items()}
    y_np, m_np = train.targets()
    y, m = torch.from_numpy(y_np), torch.from_numpy(m_np)
    pos = (y * m).sum(0)
    neg = ((1 - y) * m).sum(0)
    pos_weight = torch.clamp(torch.sqrt(neg / pos.clamp(min=1)), 1.0, cfg.max_pos_weight)

    def loss_fn(logits: Any, rows: list[int]) -> Any:
        per = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, y[rows], pos_weight=pos_weight, reduction="none"
        )
        mm = m[rows]
        return (per * mm).sum() / mm.sum().clamp(min=1.0)

    opt = adamw(model, cfg.encoder_lr, cfg.head_lr, cfg.weight_decay)
    rng = random.Random(cfg.seed)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    batches: list[list[int]] = []
    for _ in range(math.ceil(cfg.epochs)):
        batches.extend(bucketed(tr.lengths, cfg.batch_size, rng))
    batches = batches[: int(cfg.epochs * steps_per_epoch)]

    def step(rows: list[int]) -> float:
        logits = model(**tr.batch(rows)).logits
        loss = loss_fn(logits, rows)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    # measure s/step on the first batches (at warmup's small LR), then plan the schedule to the budget
    for g in opt.param_groups:
        g["initial_lr"] = g["lr"]
    t_probe = time.time()
    probe = 8
    total = len(batches)
    warm = max(probe + 1, int(total * cfg.warmup_frac))
    history: list[dict[str, Any]] = []
    t0 = time.time()
    eval_seconds_guess = 0.0
    best: dict[str, Any] = {"score": -1.0}
    run_loss, n_loss = 0.0, 0
    bar = tqdm(total=total, unit="step", mininterval=10.0)
    i = 0
    eval_at: set[int] = set()
    while i < total:
        frac = (i + 1) / warm if i < warm else max(0.0, (total - i) / max(1, total - warm))
        for g in opt.param_groups:
            g["lr"] = g["initial_lr"] * frac
        run_loss += step(batches[i])
        n_loss += 1
        i += 1
        bar.update(1)
        if i == probe:
            sps = cfg.step_seconds or (time.time() - t_probe) / probe
            budget = cfg.max_minutes * 60 - (time.time() - t0)
            # one dev pass costs about as much as (dev rows / batch) forward steps ≈ a third of a step each
            dev_rows = sum(len(v) for v in dev.values())
            eval_seconds_guess = dev_rows / cfg.batch_size * sps / 3
            fit = int((budget - cfg.evals * eval_seconds_guess) / sps) + probe
            total = max(probe + 1, min(len(batches), fit))
            if cfg.max_steps:
                total = min(total, cfg.max_steps)
            warm = max(probe + 1, int(total * cfg.warmup_frac))
            eval_at = {round(total * (k + 1) / cfg.evals) for k in range(cfg.evals)}
            bar.total = total
            print(json.dumps({"seconds_per_step": round(sps, 3), "planned_steps": total,
                              "epochs": round(total / steps_per_epoch, 2), "eval_at": sorted(eval_at)}), flush=True)  # fmt: skip
        if i in eval_at or i == total:
            te = time.time()
            probs = {k: predict(model, v) for k, v in dv.items()}
            rep = dev_report(probs, dev)
            score = selection_score(rep)
            entry = {"step": i, "epoch": round(i / steps_per_epoch, 3), "train_loss": run_loss / max(1, n_loss),
                     "seconds": round(time.time() - t0, 1), "eval_seconds": round(time.time() - te, 1),
                     "score": score, **rep}  # fmt: skip
            run_loss, n_loss = 0.0, 0
            history.append(entry)
            print(json.dumps(entry), flush=True)
            if score > best["score"]:
                best = {"score": score, "step": i, "report": rep}
                ckpt = out_dir / "checkpoint"
                if ckpt.exists():
                    shutil.rmtree(ckpt)
                model.save_pretrained(ckpt)
                tok.save_pretrained(ckpt)
                for name, pr in probs.items():
                    np.save(out_dir / f"dev_probs_{name}.npy", pr)
            eval_at.discard(i)
    bar.close()
    summary = {
        "kind": "multitask",
        "config": asdict(cfg),
        "normalizer": NORMALIZER_ID,
        "labels": list(MULTITASK_KEYS),
        "train_rows": len(train),
        "steps": total,
        "steps_per_epoch": steps_per_epoch,
        "pos_weight": [round(float(w), 3) for w in pos_weight],
        "best": best,
        "history": history,
        "train_seconds": round(time.time() - t0, 1),
        "total_seconds": round(time.time() - t_start, 1),
        "data": manifest,
    }
    (out_dir / "train_summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    return summary
