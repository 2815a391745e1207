"""``python -m onnx_export.train ...``."""

from onnx_export.train.cli import main

main()
