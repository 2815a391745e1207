"""Benchmark 1's operator profile runs on the shipped (multitask) model and on a plain classifier."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.common import REPO
from bench.model_path import child_ort_profile

SHIPPED = REPO / "models" / "moderator-multitask-e5-small"
TEXTS = ["안녕하세요 반갑습니다", "이 영화 진짜 재밌다", "너 같은 건 꺼져", "오늘 날씨 좋네요"] * 4


@pytest.mark.parametrize("which", ["shipped multitask", "tiny classifier"])
def test_the_profile_phase_reads_every_session_of_the_model(which: str, tmp_path: Path, request) -> None:  # type: ignore[no-untyped-def]
    model = SHIPPED if which == "shipped multitask" else request.getfixturevalue("tiny_classifier_dir")
    out = tmp_path / "profile.json"
    child_ort_profile(model, TEXTS, 1, out)
    shares = json.loads(out.read_text())
    assert shares, "no kernel time was recorded"
    assert abs(sum(shares.values()) - 1.0) < 1e-6
    assert any("MatMul" in op for op in shares)
    assert not list(tmp_path.glob("*.json.*")) and list(tmp_path.iterdir()) == [out]  # traces removed


def test_sessions_created_after_the_profile_phase_do_not_profile(
    tmp_path: Path, tiny_classifier_dir: Path
) -> None:
    import moderator.runtime.session as session_mod
    from moderator.runtime.options import RuntimeOptions

    child_ort_profile(tiny_classifier_dir, TEXTS, 1, tmp_path / "profile.json")
    assert not session_mod._session_options(RuntimeOptions(device="cpu"), 1).enable_profiling
