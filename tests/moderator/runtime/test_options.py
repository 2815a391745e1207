"""Lanes and threads per session: one single-thread lane per usable core on CPU unless told otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from moderator.runtime import options as options_mod
from moderator.runtime.options import RuntimeOptions, _cgroup_quota, usable_cores


def test_auto_lanes_take_every_usable_core_with_one_thread_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(options_mod, "usable_cores", lambda: 4)
    auto = RuntimeOptions()
    assert auto.lanes_for("cpu") == 4
    assert auto.session_intra_threads(4) == 1
    assert auto.lanes_for("cuda") == 1  # a GPU runs one stream
    assert auto.session_intra_threads(1) == 0  # ONNX Runtime's default for a single lane


def test_explicit_threads_keep_one_lane_and_explicit_lanes_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(options_mod, "usable_cores", lambda: 16)
    sized = RuntimeOptions(intra_op_threads=2)  # a replica sized by threads (compose, k8s) keeps its shape
    assert sized.lanes_for("cpu") == 1
    assert sized.session_intra_threads(1) == 2
    both = RuntimeOptions(intra_op_threads=2, lanes=3)
    assert both.lanes_for("cpu") == 3
    assert both.session_intra_threads(3) == 2
    assert RuntimeOptions(lanes=2).session_intra_threads(2) == 1


def test_cgroup_quota_caps_the_usable_cores(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    assert _cgroup_quota(cpu_max) == 0  # no file: no limit
    cpu_max.write_text("max 100000\n")
    assert _cgroup_quota(cpu_max) == 0
    cpu_max.write_text("250000 100000\n")
    assert _cgroup_quota(cpu_max) == 2
    cpu_max.write_text("50000 100000\n")
    assert _cgroup_quota(cpu_max) == 1  # half a core still runs one lane
    cpu_max.write_text("garbage")
    assert _cgroup_quota(cpu_max) == 0
    assert usable_cores() >= 1


def test_a_solo_session_only_where_auto_made_single_thread_lanes() -> None:
    assert RuntimeOptions().solo_threads(2) == 2
    assert RuntimeOptions(lanes=4).solo_threads(4) == 4
    assert RuntimeOptions().solo_threads(1) == 0
    assert RuntimeOptions(intra_op_threads=1, lanes=2).solo_threads(2) == 0
