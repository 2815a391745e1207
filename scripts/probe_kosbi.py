"""How far can this backbone get on KoSBi? A linear probe and a KoSBi-only fine-tune, dev AUROC each.

Why: KoSBi dev AUROC is stuck near 0.62 across generations (target 0.75). If a probe trained on KoSBi
alone, on the same features, cannot do better, the ceiling is the encoder and the data, not the head,
the thresholds or the training mix (docs/benchmarks.md, "Two probes that rule causes out").

    python scripts/probe_kosbi.py --checkpoint build/gen3/checkpoint --epochs 2

The checkpoint is a multitask PyTorch checkpoint (``python -m onnx_export.train multitask`` writes one
under ``--out``/checkpoint); column ``unsafe`` is the judge's. CPU, ~15 min on 2 cores for two epochs.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from moderator.core.normalize import normalize_text
from moderator.evaluation import auroc
from onnx_export.train import sources as src

UNSAFE = src.COL["unsafe"]


def _encode(tok: Any, rows: src.Rows, idx: list[int]) -> Any:
    first = [normalize_text(rows.first[i]) for i in idx]
    second = [normalize_text(rows.second[i] or "") for i in idx]
    return tok(first, second, truncation=True, max_length=96, padding=True, return_tensors="pt")


def _features(
    model: Any, tok: Any, rows: src.Rows
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(pooler output ‖ mean of the last hidden states, the checkpoint's own ``unsafe`` logit) per row."""
    import torch

    feats, logits = [], []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(rows), 64):
            enc = _encode(tok, rows, list(range(start, min(start + 64, len(rows)))))
            out = model.bert(**enc)
            mask = enc["attention_mask"].unsqueeze(-1)
            mean = (out.last_hidden_state * mask).sum(1) / mask.sum(1)
            feats.append(torch.cat([out.pooler_output, mean], 1).numpy())
            logits.append(model.classifier(out.pooler_output)[:, UNSAFE].numpy())
    return np.concatenate(feats), np.concatenate(logits)


def _dev_auroc(model: Any, tok: Any, dev: src.Rows, y: npt.NDArray[np.float32]) -> float:
    return auroc(y, _features(model, tok, dev)[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("build/gen3/checkpoint"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--epochs", type=int, default=2, help="KoSBi-only fine-tuning epochs (0: probe only)")
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if not (args.checkpoint / "config.json").is_file():
        parser.error(f"{args.checkpoint} is not a PyTorch checkpoint (no config.json)")

    import torch
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    train, dev = src.read_kosbi(args.data)
    y_train = np.asarray([y[UNSAFE] for y in train.y], np.float32)
    y_dev = np.asarray([y[UNSAFE] for y in dev.y], np.float32)
    tok = AutoTokenizer.from_pretrained(args.checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(args.checkpoint)
    print(f"KoSBi: {len(train)} train pairs ({y_train.mean():.2f} unsafe), {len(dev)} dev pairs")

    x_train, logit_train = _features(model, tok, train)
    x_dev, logit_dev = _features(model, tok, dev)
    print(
        f"checkpoint's own unsafe logit: dev AUROC {auroc(y_dev, logit_dev):.3f}, train {auroc(y_train, logit_train):.3f}"
    )
    for name, cols in (("pooler", slice(0, 384)), ("mean", slice(384, 768)), ("both", slice(0, 768))):
        for c in (0.01, 0.1, 1.0):
            probe = LogisticRegression(C=c, max_iter=2000).fit(x_train[:, cols], y_train)
            score = auroc(y_dev, probe.decision_function(x_dev[:, cols]))
            print(f"linear probe on {name} features, C={c}: dev AUROC {score:.3f}")

    # every layer trainable (the embeddings stay frozen, as in the project's runs), unsafe column only
    for p in model.bert.embeddings.parameters():
        p.requires_grad = False
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    targets = torch.from_numpy(y_train)
    rng = random.Random(0)
    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        order = list(range(len(train)))
        rng.shuffle(order)
        for start in range(0, len(order), 32):
            batch = order[start : start + 32]
            logits = model(**_encode(tok, train, batch)).logits[:, UNSAFE]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets[batch])
            loss.backward()
            opt.step()
            opt.zero_grad()
        score = _dev_auroc(model, tok, dev, y_dev)
        print(
            f"KoSBi-only fine-tune, epoch {epoch + 1}: dev AUROC {score:.3f} ({(time.time() - t0) / 60:.1f} min)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
