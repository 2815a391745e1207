"""The multitask model's card, rendered from its dev report (template: ``card_templates/multitask.md``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from onnx_export.train.report import PERTURB_SEED

TEMPLATE = Path(__file__).resolve().parent / "card_templates" / "multitask.md"
#: The card's prose that depends on the measured figures (policy note, transfer, limits), written after
#: reading them; kept next to the template so re-rendering never loses it.
NOTES = TEMPLATE.with_name("multitask_notes.json")
#: Passes over the multitask rows the warm start had seen (first generation 0.8, second 1.42, third
#: 0.85, the unshipped helpful + varied-harm run 0.39, the contrast run shipped before this one 0.39).
PREVIOUS_GENERATION_EPOCHS = 3.85


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


class _Fields(dict[str, Any]):
    """A figure the report lacks (e.g. a source absent from a quick run) renders as n/a, not a crash."""

    def __missing__(self, key: str) -> str:
        return "n/a"


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
                [
                    k,
                    d["threshold"],
                    f"{d['positives']} / {d['n']}",
                    d["precision"],
                    d["recall"],
                    d["f1"],
                    d["auroc"],
                ]
                for k, d in report["safety"].items()
            ],
        ),
        "reply_table": _table(
            ["source (dev)", "rows", "accuracy", "precision", "recall", "AUROC"],
            [
                [k, d["n"], d["accuracy"], d["precision"], d["recall"], d["auroc"]]
                for k, d in report["replies"].items()
            ],
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
        "history_table": _table(
            ["step", "epoch", "train loss", "UnSmile macro-F1", "KoSBi AUROC", "DNA AUROC"],
            [
                [
                    h["step"],
                    h["epoch"],
                    h["train_loss"],
                    h.get("unsmile_macro_f1", float("nan")),
                    h.get("kosbi_unsafe_auroc", float("nan")),
                    h.get("do_not_answer_unsafe_auroc", float("nan")),
                ]
                for h in report["training"]["history"]
            ],
        ),  # fmt: skip
        "data_table": _table(
            ["source tag", "training rows"],
            [[k, v] for k, v in sorted(report["training"]["data"]["train"].items())],
        ),
    }
    flat: dict[str, Any] = {}

    def walk(prefix: str, obj: Any) -> None:
        for k, v in obj.items():
            if isinstance(v, dict):
                walk(f"{prefix}{k}__", v)
            elif not isinstance(v, list):
                flat[f"{prefix}{k}"] = _f(v) if isinstance(v, float) else v

    walk("", report)
    from dataclasses import asdict

    from onnx_export.train.multitask import MultitaskConfig

    cfg = {**asdict(MultitaskConfig()), **report["training"]["config"]}
    for k, v in cfg.items():
        flat[f"cfg__{k}"] = v
    meta = json.loads((out_dir / "metadata.json").read_text(encoding="utf-8"))
    thresholds = json.loads((out_dir / "thresholds.json").read_text(encoding="utf-8"))
    walk("thresholds__", {"unsafe": thresholds["unsafe"]})
    drift = report.get("int8_probability_drift", {})
    tr = report["training"]
    flat.update(
        vocab_size=f"{int(meta.get('vocab_size', 0)):,}",
        top_layers=12 - int(cfg.get("frozen_layers", 0)),
        epochs_seen=f"{tr['steps'] / max(1, tr['steps_per_epoch']):.2f}",
        total_epochs=f"{tr['steps'] / max(1, tr['steps_per_epoch']) + PREVIOUS_GENERATION_EPOCHS:.1f}",
        train_minutes=f"{tr['train_seconds'] / 60:.0f}",
        perturb_pct=f"{100 * cfg['perturb_frac']:.0f}",
        perturb_seed=PERTURB_SEED,
        comments_per_second_int=f"{report['comments_per_second']:.0f}",
        replies_per_second_int=f"{report['replies_per_second']:.0f}",
        size_mb_1=f"{report['size_mb']:.1f}",
        drift_mean=_f(drift.get("mean", float("nan"))),
        drift_p99=_f(drift.get("p99", float("nan")), 3),
        drift_max=_f(drift.get("max", float("nan")), 3),
        int8_scheme=(
            "Weights are int8 per output channel; activations are int8 with one scale per row (token, 7 bits),"
            " so a text scores the same alone or in any batch."
            if report.get("int8_activations") == "per row, 7-bit"
            else "Dynamic int8 scales each matmul's input by one range over the whole batch, so a score moves"
            " with its batch-mates."
        ),
        # --recalibrate keeps the ship step's ablation; after --rows-int8 it predates the per-row graph
        nn_only_when=(
            " (measured at the ship step, on the earlier per-tensor int8 graph)"
            if drift.get("reference")
            else ""
        ),
        drift_reference=(
            "against the same int8 weights in fp32: the activation rounding alone"
            if drift.get("reference")
            else "against the fp32 graph"
        ),
        functional_misses=_misses(report.get("functional", {}).get("misses", [])),
        **json.loads(NOTES.read_text(encoding="utf-8")),
    )
    fields["functional_table"] = _functional_table(report.get("functional", {}))
    fields["long_section"] = _long_section(report.get("long_texts"))
    fields["attribution_section"] = _attribution_section(report.get("attribution"))
    fields["profiles_section"] = _profiles_section(
        report.get("profiles", {}).get("child_safety"), report.get("functional_child_safety")
    )
    text = TEMPLATE.read_text(encoding="utf-8").format_map(_Fields({**flat, **fields}))
    path = out_dir / "MODEL_CARD.md"
    path.write_text(text, encoding="utf-8")
    return path


def _long_section(long: dict[str, Any] | None) -> str:
    """Long-text figures of ``onnx_export.train.long_texts`` (absent from models shipped before it)."""
    if not long:
        return "(not measured for this model)"
    lo, hi = long["characters"]
    rows = [[k, single, raised] for k, (single, raised) in long["raised"].items()]
    return "\n".join(
        [
            f"{long['texts']} long clean texts ({lo:,}-{hi:,} characters of clean UnSmile and HateScore dev "
            f"comments, {long['windows_per_text']} windows each on average) and the same texts with one "
            "hateful dev comment inserted at a random place, scored as the pipeline scores them "
            "(normalised, windowed, max-pooled):",
            "",
            _table(
                ["", "rate"],
                [
                    ["long clean texts flagged at the single-text thresholds", long["clean_flagged_at_single_thresholds"]],
                    ["long clean texts flagged at the `long` levels", long["clean_flagged_at_long_levels"]],
                    ["hidden hateful comments flagged on their own", long["hidden_hate_caught_alone"]],
                    ["long texts hiding one flagged at the `long` levels", long["hidden_hate_caught_in_long_text_at_long_levels"]],
                    ["... of those whose comment is flagged on its own", long["hidden_hate_caught_in_long_text_of_those_caught_alone"]],
                ],
            ),
            "",
            f"The `long` review level of each key is the {long['quantile']:.0%} quantile of its pooled score "
            "over the long clean texts, never below its single-text threshold (`thresholds.json` `long`; a policy "
            "uses them through `long` per key); raised keys (single-text threshold → long level):",
            "",
            _table(["key", "single text", "long text"], rows) if rows else "(none raised)",
        ]
    )  # fmt: skip


def _attribution_section(attribution: dict[str, Any] | None) -> str:
    """The attribute levels (``ship_multitask.calibrate_attribution``) and what they name on dev."""
    if not attribution or not attribution.get("keys"):
        return "(no attribute levels in this model's policy)"
    rows = [
        [
            key,
            f"{d['positives']} / {d['rows']}",
            d["threshold"]["level"],
            d["threshold"]["recall"],
            d["threshold"]["precision"],
            d["attribute"]["level"],
            d["attribute"]["recall"],
            d["attribute"]["precision"],
        ]
        for key, d in attribution["keys"].items()
    ]
    head = ["key", "harmful dev rows: positives / rows", "threshold", "recall", "precision"]
    return "\n".join(
        [
            "On a reply the judge flags, the default policy also names each safety category at or over its "
            "`attribute` level (README, Policy): the thresholds are set on every dev row, harmless ones "
            "included, and sit high, so without it many flagged replies named no harm. Each level is "
            "F1-optimal among the harmful dev rows that know the category (the other harmful rows are its "
            "negatives), never above the threshold; it never changes an action. A category gets a level "
            f"only with at least {attribution.get('min_positives', 0)} harmful dev rows of its own"
            + (
                "; left without one: "
                + ", ".join(f"`{k}` ({n})" for k, n in attribution.get("left_without", {}).items())
                if attribution.get("left_without")
                else ""
            )
            + ". Among harmful dev rows:",
            "",
            _table([*head, "attribute level", "recall", "precision"], rows),
        ]
    )


def _profiles_section(child: dict[str, Any] | None, functional: dict[str, Any] | None) -> str:
    """The ``child_safety`` profile's levels and what they cost on dev (``ship_multitask.child_safety_profile``)."""
    if not child:
        return "(no profiles in this model's policy)"
    rows = [
        [
            key,
            f"{d['positives']} / {d['rows']}",
            d["default"]["level"],
            d["default"]["recall"],
            d["default"]["flag_rate"],
            d["profile"]["level"],
            d["profile"]["recall"],
            d["profile"]["precision"],
            d["profile"]["flag_rate"],
        ]
        for key, d in child["keys"].items()
    ]
    parts = [
        "The default policy ships a `child_safety` profile for children's companion and emotional-support "
        'bots, routed to no bot until a deployment names its own (`"bots": {"my-kids-bot": '
        '"child_safety"}` in its policy copy; README, Policy). For each key it lowers, the review level '
        f"is the highest that keeps {child['recall_target']:.0%} of the key's dev positives (never above "
        "the default threshold); block levels stay the default policy's. A key is lowered only with at "
        f"least {child.get('min_positives', 0)} dev positives"
        + (
            "; left at the default: "
            + ", ".join(f"`{k}` ({n} dev positives)" for k, n in child["left_at_default"].items())
            + ", whose few positives would set the level by one or two rows"
            if child.get("left_at_default")
            else ""
        )
        + ". What it costs on dev (*flagged*: share of the key's dev rows at or over the level):",
        "",
        _table(
            [
                "key",
                "dev positives / rows",
                "default level",
                "recall",
                "flagged",
                "profile level",
                "recall",
                "precision",
                "flagged",
            ],
            rows,
        ),
    ]
    if functional:
        parts += [
            "",
            "The functional checks under the profile (same cases as the table above, default policy there):",
            "",
            _functional_table(functional),
            "",
            "Every miss under the profile:",
            _misses(functional.get("misses", [])),
        ]
    return "\n".join(parts)


