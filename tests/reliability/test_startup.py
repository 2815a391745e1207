"""``moderator worker`` refuses to start, with a clear message and a non-zero exit, on a bad model or device.

Each case runs the real command in a subprocess, pointed at a broker port where nothing listens: a
refusal must come from the model check, before any broker retry (models load first).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from moderator.local.embedded import free_port


def run_worker(env: dict[str, str], timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ)
    full.update(
        MODERATOR_BROKER=f"kafka://127.0.0.1:{free_port()}",
        MODERATOR_BROKER_WAIT_S="30",
        MODERATOR_REDIS_URL="",
        MODERATOR_WEB_PORT=str(free_port()),
        MODERATOR_INTRA_OP_THREADS="1",
    )
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "moderator", "worker"],
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def assert_refused(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    for needle in needles:
        assert needle in out, f"{needle!r} not in:\n{out}"
    assert "Traceback" not in out, out
    assert "not reachable yet" not in out, "the model check must come before the broker wait"


@pytest.fixture
def models(tiny_classifier_dir: Path, tiny_judge_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Private copies of the tiny models, safe to damage."""
    classifier = shutil.copytree(tiny_classifier_dir, tmp_path / "classifier")
    judge = shutil.copytree(tiny_judge_dir, tmp_path / "judge")
    return classifier, judge


def env_for(classifier: Path, judge: Path, **extra: str) -> dict[str, str]:
    return {
        "MODERATOR_CLASSIFIER_PATH": str(classifier),
        "MODERATOR_JUDGE_PATH": str(judge),
        "MODERATOR_DEVICE": "cpu",
        **extra,
    }


def test_missing_model_directory_refuses_to_start(models: tuple[Path, Path], tmp_path: Path) -> None:
    classifier, judge = models
    missing = tmp_path / "no-such-model"
    assert_refused(run_worker(env_for(missing, judge)), str(missing), "Fix:")


def test_corrupt_model_file_refuses_to_start(models: tuple[Path, Path]) -> None:
    classifier, judge = models
    onnx = sorted(judge.glob("*.onnx"))
    assert onnx, list(judge.iterdir())
    data = onnx[0].read_bytes()
    onnx[0].write_bytes(data[: len(data) // 3])  # a torn copy
    proc = run_worker(env_for(classifier, judge))
    assert_refused(proc, str(judge))


def test_model_directory_without_metadata_refuses_to_start(models: tuple[Path, Path]) -> None:
    classifier, judge = models
    for path in classifier.iterdir():
        if path.suffix == ".json":
            path.unlink()
    assert_refused(run_worker(env_for(classifier, judge)), str(classifier))


def test_cuda_requested_on_a_cpu_only_machine_refuses_to_start(models: tuple[Path, Path]) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has a CUDA provider")
    classifier, judge = models
    assert_refused(run_worker(env_for(classifier, judge, MODERATOR_DEVICE="cuda")), "cuda", "CUDA")


def test_unknown_device_refuses_to_start(models: tuple[Path, Path]) -> None:
    classifier, judge = models
    assert_refused(run_worker(env_for(classifier, judge, MODERATOR_DEVICE="tpu")), "MODERATOR_DEVICE")
