"""The ship steps record which device kind their thresholds were calibrated on."""

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
