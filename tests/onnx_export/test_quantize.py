"""int8 with one activation scale per row: a row scores the same alone or batched, close to fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnx_export.quantize import dequantize_int8, quantize_activations_per_row, quantize_int8


def _two_layer_graph(path: Path) -> None:
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(32, 48)).astype(np.float32)
    w2 = rng.normal(size=(48, 8)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "w2"], ["y"]),
        ],
        "two_layers",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "tokens", 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "tokens", 8])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9), str(path))


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    # the default (all) graph optimisations: ORT's MatMulIntegerToFloat fusion must not see the row scale
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": x})[0])


@pytest.fixture
def graphs(tmp_path: Path) -> dict[str, Path]:
    fp32 = tmp_path / "fp32.onnx"
    _two_layer_graph(fp32)
    int8 = tmp_path / "int8.onnx"
    quantize_int8(fp32, int8)
    return {"fp32": fp32, "int8": int8}


def _rows() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    quiet = rng.normal(size=(1, 5, 32)).astype(np.float32)
    loud = (rng.normal(size=(1, 5, 32)) * 200).astype(np.float32)  # an outlier batch-mate
    return quiet, np.concatenate([quiet, loud])


def test_a_row_scores_the_same_alone_and_next_to_an_outlier(graphs: dict[str, Path]) -> None:
    quiet, batch = _rows()
    alone = _run(graphs["int8"], quiet)
    batched = _run(graphs["int8"], batch)[:1]
    np.testing.assert_allclose(alone, batched, rtol=0, atol=1e-5)


def test_per_tensor_scales_are_what_made_batch_mates_matter(graphs: dict[str, Path], tmp_path: Path) -> None:
    """The same check fails on ORT's plain dynamic quantisation (so the test above can fail)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    plain = tmp_path / "plain.onnx"
    quantize_dynamic(str(graphs["fp32"]), str(plain), weight_type=QuantType.QInt8, per_channel=True)
    quiet, batch = _rows()
    gap = np.abs(_run(plain, quiet) - _run(plain, batch)[:1]).max()
    assert gap > 0.05 * np.abs(_run(plain, quiet)).max()


def test_int8_stays_close_to_fp32(graphs: dict[str, Path]) -> None:
    quiet, _ = _rows()
    ref = _run(graphs["fp32"], quiet)
    got = _run(graphs["int8"], quiet)
    assert np.abs(got - ref).max() < 0.03 * np.abs(ref).max()


def test_the_graph_has_no_per_tensor_quantiser_and_the_rewrite_is_idempotent(graphs: dict[str, Path]) -> None:
    model = onnx.load(str(graphs["int8"]))
    ops = [n.op_type for n in model.graph.node]
    assert "DynamicQuantizeLinear" not in ops and "MatMulInteger" not in ops
    assert ops.count("MatMulIntegerToFloat") == 2  # ORT's fused kernel, the row scale applied after it
    again = quantize_activations_per_row(onnx.load(str(graphs["int8"])))
    assert [n.name for n in again.graph.node] == [n.name for n in model.graph.node]


def test_dequantising_the_per_row_graph_gives_fp32_matmuls(graphs: dict[str, Path], tmp_path: Path) -> None:
    fp = dequantize_int8(onnx.load(str(graphs["int8"])))
    ops = {n.op_type for n in fp.graph.node}
    assert not ops & {"MatMulInteger", "QuantizeLinear", "DynamicQuantizeLinear"}
    path = tmp_path / "dequantised.onnx"
    onnx.save(fp, str(path))
    _, batch = _rows()
    weights = [numpy_helper.to_array(i) for i in fp.graph.initializer if i.name.endswith("_dequantized")]
    expected = np.maximum(batch @ weights[0], 0) @ weights[1]  # the int8 weights, exactly, in fp32
    np.testing.assert_allclose(_run(path, batch), expected, rtol=1e-4, atol=1e-3)
    ref = _run(graphs["fp32"], batch)  # only the int8 weight rounding (per output channel) is left
    assert np.linalg.norm(expected - ref) < 0.02 * np.linalg.norm(ref)


def _with_abs_row_range(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph with each row's range as ReduceMax(Abs(x)), the form exported before."""
    nodes: list[onnx.NodeProto] = []
    for node in model.graph.node:
        name = node.name
        if name.endswith("_row_quant_hi"):
            p = name.removesuffix("_hi")
            nodes.append(helper.make_node("Abs", [node.input[0]], [f"{p}_abs"], name=f"{p}_abs"))
            nodes.append(
                helper.make_node("ReduceMax", [f"{p}_abs", "row_quant_axes"], [f"{p}_max"], keepdims=1)
            )
        elif name.endswith("_row_quant_range"):
            p = name.removesuffix("_range")
            nodes.append(helper.make_node("Max", [f"{p}_max", "row_quant_eps"], list(node.output), name=name))
        elif not name.endswith(("_row_quant_lo", "_row_quant_neg_lo")):
            nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def test_the_row_range_from_max_and_min_is_bit_identical_to_max_of_abs(
    graphs: dict[str, Path], tmp_path: Path
) -> None:
    model = onnx.load(str(graphs["int8"]))
    assert "Abs" not in {n.op_type for n in model.graph.node}
    legacy = tmp_path / "abs.onnx"
    onnx.save(_with_abs_row_range(model), str(legacy))
    assert "Abs" in {n.op_type for n in onnx.load(str(legacy)).graph.node}
    _, batch = _rows()
    for x in (batch, -batch, np.abs(batch)):  # rows whose largest |x| is positive, negative, both
        np.testing.assert_array_equal(_run(graphs["int8"], x), _run(legacy, x))
