"""Precision conversion of an exported fp32 graph: int8 dynamic quantisation (CPU) and fp16 (CUDA).

int8: ``quant_pre_process`` (ORT graph optimisation; symbolic shape inference skipped because it
fails on the attention-mask arithmetic of HF exports) and then dynamic quantisation of MatMul/Gemm
weights only. Embedding gathers stay fp32: quantising them costs accuracy on small vocabularies and
saves little time. fp16: ORT's converter, keeping graph inputs/outputs in their original types unless
asked (the judge keeps its past keys/values in fp16 to halve the cache).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import onnx

# Models whose weights exceed protobuf's 2 GB limit must keep them in an external file.
_EXTERNAL_DATA_THRESHOLD = 1_800_000_000


def save_model(model: onnx.ModelProto, path: Path) -> list[str]:
    """Save ``model`` at ``path``, with weights in ``<name>_data`` when over ~2 GB; returns file names."""
    data_name = path.name + "_data"
    (path.parent / data_name).unlink(missing_ok=True)
    if _too_big(model) or _has_external(model):
        onnx.save_model(
            model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=data_name
        )
        return [path.name, data_name]
    onnx.save_model(model, str(path))
    return [path.name]


def _too_big(model: onnx.ModelProto) -> bool:
    try:
        return model.ByteSize() > _EXTERNAL_DATA_THRESHOLD
    except (ValueError, OverflowError):  # some protobuf builds refuse to size messages over 2 GB
        return True


def _has_external(model: onnx.ModelProto) -> bool:
    return any(init.data_location == onnx.TensorProto.EXTERNAL for init in model.graph.initializer)


def _model_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def quantize_int8(src: Path, dst: Path) -> list[str]:
    """Dynamic int8 quantisation of ``src`` into ``dst``; returns the files written."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    large = _model_bytes(src) > _EXTERNAL_DATA_THRESHOLD
    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(
            str(src),
            str(pre),
            skip_symbolic_shape=True,
            save_as_external_data=large,
            all_tensors_to_one_file=True,
        )
        out = Path(tmp) / "q.onnx"
        quantize_dynamic(
            str(pre),
            str(out),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gemm"],
            per_channel=True,
            use_external_data_format=large,
        )
        model = onnx.load(str(out))
        return save_model(model, dst)


def convert_fp16(src: Path, dst: Path, *, keep_io_types: bool | list[str] = True) -> list[str]:
    """fp16 weights and activations for CUDA; LayerNorm/Softmax-sensitive ops are left to ORT's list."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    converted = convert_float_to_float16(model, keep_io_types=keep_io_types, disable_shape_infer=True)
    return save_model(converted, dst)


def replace_model(tmp_files: list[str], tmp_dir: Path, out_dir: Path) -> list[str]:
    """Move freshly written model files into ``out_dir`` (overwriting) and return their names."""
    for name in tmp_files:
        shutil.move(str(tmp_dir / name), str(out_dir / name))
    return tmp_files