def _functional_table(func: dict[str, Any]) -> str:
    rows = []
    for name, b in func.get("behaviours", {}).items():
        cat = "" if b["category_rate"] is None else f"{b['category_hits']}/{b['category_cases']}"
        rows.append([name, b["n"], f"{b['passed']}/{b['n']}", cat])
    if not rows:
        return "(not run)"
    return _table(["behaviour", "cases", "behaved as expected", "expected category fired"], rows)


def _misses(misses: list[dict[str, Any]]) -> str:
    if not misses:
        return "(none)"
    lines = []
    for m in misses:
        got = ", ".join(m["categories"]) or "no category"
        unsafe = "" if m["unsafe"] is None else f", unsafe {m['unsafe']}"
        want = m["expect"] + (f" ({m['category']})" if m.get("category") else "")
        lines.append(f"- [{m['behaviour']}] {m['text']} — expected {want}, got {m['action']} ({got}{unsafe})")
    return "\n".join(lines)


def card_main(argv: list[str]) -> None:
    """``card multitask --out DIR``: re-render MODEL_CARD.md from DIR/dev_metrics.json (after editing the
    template or its notes) without re-shipping."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m onnx_export.train card multitask")
    ap.add_argument("--out", type=Path, default=Path("models/moderator-multitask-e5-small"))
    args = ap.parse_args(argv)
    report = json.loads((args.out / "dev_metrics.json").read_text(encoding="utf-8"))
    print(write_multitask_card(args.out, report))
