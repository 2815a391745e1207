"""Benchmark: an encoder classifier on ONNX Runtime (fp32, int8) against PyTorch eager, CPU.

A multilingual-e5-small-shaped BERT (12 layers, hidden 384, ten UnSmile labels, multi-label) with
random weights and a WordPiece vocabulary trained on the shared data, exported with the real
``onnx_export.encoder.export_encoder`` (fp32 and ``int8=True``). Each backend runs in its own process
(torch is never imported next to onnxruntime) over the same UnSmile dev comments, with the same
token-budget batches (``moderator.runtime.batching.plan_batches``), the same thread count, and the same
truncation. Scores are compared with PyTorch's.

    python -m bench.encoder_ort_vs_torch --texts 512 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    REPO,
    Section,
    Stat,
    base_parser,
    command_line,
    finish,
    guard_training,
    load_data,
    table,
    training_running,
)

MAX_LENGTH = 128
MAX_TOKENS, MAX_ROWS = 4096, 64
CONFIG: dict[str, Any] = dict(
    hidden_size=384, num_hidden_layers=12, num_attention_heads=12, intermediate_size=1536,
    max_position_embeddings=512,
)  # fmt: skip


def build(work: Path, texts: list[str]) -> dict[str, Any]:
    """Child: tokenizer, random e5-small-shaped BERT checkpoint, fp32 and int8 exports."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    from onnx_export.encoder import export_encoder
    from tests.fixtures.models import SPECIAL_TOKENS
    from topics.labels import LABEL_KEYS

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(
        load_data().texts, trainers.WordPieceTrainer(vocab_size=16000, special_tokens=SPECIAL_TOKENS)
    )
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]",
    )  # fmt: skip
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(fast), num_labels=len(LABEL_KEYS), id2label=dict(enumerate(LABEL_KEYS)),
        label2id={k: i for i, k in enumerate(LABEL_KEYS)}, problem_type="multi_label_classification",
        pad_token_id=fast.pad_token_id, **CONFIG,
    )  # fmt: skip
    model = BertForSequenceClassification(config).eval()
    ckpt = work / "checkpoint"
    model.save_pretrained(ckpt)
    fast.save_pretrained(ckpt)
    facts: dict[str, Any] = {"params": sum(p.numel() for p in model.parameters()), "vocab": len(fast)}
    for name, int8 in (("fp32", False), ("int8", True)):
        out = export_encoder(
            ckpt,
            work / name,
            kind="encoder-classifier",
            max_length=MAX_LENGTH,
            int8=int8,
            sample_texts=texts[:32],
        )
        meta = json.loads((out / "metadata.json").read_text())
        facts[name] = {"mb": (out / "model.onnx").stat().st_size / 2**20, "validation": meta["validation"]}
    return facts


def run_torch(work: Path, texts: list[str], rounds: int, threads: int) -> dict[str, Any]:
    """Child: PyTorch eager, same batches as the worker."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from moderator.runtime.batching import plan_batches

    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(work / "checkpoint")
    model = AutoModelForSequenceClassification.from_pretrained(work / "checkpoint").eval()

    def predict() -> np.ndarray:
        enc = tok(texts, truncation=True, max_length=MAX_LENGTH)
        lengths = [len(x) for x in enc["input_ids"]]
        out = np.zeros((len(texts), 10), dtype=np.float32)
        for rows in plan_batches(lengths, MAX_TOKENS, MAX_ROWS):
            batch = tok.pad({k: [enc[k][i] for i in rows] for k in enc}, return_tensors="pt")
            with torch.inference_mode():
                out[rows] = torch.sigmoid(model(**batch).logits).numpy()
        return out

    predict()  # warm-up
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        probs = predict()
        times.append(time.perf_counter() - t0)
    np.save(work / "torch.npy", probs)
    return {"torch": times}


def run_ort(work: Path, texts: list[str], rounds: int, threads: int) -> dict[str, Any]:
    """Child: the worker's EncoderClassifier on the fp32 and int8 exports, rounds alternating."""
    import numpy as np

    from moderator.runtime.loader import load_classifier
    from moderator.runtime.options import RuntimeOptions

    options = RuntimeOptions(
        device="cpu",
        intra_op_threads=threads,
        inter_op_threads=1,
        max_batch_tokens=MAX_TOKENS,
        max_batch_rows=MAX_ROWS,
    )
    models = {name: load_classifier(work / name, options) for name in ("fp32", "int8")}
    for model in models.values():
        model.predict(texts[:64])  # warm-up
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            t0 = time.perf_counter()
            out = model.predict(texts)
            times[name].append(time.perf_counter() - t0)
            np.save(work / f"{name}.npy", out.probs)
    return {f"ort-{k}": v for k, v in times.items()}


