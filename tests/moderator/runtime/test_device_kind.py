"""Device kinds: which instruction set a CPU's int8 kernels use, and the warning when a model's
thresholds were calibrated on another kind."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from moderator.runtime.device_kind import _cpuinfo_flags, cpu_kind, device_kind
from moderator.runtime.loader import load_classifier
from moderator.runtime.metadata import read_metadata
from moderator.runtime.options import RuntimeOptions

#: flags of the two AMD EPYC machines the shipped model's card was measured on (abridged)
ZEN3 = {"fpu", "sse2", "avx", "avx2", "fma", "bmi2"}
ZEN4 = ZEN3 | {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni", "avx512_bf16"}


def test_kinds_follow_the_int8_kernels_onnx_runtime_picks() -> None:
    assert cpu_kind(ZEN3, "x86_64") == "cpu:avx2"
    assert cpu_kind(ZEN4, "x86_64") == "cpu:avx512-vnni"
    assert cpu_kind(ZEN3 | {"avx_vnni"}, "x86_64") == "cpu:avx-vnni"  # Alder Lake: VNNI without AVX-512
    assert cpu_kind(ZEN3 | {"avx512f", "avx512bw"}, "x86_64") == "cpu:avx512"  # Skylake-SP: no VNNI
    assert cpu_kind(ZEN4 | {"amx_int8", "amx_tile"}, "AMD64") == "cpu:amx"
    assert cpu_kind({"sse2"}, "x86_64") == "cpu:x86-64"
    assert cpu_kind(set(), "aarch64") == "cpu:aarch64"
    assert device_kind("cuda") == "cuda"
    assert device_kind("cpu") == cpu_kind()


def test_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu avx2 avx512bw avx512_vnni\n")
    assert _cpuinfo_flags(info) == {"fpu", "avx2", "avx512bw", "avx512_vnni"}
    assert _cpuinfo_flags(tmp_path / "missing") == frozenset()


def _with_calibration(src: Path, tmp_path: Path, kind: str | None) -> Path:
    dst = tmp_path / "model"
    shutil.copytree(src, dst)
    raw = json.loads((dst / "metadata.json").read_text())
    if kind is None:
        raw.pop("calibration_device", None)
    else:
        raw["calibration_device"] = kind
    (dst / "metadata.json").write_text(json.dumps(raw))
    return dst


@pytest.mark.parametrize(
    ("recorded", "matches"), [("here", True), ("cpu:some-other-kind", False), (None, None)]
)
def test_a_model_calibrated_on_another_kind_warns_once_at_load(
    tiny_classifier_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    recorded: str | None,
    matches: bool | None,
) -> None:
    kind = cpu_kind() if recorded == "here" else recorded
    directory = _with_calibration(tiny_classifier_dir, tmp_path, kind)
    assert read_metadata(directory).calibration_device == (kind or "")
    with caplog.at_level("WARNING", logger="moderator.runtime.device_kind"):
        model = load_classifier(directory, RuntimeOptions(device="cpu"))
    assert model.calibration_matches is matches  # type: ignore[attr-defined]
    warnings = [r for r in caplog.records if r.name == "moderator.runtime.device_kind"]
    if matches is False:
        assert len(warnings) == 1
        message = warnings[0].getMessage()
        assert "cpu:some-other-kind" in message and cpu_kind() in message
        assert "Re-run the ship step" in message  # a classifier's ship step has no --recalibrate
    else:
        assert warnings == []


@pytest.mark.parametrize(
    ("kind", "provider", "fix"),
    [
        ("multitask", "cpu", "ship multitask --recalibrate --out"),
        ("multitask", "cuda", "calibrates on CPU only"),
        ("judge", "cpu", "Re-run the ship step"),
    ],
)
def test_the_warning_names_a_fix_that_applies(
    tiny_classifier_dir: Path, caplog: pytest.LogCaptureFixture, kind: str, provider: str, fix: str
) -> None:
    import dataclasses

    from moderator.runtime.device_kind import calibration_matches

    meta = dataclasses.replace(
        read_metadata(tiny_classifier_dir), kind=kind, calibration_device="cpu:some-other-kind"
    )
    with caplog.at_level("WARNING", logger="moderator.runtime.device_kind"):
        assert calibration_matches(tiny_classifier_dir, meta, device_kind(provider)) is False
    (record,) = [r for r in caplog.records if r.name == "moderator.runtime.device_kind"]
    message = record.getMessage()
    assert fix in message and ("runs on cuda" in message) == (provider == "cuda")


@pytest.mark.parametrize(("recorded", "value"), [("here", 1.0), ("cpu:some-other-kind", 0.0), (None, 1.0)])
def test_the_pipeline_exports_whether_each_model_runs_on_its_calibration_kind(
    tiny_classifier_dir: Path, tmp_path: Path, recorded: str | None, value: float
) -> None:
    from moderator.core.pipeline import Pipeline
    from moderator.core.policy import load_policy
    from moderator.local.noop_models import NoopJudge
    from moderator.metrics import Metrics
    from moderator.settings import Settings

    kind = cpu_kind() if recorded == "here" else recorded
    directory = _with_calibration(tiny_classifier_dir, tmp_path, kind)
    metrics = Metrics()
    pipeline = Pipeline(
        load_classifier(directory, RuntimeOptions(device="cpu")),
        NoopJudge(),
        load_policy(Settings.from_env().policy_path),
        metrics=metrics,
    )
    labels = {"model": "classifier", "kind": cpu_kind(), "calibrated_on": kind or ""}
    assert metrics.registry.get_sample_value("moderator_model_device_kind", labels) == value
    # the no-op judge knows no device kind: no series for it
    assert "judge" not in {
        s.labels["model"]
        for family in metrics.registry.collect()
        if family.name == "moderator_model_device_kind"
        for s in family.samples
    }
    asyncio.run(pipeline.close())
