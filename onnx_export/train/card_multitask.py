"""The multitask model's card, rendered from its dev report (template: ``card_templates/multitask.md``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).resolve().parent / "card_templates" / "multitask.md"


def _f(x: Any, digits: int = 4) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    return "n/a" if v != v else f"{v:.{digits}f}"


def _table(head: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_f(c) if isinstance(c, float) else str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def write_multitask_card(out_dir: Path, report: dict[str, Any]) -> Path:
    """Fill the template's ``{name}`` fields from the report; tables are built here."""
    u = report["unsmile"]
    fields: dict[str, Any] = {
        "unsmile_table": _table(
            ["label", "threshold", "precision", "recall", "F1", "AUROC", "support"],
            [
                [k, d["threshold"], d["precision"], d["recall"], d["f1"], d["auroc"], int(d["support"])]
                for k, d in u["per_label"].items()
            ],
        ),
        "safety_table": _table(
            ["key", "threshold", "dev positives / rows", "precision", "recall", "F1", "AUROC"],
            [
                [k, d["threshold"], f"{d['positives']} / {d['n']}", d["precision"], d["recall"], d["f1"], d["auroc"]]
                for k, d in report["safety"].items()
            ],
        ),
        "reply_table": _table(
            ["source (dev)", "rows", "accuracy", "precision", "recall", "AUROC"],
            [[k, d["n"], d["accuracy"], d["precision"], d["recall"], d["auroc"]] for k, d in report["replies"].items()],
        ),
        "openai_table": _table(
            ["category", "dev positives / rows", "AUROC"],
            [[k, f"{d['positives']} / {d['n']}", d["auroc"]] for k, d in report["openai"].items()],
        ),
        "precision_table": _table(
            ["unsafe ≥", "precision", "replies flagged"],
            [[t, d["precision"], d["flagged"]] for t, d in report["unsafe_precision"].items()],
        ),
        "lexical_table": _table(
            ["lexical weight", "hate block (macro-F1 + LRAP + HateScore AUROC)", "safety block (mean AUROC)"],
            [[r["weight"], r["hate_block"], r["safety_block"]] for r in report["lexical"]["search"]],
        ),
        "functional_table": report.get("functional_table", "(not run)"),
        "history_table": _table(
            ["step", "epoch", "train loss", "UnSmile macro-F1", "KoSBi AUROC", "DNA AUROC"],
            [
                [h["step"], h["epoch"], h["train_loss"], h.get("unsmile_macro_f1", float("nan")),
                 h.get("kosbi_unsafe_auroc", float("nan")), h.get("do_not_answer_unsafe_auroc", float("nan"))]
                for h in report["training"]["history"]
            ],
        ),  # fmt: skip
        "data_table": _table(
            ["source tag", "training rows"],
            [[k, v] for k, v in sorted(report["training"]["data"]["train"].items())],
        ),
    }
    flat: dict[str, Any] = {}
    for key, value in report.items():
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(v, dict | list):
                    flat[f"{key}__{k}"] = _f(v) if isinstance(v, float) else v
        elif not isinstance(value, list):
            flat[key] = _f(value) if isinstance(value, float) else value
    for k, v in report["training"]["config"].items():
        flat[f"cfg__{k}"] = v
    text = TEMPLATE.read_text(encoding="utf-8").format(**fields, **flat)
    path = out_dir / "MODEL_CARD.md"
    path.write_text(text, encoding="utf-8")
    return path
