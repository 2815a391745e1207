"""The shipped models on a CUDA GPU: fp16 exports, provider check, model-only and end-to-end throughput.

    python -m bench.gpu --texts 4096 --rounds 3

For every model directory under ``models/`` (its ``metadata.json`` kind says whether it is a classifier
or a reply judge; no names are hard-coded), this

1. writes an fp16 copy to ``build/gpu/<name>-fp16/``: an fp32 graph is converted as it is; an int8 graph
   (dynamic quantisation, as shipped for CPUs) is first dequantised back to fp32 matmuls
   (``dequantize_int8``), because int8 ``MatMulInteger`` kernels are CPU kernels;
2. loads it with ``MODERATOR_DEVICE=cuda``, which refuses to start unless ONNX Runtime really runs the
   session on ``CUDAExecutionProvider`` (``moderator.runtime.session``), and checks it again here;
3. times model-only throughput (texts/s through ``predict`` in worker-sized batches) and compares it with
   the FLOP projection of ``bench.scale_out`` (H100/H200 dense fp16 peak, 40% MFU assumed);
4. times the real worker end to end (broker, Redis, fp16 models on CUDA) on the same comments.

On a machine without CUDA it prints one line saying so and exits with ``EXIT_NO_CUDA`` (69), so a CI
or a script tells "cannot run here" from a failure.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import orjson

from bench.common import (
    REPO,
    Section,
    Services,
    Stat,
    base_parser,
    comment_values,
    cycle,
    finish,
    invocation,
    load_data,
    table,
)
from onnx_export.quantize import dequantize_int8

#: EX_UNAVAILABLE: no CUDA here, nothing measured.
EXIT_NO_CUDA = 69
#: Dense fp16/bf16 tensor-core peak of one H100 or H200 SXM (same compute; the H200 has more memory).
GPU_FP16_FLOPS = 989e12
ASSUMED_MFU = 0.40
OUT_DIR = REPO / "build" / "gpu"


def cuda_status() -> tuple[bool, str]:
    """(usable, why): ONNX Runtime must offer CUDA and a CUDA session must really come up."""
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - onnxruntime is a base dependency
        return False, f"onnxruntime not importable ({exc})"
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        return False, f"this onnxruntime ({ort.__version__}) has no CUDAExecutionProvider (has {available})"
    return True, "CUDAExecutionProvider available"


def model_dirs(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every exported model under ``root`` with its metadata, in name order."""
    out = []
    for meta_path in sorted(root.glob("*/metadata.json")):
        out.append((meta_path.parent, orjson.loads(meta_path.read_bytes())))
    return out


def export_fp16(src: Path, meta: dict[str, Any], out_root: Path) -> Path:
    """An fp16 copy of one model directory (tokenizer and metadata alongside); returns its path."""
    from onnx_export.quantize import convert_fp16, save_model

    dst = out_root / f"{meta['name']}-fp16"
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("model.onnx", "model.onnx.data"))
    fp32 = dst / "model.fp32.onnx"
    model = onnx.load(str(src / "model.onnx"))
    if meta.get("dtype") == "int8":
        model = dequantize_int8(model)
    if meta.get("dtype") == "fp16":
        save_model(model, dst / "model.onnx")
    else:
        save_model(model, fp32)
        convert_fp16(fp32, dst / "model.onnx")
        fp32.unlink()
    meta = {**meta, "dtype": "fp16", "source": f"{meta.get('source', '')}; fp16 by bench.gpu"}
    files = {p.name: p.stat().st_size for p in dst.iterdir() if p.name.startswith("model.onnx")}
    meta["files"] = {
        **{k: v for k, v in meta.get("files", {}).items() if not k.startswith("model.onnx")},
        **files,
    }
    (dst / "metadata.json").write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
    return dst


