"""Entry point: ``python -m onnx_export``."""

import sys

from onnx_export.cli import main

sys.exit(main())
