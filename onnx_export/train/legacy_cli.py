"""The single-task recipes' CLI (``classifier``/``judge`` training, ``ship classifier|judge``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from onnx_export.data import (
    KOSBI_FILE,
    UNSMILE_FILE,
)
from onnx_export.train.cards import write_model_card
from onnx_export.train.ship import CLASSIFIER_DIR, JUDGE_DIR, outside_checks, ship_classifier, ship_judge
from onnx_export.train.single_task import TrainConfig, train_classifier, train_judge


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
