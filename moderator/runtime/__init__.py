"""Model runtime: ONNX Runtime sessions and one model class per model kind.

No torch, no transformers here: tokenizers + onnxruntime + numpy, so the worker image stays small.
"""
