"""Benchmark 1: the shipped classifier on ONNX Runtime vs a plain Hugging Face ``pipeline`` on PyTorch.

The user-facing comparison: the same model weights, the same texts (UnSmile dev comments and KoSBi dev
replies), the same thread count, each side in its own process (torch is never imported next to
onnxruntime), several rounds:

* **moderator**: ``moderator.runtime.loader.load_classifier`` on the shipped ONNX export, fed the
  worker's batches of 64 texts; inside, token-budget batching (sort by length, cap padded tokens);
* **Hugging Face**: ``transformers.pipeline("text-classification")`` on the PyTorch checkpoint the
  export was made from, ``batch_size=32``, padding to the longest text of each batch, sigmoid scores for
  every label: what one writes without this project.

Each child warms up on 32 texts before timing. The largest score difference between the two sides is
reported so the speed-up is known to be for the same answers. (The engine-level comparison with equal
batches on both sides is ``bench.encoder_ort_vs_torch``.)

    python -m bench.model_path --texts 512 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

from bench.common import (
    REPO,
    Section,
    Stat,
    bar_with_range,
    base_parser,
    finish,
    guard_training,
    invocation,
    load_data,
    model_dir,
    model_label,
    new_figure,
    save_plot,
    table,
)

GOAL = 3.0
HF_BATCH = 32
WORKER_BATCH = 64
#: Where training leaves the PyTorch checkpoint a shipped export was made from.
CHECKPOINT_CANDIDATES = (REPO / "build" / "classifier" / "checkpoint",)


def shape_twin(model: Path, out: Path) -> Path:
    """A PyTorch checkpoint of the shipped graph's shape, with random weights, for a clone without the
    training checkpoint (``build/`` is not shipped).

    The layer count, widths, vocabulary and positions come from the ONNX graph's initializers, the
    tokenizer is the shipped one, so both sides tokenise and multiply the same shapes: the speed
    comparison holds (weights' values do not change the work); the scores do not, and are not compared.
    Attention heads are not visible in the weights: 32-wide heads, as multilingual-e5-small has (the
    FLOPs do not depend on the split).
    """
    import re

    import onnx
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    from moderator.runtime.metadata import read_metadata

    meta = read_metadata(model)
    if (
        meta.kind not in ("encoder-classifier", "encoder-multitask")
        or json.loads((model / "metadata.json").read_text()).get("architecture") != "bert"
    ):
        raise SystemExit(
            f"{model}: no checkpoint and not a BERT encoder classifier or multitask model; pass --checkpoint DIR"
        )
    graph = onnx.load(str(model / "model.onnx"), load_external_data=False).graph
    dims = {i.name: list(i.dims) for i in graph.initializer}
    vocab, hidden = dims["bert.embeddings.word_embeddings.weight"]
    positions = dims["bert.embeddings.position_embeddings.weight"][0]
    type_vocab = dims["bert.embeddings.token_type_embeddings.weight"][0]
    layers = 1 + max(int(n) for name in dims for n in re.findall(r"encoder\.layer\.(\d+)\.", name))
    intermediate = dims["bert.encoder.layer.0.intermediate.dense.bias"][0]
    labels = list(meta.label_keys)
    config = BertConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 32),
        intermediate_size=intermediate,
        max_position_embeddings=positions,
        type_vocab_size=type_vocab,
        pad_token_id=meta.pad_token_id,
        num_labels=len(labels),
        problem_type="multi_label_classification",
        id2label=dict(enumerate(labels)),
        label2id={k: i for i, k in enumerate(labels)},
    )
    BertForSequenceClassification(config).eval().save_pretrained(out)
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(model / "tokenizer.json"))
    tokenizer.model_max_length = meta.max_length
    # the pipeline pads its batches: name the pad token the model was exported with
    tokenizer.pad_token = tokenizer.convert_ids_to_tokens(meta.pad_token_id)
    tokenizer.save_pretrained(out)
    return out


def texts_for(n: int) -> list[str]:
    """The first ``n`` shared texts: UnSmile dev comments, then KoSBi dev replies."""
    return load_data().texts[:n]


def child_ort(model: Path, texts: list[str], threads: int, out: Path) -> None:
    import numpy as np

    from moderator.runtime.loader import load_classifier
    from moderator.runtime.options import RuntimeOptions

    clf = load_classifier(
        model, RuntimeOptions(device="cpu", intra_op_threads=threads, max_batch_rows=WORKER_BATCH)
    )
    clf.predict(texts[:32])
    started = time.perf_counter()
    probs = [clf.predict(texts[i : i + WORKER_BATCH]).probs for i in range(0, len(texts), WORKER_BATCH)]
    elapsed = time.perf_counter() - started
    np.save(out.with_suffix(".npy"), np.concatenate(probs))
    out.write_text(json.dumps({"seconds": elapsed}))


def child_ort_profile(model: Path, texts: list[str], threads: int, out: Path) -> None:
    """One untimed pass with ONNX Runtime's profiler on: time per operator type, as shares."""
    import collections

    import onnxruntime as ort

    import moderator.runtime.session as session_mod
    from moderator.runtime.loader import load_classifier
    from moderator.runtime.options import RuntimeOptions

    plain = session_mod._session_options

    def profiled(options: RuntimeOptions, intra_threads: int) -> ort.SessionOptions:
        so = plain(options, intra_threads)
        so.enable_profiling = True
        so.profile_file_prefix = str(out.with_suffix(""))
        return so

    session_mod._session_options = profiled
    try:
        clf = load_classifier(
            model, RuntimeOptions(device="cpu", intra_op_threads=threads, max_batch_rows=WORKER_BATCH)
        )
    finally:  # only this model's sessions profile (a test runs this phase in its own process)
        session_mod._session_options = plain
    for i in range(0, len(texts), WORKER_BATCH):
        clf.predict(texts[i : i + WORKER_BATCH])
    by_op: collections.Counter[str] = collections.Counter()
    for session in _ort_sessions(clf):
        trace = Path(session.end_profiling())
        for event in json.loads(trace.read_text()):
            args = event.get("args") or {}
            if event.get("cat") == "Node" and str(event.get("name", "")).endswith("_kernel_time"):
                by_op[str(args.get("op_name", "?"))] += int(event.get("dur", 0))
        trace.unlink()
    total = sum(by_op.values()) or 1
    out.write_text(json.dumps({op: us / total for op, us in by_op.most_common()}))


def _ort_sessions(clf: Any) -> list[Any]:
    """Every ONNX Runtime session a loaded classifier runs on: the lanes' and, when there is one, the
    solo session (an idle call's), on a classifier's own encoder or a multitask model's it shares."""
    owner = getattr(clf, "multitask", clf)  # the multitask seam scores through the model it shares
    wrapped = [owner.session, getattr(owner, "solo_session", None)]
    return [w.session for w in wrapped if w is not None]


def child_hf(checkpoint: Path, model: Path, texts: list[str], threads: int, out: Path) -> None:
    import numpy as np
    import torch
    from transformers import pipeline

    from moderator.runtime.metadata import read_metadata
    from topics.labels import LABEL_KEYS

    torch.set_num_threads(threads)
    meta = read_metadata(model)
    pipe = pipeline("text-classification", model=str(checkpoint), tokenizer=str(checkpoint), device=-1)
    kwargs: dict[str, Any] = dict(
        batch_size=HF_BATCH,
        truncation=True,
        max_length=meta.max_length,
        top_k=None,
        function_to_apply="sigmoid",
    )
    pipe(texts[:32], **kwargs)
    started = time.perf_counter()
    with torch.inference_mode():
        results = pipe(texts, **kwargs)
    elapsed = time.perf_counter() - started
    id2label: dict[int, str] = dict(pipe.model.config.id2label or {})
    names = [id2label[i] for i in range(len(id2label))]
    rows = []
    for res in cast(list[list[dict[str, Any]]], results):
        by = {r["label"]: r["score"] for r in res}
        rows.append([by[n] for n in names])
    arr = np.asarray(rows, dtype=np.float32)
    # map the checkpoint's label order onto LABEL_KEYS when the names are the English keys
    if set(names) == set(LABEL_KEYS):
        arr = arr[:, [names.index(k) for k in LABEL_KEYS]]
    np.save(out.with_suffix(".npy"), arr)
    out.write_text(json.dumps({"seconds": elapsed}))


def model_dtype(model: Path) -> str:
    return str(json.loads((model / "metadata.json").read_text()).get("dtype", "?"))


def run_child(side: str, args: argparse.Namespace, work: Path, r: int) -> tuple[float, Path]:
    out = work / f"{side}-{r}.json"
    cmd = [
        sys.executable,
        "-m",
        "bench.model_path",
        "--phase",
        side,
        "--work",
        str(out),
        "--texts",
        str(args.texts),
        "--threads",
        str(args.threads),
        "--classifier",
        str(args.classifier_dir),
        "--checkpoint",
        str(args.checkpoint_dir),
    ]
    subprocess.run(cmd, check=True, cwd=REPO)
    return float(json.loads(out.read_text())["seconds"]), out.with_suffix(".npy")


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n")[0], rounds=3)
    parser.add_argument(
        "--texts", type=int, default=512, help="texts per round (UnSmile dev, then KoSBi replies)"
    )
    parser.add_argument("--threads", type=int, default=2, help="threads for both sides (default 2)")
    parser.add_argument("--classifier", help="ONNX classifier dir (default: the shipped one)")
    parser.add_argument("--checkpoint", help="PyTorch checkpoint the export was made from")
    parser.add_argument("--phase", choices=["ort", "hf", "ort-profile"], help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    texts = texts_for(args.texts)
    if args.phase:
        model, source_ckpt = Path(args.classifier), Path(args.checkpoint)
        if args.phase == "ort":
            child_ort(model, texts, args.threads, args.work)
        elif args.phase == "ort-profile":
            child_ort_profile(model, texts, args.threads, args.work)
        else:
            child_hf(source_ckpt, model, texts, args.threads, args.work)
        return 0
    guard_training(args)
    args.classifier_dir = model_dir("classifier", args.classifier)
    candidates = [Path(args.checkpoint)] if args.checkpoint else list(CHECKPOINT_CANDIDATES)
    ckpt = next((c for c in candidates if (c / "config.json").exists()), None)
    if ckpt is None and args.checkpoint:
        raise SystemExit(f"--checkpoint {args.checkpoint}: no config.json there")
    import numpy as np

    secs: dict[str, list[float]] = {"ort": [], "hf": []}
    diffs: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-model-path-") as tmp:
        work = Path(tmp)
        twin = ckpt is None
        if twin:
            print(
                "no training checkpoint (a fresh clone): the HF side runs a random-weight twin",
                file=sys.stderr,
            )
            ckpt = shape_twin(args.classifier_dir, work / "twin")
        args.checkpoint_dir = ckpt
        for r in range(args.rounds):
            got = {side: run_child(side, args, work, r) for side in ("ort", "hf")}
            for side, (s, _) in got.items():
                secs[side].append(s)
            if not twin:
                diffs.append(float(np.abs(np.load(got["ort"][1]) - np.load(got["hf"][1])).max()))
            print(
                f"round {r + 1}/{args.rounds}: ORT {len(texts) / secs['ort'][-1]:,.1f} texts/s, "
                f"HF pipeline {len(texts) / secs['hf'][-1]:,.1f} texts/s"
                + (f", max |Δscore| {diffs[-1]:.2e}" if diffs else ""),
                file=sys.stderr,
            )
        out = work / "ort-profile.json"
        cmd = [sys.executable, "-m", "bench.model_path", "--phase", "ort-profile", "--work", str(out)]
        cmd += ["--texts", str(args.texts), "--threads", str(args.threads)]
        cmd += ["--classifier", str(args.classifier_dir), "--checkpoint", str(args.checkpoint_dir)]
        subprocess.run(cmd, check=True, cwd=REPO)
        op_share: dict[str, float] = json.loads(out.read_text())
    ort = Stat.of(len(texts) / s for s in secs["ort"])
    hf = Stat.of(len(texts) / s for s in secs["hf"])
    ratio = Stat.of(h / o for o, h in zip(secs["ort"], secs["hf"], strict=True))
    body = table(
        ["side", "texts/s, median (min–max)", "speed-up"],
        [
            [f"Hugging Face `pipeline`, PyTorch, batch {HF_BATCH}, pad to longest", hf.fmt(1), "1.00×"],
            [
                f"moderator runtime, ONNX Runtime, token-budget batches (worker batches of {WORKER_BATCH})",
                ort.fmt(1),
                f"**{ratio.fmt(2, '×')}**",
            ],
        ],
    )
    if twin:
        reference = (
            "a PyTorch BERT of the same shape with random weights (layers, widths and vocabulary read from the "
            "ONNX graph, the shipped tokenizer; no training checkpoint in this clone: `--checkpoint DIR` uses "
            "the real one), fp32; the speed compares like for like, the scores are not compared"
        )
    else:
        assert ckpt is not None  # a twin is built whenever there is no checkpoint
        where = ckpt.relative_to(REPO) if ckpt.is_relative_to(REPO) else ckpt
        reference = f"the PyTorch checkpoint it was exported from (`{where}`, fp32)"
    body += (
        f"\n\nClassifier `{model_label(args.classifier_dir)}` ({model_dtype(args.classifier_dir)} ONNX, as "
        f"shipped) and {reference}; {len(texts)} texts "
        f"(UnSmile dev comments{', then KoSBi dev replies' if len(texts) > 1491 else ''}); {args.threads} threads "
        f"each; {args.rounds} rounds, each side in a fresh process."
        + (f" Largest score difference between the sides: {max(diffs):.1e}." if diffs else "")
        + f" Goal ≥{GOAL:.0f}×: **{'met' if ratio.median >= GOAL else 'not met'}**."
    )
    if diffs and max(diffs) > 1e-2:
        source = json.loads((args.classifier_dir / "metadata.json").read_text()).get("source", "")
        body += (
            " The scores differ by more than int8 rounding because the export is more than the checkpoint "
            f"(its metadata `source`: “{source}”): the transformer both sides run is the same, the shipped "
            "graph adds its extra branch on top."
        )
    body += (
        "\n\nWhere ONNX Runtime spends the classifier's time (its profiler, one more untimed pass over the "
        "same texts; kernel time by operator type):\n\n"
        + table(
            ["operator", "share of kernel time"],
            [[f"`{k}`", f"{v:.0%}"] for k, v in list(op_share.items())[:8]],
        )
    )
    fig, ax = new_figure(6, 4)
    bar_with_range(
        ax,
        ["HF pipeline\n(PyTorch, batch 32)", "moderator runtime\n(ONNX Runtime)"],
        [hf, ort],
        ylabel="texts/s",
    )
    ax.set_title("Model path: classifier texts/s, median and min–max")
    img = save_plot(fig, "bench_model_path.png", args)
    section = Section(
        "model_path",
        "1. Model path: shipped classifier on ONNX Runtime vs a Hugging Face pipeline",
        body,
        invocation("bench.model_path", argv),
        [img],
    )
    finish(
        args,
        section,
        {"seconds": secs, "texts": len(texts), "max_abs_diff": diffs, "twin": twin, "ort_ops": op_share},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
