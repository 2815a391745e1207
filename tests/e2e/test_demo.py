"""The README's first command: ``moderator demo`` starts its own broker, Redis and worker and moderates the
bundled sample end to end (a real process, as ``make demo`` runs it)."""

from __future__ import annotations

import subprocess
import sys


def test_demo_moderates_every_sample_record() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "moderator", "demo", "--timeout", "240"],
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "worker ready" in out.stdout
    assert "done: every record has a verdict or a dead letter" in out.stdout
