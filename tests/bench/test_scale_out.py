"""Benchmark 6's GPU projection reads the shipped encoder's size from its ONNX graph."""

from __future__ import annotations

from bench.scale_out import encoder_flops
from moderator.settings import DEFAULT_CLASSIFIER


def test_the_projection_counts_the_int8_graphs_matmul_weights() -> None:
    """The shipped graph's matmuls are MatMulIntegerToFloat (int8, per-row scales): counting only fp32
    MatMul once gave 0 weights and a projection of 72 million comments/s."""
    shape = encoder_flops(DEFAULT_CLASSIFIER)
    # e5-small: 12 layers of 4·384² attention and 2·384·1536 feed-forward weights (+ pooler and heads)
    assert 12 * (4 * 384 * 384 + 2 * 384 * 1536) <= shape["matmul_params"] < 23e6
    assert (shape["layers"], shape["width"]) == (12, 384)
