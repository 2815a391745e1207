"""``python -m onnx_export encoder|judge|generative-classifier CHECKPOINT OUT [options]``.

Exports are offline and one-off: a CUDA machine with the weights local for the 8B/2B seeds, any
machine for small encoders. Every command validates ONNX Runtime against PyTorch and refuses to write
a usable model directory when the two disagree beyond tolerance.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from onnx_export.errors import ExportError


def _common(p: argparse.ArgumentParser, max_length: int) -> None:
    p.add_argument("checkpoint", type=Path, help="local Hugging Face checkpoint directory")
    p.add_argument(
        "out", type=Path, help="model directory to write (model.onnx, tokenizer.json, metadata.json)"
    )
    p.add_argument("--max-length", type=int, default=max_length, help=f"token limit (default {max_length})")
    precision = p.add_mutually_exclusive_group()
    precision.add_argument("--int8", action="store_true", help="dynamic int8 quantisation (CPU workers)")
    precision.add_argument("--fp16", action="store_true", help="fp16 weights and activations (CUDA workers)")
    p.add_argument("--name", help="model name in metadata (default: checkpoint directory name)")
    p.add_argument("--source", help="where the weights came from, e.g. a hub id (default: the path)")


def _decoder(p: argparse.ArgumentParser) -> None:
    p.add_argument("--template", type=Path, help="prompt template file (fields in {braces})")
    p.add_argument(
        "--chat-format", choices=["llama3", "gemma", "none"], help="chat wrapper (default by model)"
    )
    p.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu", help="cuda + --fp16 exports large models in fp16"
    )
    p.add_argument("--atol", type=float, help="validation tolerance on logits (default 1e-4 fp32, 5e-2 fp16)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m onnx_export",
        description="Export Hugging Face checkpoints to validated ONNX model directories for the worker.",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    enc = sub.add_parser("encoder", help="sequence-classification encoder (classifier or pair judge)")
    _common(enc, 256)
    enc.add_argument(
        "--kind",
        choices=["encoder-classifier", "encoder-pair-judge", "encoder-multitask"],
        default="encoder-classifier",
        help="ten-label hate classifier, (prompt, reply) judge with labels safe/unsafe, or the 18-output "
        "multitask model (topics.MULTITASK_KEYS; comments single, replies as pairs)",
    )

    judge = sub.add_parser("judge", help="Llama-Guard-style causal LM judge (KoSafeGuard-8B by default)")
    _common(judge, 1024)
    _decoder(judge)
    judge.add_argument(
        "--no-prune-head",
        action="store_true",
        help="keep the full LM head (default: verdict-token rows only)",
    )

    gen = sub.add_parser("generative-classifier", help="Gemma-2 'Hate Speech: <categories>' classifier")
    _common(gen, 512)
    _decoder(gen)
    gen.add_argument("--answer-prefix", default="Hate Speech:", help="fixed start of the model's answer")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        if args.command == "encoder":
            from onnx_export.encoder import export_encoder

            out = export_encoder(
                args.checkpoint, args.out, kind=args.kind, max_length=args.max_length, int8=args.int8,
                fp16=args.fp16, name=args.name, source=args.source,
            )  # fmt: skip
        elif args.command == "judge":
            from onnx_export.judge import export_judge

            out = export_judge(
                args.checkpoint, args.out, max_length=args.max_length, template=args.template,
                chat_format=args.chat_format, prune_head=not args.no_prune_head, int8=args.int8,
                fp16=args.fp16, device=args.device, atol=args.atol, name=args.name, source=args.source,
            )  # fmt: skip
        else:
            from onnx_export.generative import export_generative_classifier

            out = export_generative_classifier(
                args.checkpoint, args.out, max_length=args.max_length, template=args.template,
                chat_format=args.chat_format, answer_prefix=args.answer_prefix, int8=args.int8,
                fp16=args.fp16, device=args.device, atol=args.atol, name=args.name, source=args.source,
            )  # fmt: skip
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from moderator.runtime.metadata import read_metadata

    meta = read_metadata(out)
    print(
        f"{out}: {meta.kind} {meta.dtype} model_id={meta.model_id} "
        f"max_diff={meta.validation.max_abs_diff:.3g} drift={meta.validation.quantization_drift:.3g}"
    )
    return 0
