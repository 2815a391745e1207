"""The ship steps keep metadata.json consistent: the calibration device kind, and the int8 step."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from moderator.runtime.device_kind import cpu_kind
from moderator.runtime.metadata import read_metadata
from onnx_export.train.ship import write_thresholds


def test_writing_thresholds_records_the_calibration_device_in_metadata(
    tiny_classifier_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "model"
    shutil.copytree(tiny_classifier_dir, out)
    before = json.loads((out / "metadata.json").read_text())
    assert write_thresholds(out, {"labels": {"clean": 0.5}}) == cpu_kind()
    assert json.loads((out / "thresholds.json").read_text()) == {"labels": {"clean": 0.5}}
    after = json.loads((out / "metadata.json").read_text())
    assert after.pop("calibration_device") == cpu_kind()
    before.pop("calibration_device", None)
    assert after == before  # nothing else changes: same files, same content hash
    assert read_metadata(out).calibration_device == cpu_kind()


def test_quantizing_an_export_records_int8_with_fresh_sizes_and_drift(
    tiny_classifier_dir: Path, tmp_path: Path
) -> None:
    """The ship steps' int8 step: model.onnx is replaced, so metadata.json gets the new dtype, sizes,
    content hash and drift in one consistent state (it must load afterwards)."""
    import numpy as np

    from moderator.runtime.loader import load_classifier
    from moderator.runtime.options import RuntimeOptions
    from onnx_export.train.ship import _quantize_exported

    out = tmp_path / "model"
    shutil.copytree(tiny_classifier_dir, out)
    before = read_metadata(out)
    texts = ["안녕하세요", "좋은 아침이에요", "오늘 날씨가 맑네요"]

    def probs() -> np.ndarray:
        return load_classifier(out, RuntimeOptions(device="cpu", intra_op_threads=1)).predict(texts).probs

    drift = _quantize_exported(out, probs)
    after = read_metadata(out)
    assert after.dtype == "int8" and before.dtype != "int8"
    assert after.model_id != before.model_id
    assert after.validation.quantization_drift == drift["max"]
    assert "int8 after fp32 export" in after.source
