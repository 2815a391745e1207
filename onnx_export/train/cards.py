"""Model cards of the single-task classifier and judge, filled from the shipped model's own reports
(templates in ``card_templates/``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from onnx_export.train.lexical import LEX_WEIGHTS
from onnx_export.train.ship import _outside_table
from onnx_export.train.single_task import TrainConfig
from topics.labels import LABEL_KEYS

TEMPLATES = Path(__file__).resolve().parent / "card_templates"

_CLASSIFIER_CARD = (TEMPLATES / "classifier.md").read_text(encoding="utf-8")

_JUDGE_CARD = (TEMPLATES / "judge.md").read_text(encoding="utf-8")


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