def model_only(
    path: Path, role: str, texts: list[str], pairs: list[tuple[str, str]], rounds: int
) -> list[float]:
    """Texts (or pairs) per second through ``predict`` on CUDA, worker-sized batches."""
    from moderator.runtime.loader import load_classifier, load_judge
    from moderator.runtime.options import RuntimeOptions

    options = RuntimeOptions(device="cuda", max_batch_rows=256)
    model: Any = load_classifier(path, options) if role == "classifier" else load_judge(path, options)
    if model.provider != "cuda":
        raise RuntimeError(f"{path.name}: session on {model.provider}, not CUDA")
    items: list[Any] = texts if role == "classifier" else pairs
    batch = 256
    model.predict(items[:batch])  # warm-up: cuDNN/cuBLAS autotuning, allocator
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        for i in range(0, len(items), batch):
            model.predict(items[i : i + batch])
        rates.append(len(items) / (time.perf_counter() - started))
    return rates


def end_to_end(classifier: Path, judge: Path, values: list[bytes], tag: str) -> float:
    from bench.scale_out import run_config

    os.environ["MODERATOR_DEVICE"] = "cuda"
    with Services() as services:
        rate, _ = run_config(services, classifier, judge, values, 1, 0, tag)
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.split("\n")[0], rounds=3)
    parser.add_argument("--texts", type=int, default=4096, help="comments (and pairs) per model-only round")
    parser.add_argument("--messages", type=int, default=20000, help="comments through the worker end to end")
    parser.add_argument("--models", type=Path, default=REPO / "models", help="exported model directories")
    args = parser.parse_args(argv)
    usable, why = cuda_status()
    if not usable:
        print(f"bench.gpu: cannot run here: no CUDA GPU ({why}); nothing measured.")
        return EXIT_NO_CUDA
    from bench.scale_out import encoder_flops
    from moderator.runtime.loader import KINDS

    data = load_data()
    texts, pairs = cycle(data.comments, args.texts), cycle(data.pairs, args.texts)
    rows: list[list[str]] = []
    result: dict[str, Any] = {"models": {}}
    exported: dict[str, Path] = {}
    for src, meta in model_dirs(args.models):
        kind = KINDS.get(meta.get("kind", ""))
        if kind is None:
            print(f"skipping {src.name}: unknown kind {meta.get('kind')!r}", file=sys.stderr)
            continue
        dst = export_fp16(src, meta, OUT_DIR)
        exported.setdefault(kind.role, dst)
        rates = Stat.of(model_only(dst, kind.role, texts, pairs, args.rounds))
        projected = ""
        if meta.get("kind", "").startswith("encoder"):
            from tokenizers import Tokenizer

            enc = encoder_flops(src)
            tok = Tokenizer.from_file(str(src / "tokenizer.json"))
            t = float(np.mean([len(e.ids) for e in tok.encode_batch(texts[:2000])]))
            flops = 2 * enc["matmul_params"] * t + 4 * enc["layers"] * t**2 * enc["width"]
            at_mfu = GPU_FP16_FLOPS * ASSUMED_MFU / flops
            projected = f"{at_mfu:,.0f} ({rates.median / at_mfu:.2f}× of it)"
            result["models"][src.name] = {
                "rates": list(rates.values),
                "flops_per_item": flops,
                "projected": at_mfu,
            }
        else:
            result["models"][src.name] = {"rates": list(rates.values)}
        rows.append([f"`{src.name}` ({meta.get('kind')}, fp16)", rates.fmt(), projected or "-"])
    body = table(["model", "items/s on CUDA, model only", f"FLOP projection at {ASSUMED_MFU:.0%} MFU"], rows)
    if "classifier" in exported and "judge" in exported:
        values = comment_values(cycle(data.comments, args.messages), "gpu")
        e2e = end_to_end(exported["classifier"], exported["judge"], values, "gpu")
        result["end_to_end"] = e2e
        body += f"\n\nEnd to end (real worker, broker, Redis off, fp16 models on CUDA): **{e2e:,.0f} comments/s**."
    section = Section(
        "gpu",
        "GPU: fp16 models on CUDA, model only and end to end",
        body,
        invocation("bench.gpu", argv),
        [],
    )
    finish(args, section, result)
    print(
        orjson.dumps(
            {"models": {k: Stat.of(v["rates"]).median for k, v in result["models"].items()}}
        ).decode()
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
