"""Open a local Hugging Face checkpoint's config and fast tokenizer, refusing what cannot be exported.

Encoder and decoder exports both start here, so a wrong directory, an unsupported architecture or a
missing fast tokenizer fails the same way, naming the file and the fix.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from onnx_export.errors import ExportError


def load_config_and_tokenizer(
    checkpoint: Path,
    supported: Collection[str],
    *,
    family: str,
    other_commands: str,
    dir_fix: str,
    tokenizer_fix: str,
) -> tuple[Any, Any]:
    """``(config, fast tokenizer)``; ``family`` ("encoder"/"decoder") and the fixes go into the errors."""
    from transformers import AutoConfig, AutoTokenizer

    if not (checkpoint / "config.json").is_file():
        raise ExportError(
            checkpoint / "config.json",
            "not a Hugging Face checkpoint directory (config.json missing)",
            dir_fix,
        )
    config = AutoConfig.from_pretrained(checkpoint)
    if config.model_type not in supported:
        raise ExportError(
            checkpoint / "config.json",
            f"model_type {config.model_type!r} is not a supported {family}",
            f"use one of {sorted(supported)}{other_commands}",
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(checkpoint, use_fast=True)
    except (OSError, ValueError) as exc:
        raise ExportError(checkpoint, f"cannot load the tokenizer ({exc})", tokenizer_fix) from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ExportError(checkpoint, "only a slow tokenizer is available", "save a fast tokenizer.json")
    return config, tokenizer
