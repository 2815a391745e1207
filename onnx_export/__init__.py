"""Offline export of Hugging Face checkpoints to the worker's ONNX model directories.

torch, transformers and optimum live here only; the worker (``moderator.runtime``) reads what this
package writes with tokenizers + onnxruntime + numpy. Entry point: ``python -m onnx_export``.
"""
