"""bench.overhead's profiler clean-up: a py-spy that ignores SIGINT is killed, never left running."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.overhead import _stop_spy

IGNORES_SIGINT = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('ready', flush=True); time.sleep(120)"


def test_a_profiler_that_ignores_sigint_is_killed() -> None:
    spy = subprocess.Popen([sys.executable, "-c", IGNORES_SIGINT], stdout=subprocess.PIPE)
    assert spy.stdout is not None and spy.stdout.readline().strip() == b"ready"
    started = time.monotonic()
    _stop_spy(spy, grace_s=0.5)
    assert spy.poll() is not None
    assert time.monotonic() - started < 10
