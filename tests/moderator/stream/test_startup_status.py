"""The worker's startup status server (``/health``, ``/ready``, ``/metrics`` before faust's web server)."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

import pytest

from moderator.local.embedded import free_port
from moderator.metrics import Metrics
from moderator.settings import Settings
from moderator.stream.worker import StartupStatus


def test_it_answers_live_not_ready_and_a_prober_that_hangs_up_leaves_no_traceback(
    capfd: pytest.CaptureFixture[str],
) -> None:
    port = free_port()
    status = StartupStatus(Settings(web_host="127.0.0.1", web_port=port), Metrics())
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as health:
            assert health.status == 200 and b'"live": true' in health.read()
        with pytest.raises(urllib.error.HTTPError) as ready:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5)
        assert ready.value.code == 503
        # a health check that gives up before the answer: the reply meets a reset connection
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as metrics:
            assert metrics.status == 200  # still serving
    finally:
        status.close()
    assert "Traceback" not in capfd.readouterr().err
