"""CLI: ``multitask`` trains the shared-backbone model; ``safety-heads`` refits its safety-category rows;
``ship multitask`` exports it into ``models/``;
``classifier``/``judge`` and ``ship classifier|judge`` keep the earlier single-task recipes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from onnx_export.train.multitask import MultitaskConfig, train_multitask


def multitask_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m onnx_export.train multitask")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--backbone", type=Path, default=Path("build/backbone"))
    ap.add_argument("--out", type=Path, default=Path("build/multitask"))
    defaults = MultitaskConfig()
    for field, value in defaults.__dict__.items():
        ap.add_argument("--" + field.replace("_", "-"), type=type(value), default=None)
    args = ap.parse_args(argv)
    overrides = {f: getattr(args, f) for f in defaults.__dict__ if getattr(args, f) is not None}
    summary = train_multitask(args.data, args.backbone, args.out, MultitaskConfig(**overrides))
    print(json.dumps({"best": summary["best"]["step"], **summary["best"]["report"]}))
    print(f"written to {args.out}")


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["multitask"]:
        multitask_main(args[1:])
        return
    if args[:1] == ["safety-heads"]:
        from onnx_export.train.safety_heads import safety_heads_main

        safety_heads_main(args[1:])
        return
    if args[:2] == ["card", "multitask"]:
        from onnx_export.train.card_multitask import card_main

        card_main(args[2:])
        return
    if args[:2] == ["ship", "multitask"]:
        from onnx_export.train.ship_multitask import ship_multitask_main

        ship_multitask_main(args[2:])
        return
    from onnx_export.train.legacy_cli import main as legacy_main

    legacy_main(args)
