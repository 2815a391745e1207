"""`make bench-quick` runs every benchmark of the suite to the end on the shipped models.

Each benchmark has its own figures in docs/benchmarks.md; this only proves the scripts still run on the
models the repository ships (benchmark 1 once crashed on the multitask model, and the scale-out one on
a smoke run's single batch of verdicts).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.common import REPO
from bench.run_all import PLAN


@pytest.mark.slow
@pytest.mark.e2e
def test_the_quick_suite_runs_every_benchmark(tmp_path: Path) -> None:
    doc = tmp_path / "quick.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--doc", str(doc), "--allow-training"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=1500,
    )
    outcomes = dict(re.findall(r"^== (\w+): (ok|failed.*?) in ", proc.stdout + proc.stderr, re.M))
    assert outcomes == {name: "ok" for name, *_ in PLAN}, (proc.stdout + proc.stderr)[-4000:]
    assert proc.returncode == 0
    text = doc.read_text(encoding="utf-8")
    for name, *_ in PLAN:
        assert f"<!-- bench:{name}:begin -->" in text
