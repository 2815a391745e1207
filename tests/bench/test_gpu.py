"""bench.gpu: says in one line that it cannot run without CUDA, and its int8 → fp32 rewrite is exact."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import orjson
import pytest

from bench import gpu

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(gpu.cuda_status()[0], reason="this machine has CUDA: bench.gpu would run for real")
def test_without_cuda_it_says_so_in_one_line_and_exits_with_its_own_code() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.gpu", "--no-doc"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == gpu.EXIT_NO_CUDA, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and "cannot run here: no CUDA GPU" in lines[0]
    assert "Traceback" not in out.stderr


def _shipped_int8() -> list[tuple[Path, dict[str, object]]]:
    return [(p, m) for p, m in gpu.model_dirs(REPO / "models") if m.get("dtype") == "int8"]


@pytest.mark.skipif(not _shipped_int8(), reason="no int8 model shipped in models/")
def test_dequantised_graph_scores_like_the_int8_one(tmp_path: Path) -> None:
    """Every weight is kept exactly (only the int8 activation rounding goes): probabilities agree closely."""
    from moderator.runtime.loader import KINDS, load_classifier, load_judge
    from moderator.runtime.options import RuntimeOptions

    src, meta = _shipped_int8()[0]
    fp32 = gpu.dequantize_int8(onnx.load(str(src / "model.onnx")))
    assert not any(n.op_type in ("MatMulInteger", "DynamicQuantizeLinear") for n in fp32.graph.node)
    dst = tmp_path / "fp32"
    shutil.copytree(src, dst)
    onnx.save(fp32, str(dst / "model.onnx"))
    (dst / "metadata.json").write_bytes(
        orjson.dumps(
            {
                **meta,
                "dtype": "fp32",
                "files": {**meta["files"], "model.onnx": (dst / "model.onnx").stat().st_size},
            }
        )  # type: ignore[dict-item]
    )
    texts = ["너 정말 바보 같다", "오늘 날씨 좋네요", "여자들은 다 그래", "그 지역 사람들 싫어"]
    options = RuntimeOptions(device="cpu")
    if KINDS[str(meta["kind"])].role == "classifier":
        a = load_classifier(src, options).predict(texts).probs
        b = load_classifier(dst, options).predict(texts).probs
    else:
        pairs = [("질문", t) for t in texts]
        a = np.asarray(load_judge(src, options).predict(pairs).unsafe)
        b = np.asarray(load_judge(dst, options).predict(pairs).unsafe)
    assert a.shape == b.shape
    # the activation rounding alone: p99 0.05, max 0.25 on dev rows (model card, int8)
    assert (
        float(np.max(np.abs(a - b))) < 0.15
    )  # measured 0.044 on the shipped model's 4 rows (per-tensor: 0.135)
    assert not np.allclose(b, b.reshape(len(texts), -1)[0])  # not a constant output


def test_a_graph_without_int8_matmuls_is_refused() -> None:
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    with pytest.raises(ValueError, match="nothing to dequantise"):
        gpu.dequantize_int8(onnx.helper.make_model(graph))