def _child(phase: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.encoder_ort_vs_torch", "--phase", phase, "--work", str(work)]
    cmd += ["--texts", str(args.texts), "--rounds", str(args.rounds), "--threads", str(args.threads)]
    subprocess.run(cmd, check=True, cwd=REPO)
    return dict(json.loads((work / f"{phase}.json").read_text()))


def main(argv: list[str] | None = None) -> None:
    parser = base_parser("encoder: ONNX Runtime fp32/int8 vs PyTorch eager", rounds=3)
    parser.add_argument("--texts", type=int, default=512, help="UnSmile dev comments per round (default 512)")
    parser.add_argument("--threads", type=int, default=2, help="threads for both backends (default 2)")
    parser.add_argument("--phase", choices=["build", "torch", "ort"], help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    texts = load_data().comments[: args.texts]
    if args.phase:
        phases = {"build": lambda: build(args.work, texts), "torch": lambda: run_torch(args.work, texts, args.rounds, args.threads), "ort": lambda: run_ort(args.work, texts, args.rounds, args.threads)}  # fmt: skip
        (args.work / f"{args.phase}.json").write_text(json.dumps(phases[args.phase]()))
        return
    guard_training(args)
    busy = bool(training_running())
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="encoder-bench-") as tmp:
        work = Path(tmp)
        built = _child("build", work, args)
        times = {**_child("torch", work, args), **_child("ort", work, args)}
        probs = {name: np.load(work / f"{name}.npy") for name in ("torch", "fp32", "int8")}
    base = Stat.of(times["torch"]).median
    rows = []
    for label, key, ref in (
        ("PyTorch eager fp32", "torch", "torch"),
        ("ONNX Runtime fp32", "ort-fp32", "fp32"),
        ("ONNX Runtime int8", "ort-int8", "int8"),
    ):
        med = Stat.of(times[key]).median
        diff = np.abs(probs[ref] - probs["torch"])
        size = "-" if ref == "torch" else f"{built[ref]['mb']:.0f}"
        rows.append(
            [label, f"{args.texts / med:.0f}", f"{med:.2f}", f"{base / med:.2f}×", f"{diff.max():.1e}", f"{diff.mean():.1e}", size]
        )  # fmt: skip
    body = "\n".join(
        [
            f"Model: BERT shaped like multilingual-e5-small (12 layers, hidden 384), "
            f"{built['params'] / 1e6:.0f}M parameters with a {built['vocab']}-token WordPiece vocabulary, "
            f"random weights, ten-label multi-label head. {args.texts} UnSmile dev comments, truncated at "
            f"{MAX_LENGTH} tokens, token-budget batches (≤{MAX_TOKENS} padded tokens, ≤{MAX_ROWS} rows); "
            f"{args.threads} threads each; each backend in its own process; median of {args.rounds} rounds.",
            "",
            table(
                [
                    "backend",
                    "texts/s",
                    "s per round",
                    "vs PyTorch",
                    "max Δp vs PyTorch",
                    "mean Δp",
                    "graph MB",
                ],
                rows,
                "lrrrrrr",
            ),
            "",
            f"The int8 export recorded a drift of {built['int8']['validation']['quantization_drift']:.1e} on its "
            "own validation samples (metadata.json, `validation.quantization_drift`).",
        ]
    )
    if busy:
        body += (
            "\n\n*Measured while another job (a model training) ran on the same cores: absolute rates are "
            "low and noisy, and the backends ran one after the other under that load.*"
        )
    section = Section(
        "encoder_ort",
        "Encoder classifier: ONNX Runtime fp32/int8 vs PyTorch eager",
        body,
        command_line("bench.encoder_ort_vs_torch", [f"--texts={args.texts}", f"--rounds={args.rounds}"]),
    )
    finish(args, section, {"built": built, "times": times})


if __name__ == "__main__":
    main()
