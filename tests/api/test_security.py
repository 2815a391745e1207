"""API keys, rate limits, exposure rules and logs of a real ``moderator serve`` process."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import openai
import pytest

from moderator.local.embedded import free_port
from tests.api.conftest import ServerProcess

KEY_A = "test-key-alpha-0123456789"
KEY_B = "test-key-bravo-9876543210"


def test_keys_from_env_401_without_and_open_probes(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(api_keys=f"{KEY_A}, {KEY_B}")
    status, headers, body = server.request("POST", "/v1/moderations", b'{"input": "hi"}')
    assert status == 401 and b"invalid_api_key" in body and headers["WWW-Authenticate"].startswith("Bearer")
    assert server.post("/v1/moderations", {"input": "hi"}, key="wrong")[0] == 401
    status, _, _ = server.request(
        "POST", "/v1/moderations", b'{"input": "hi"}', {"Authorization": f"Basic {KEY_A}"}
    )
    assert status == 401, "only the Bearer scheme"
    assert server.post("/v1/moderations", {"input": "안녕하세요"}, key=KEY_A)[0] == 200
    assert server.post("/v1/comments", {"id": "1", "text": "안녕하세요"}, key=KEY_B)[0] == 200
    for probe in ("/health", "/ready", "/metrics"):
        assert server.get(probe)[0] == 200, probe
    assert server.metrics()["moderator_api_auth_failures_total"] == 3

    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url + "/v1", api_key="nope", max_retries=0).moderations.create(
            input="hi"
        )
    ok = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY_A).moderations.create(input="안녕하세요")
    assert ok.results[0].flagged is False


def test_keys_file_holds_hashes_and_names(start_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    digest = hashlib.sha256(KEY_A.encode()).hexdigest()
    keys.write_text(f"# team keys\n{digest} team-a\n\n")
    server = start_server(api_keys_file=str(keys), api_rate_limit="1", api_rate_burst="1")
    assert KEY_A not in keys.read_text()
    assert server.post("/v1/moderations", {"input": "hi"}, key=KEY_A)[0] == 200
    assert server.post("/v1/moderations", {"input": "hi"}, key=KEY_B)[0] == 401
    assert server.post("/v1/moderations", {"input": "hi"}, key=KEY_A)[0] == 429
    assert server.metrics()['moderator_api_rate_limited_total{key="team-a"}'] == 1


def _serve_once(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("MODERATOR_")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "moderator", "serve", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_refuses_a_network_address_without_keys() -> None:
    done = _serve_once({"MODERATOR_REDIS_URL": ""}, "--host", "0.0.0.0", "--port", str(free_port()))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "MODERATOR_API_KEYS" in lines[0] and "0.0.0.0" in lines[0], done.stderr


def test_a_malformed_keys_file_is_one_clear_line(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("not-a-hash\n")
    done = _serve_once({"MODERATOR_API_KEYS_FILE": str(keys)}, "--port", str(free_port()))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"moderator serve: MODERATOR_API_KEYS_FILE {keys}:1: not a SHA-256 hex digest. Fix: one hash per "
        "line (`printf %s KEY | sha256sum`), optionally followed by a name."
    ]


def test_network_address_with_keys_starts(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server("--host", "0.0.0.0", api_keys=KEY_A)
    assert server.post("/v1/moderations", {"input": "안녕"}, key=KEY_A)[0] == 200


def test_rate_limit_per_key_with_retry_after(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(api_keys=f"{KEY_A},{KEY_B}", api_rate_limit="0.5", api_rate_burst="2")
    assert [server.post("/v1/moderations", {"input": "안녕"}, key=KEY_A)[0] for _ in range(2)] == [200, 200]
    status, headers, body = server.request(
        "POST", "/v1/moderations", b'{"input": "hi"}', {"Authorization": f"Bearer {KEY_A}"}
    )
    assert status == 429 and b"rate_limited" in body
    assert 1 <= int(headers["Retry-After"]) <= 2
    assert server.post("/v1/moderations", {"input": "안녕"}, key=KEY_B)[0] == 200, (
        "another key has its own bucket"
    )
    time.sleep(int(headers["Retry-After"]))
    assert server.post("/v1/moderations", {"input": "안녕"}, key=KEY_A)[0] == 200, "Retry-After was enough"
    with pytest.raises(openai.RateLimitError):
        openai.OpenAI(base_url=server.url + "/v1", api_key=KEY_A, max_retries=0).moderations.create(
            input="hi"
        )


def test_no_text_in_logs_even_at_debug(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server("--log-level", "debug")
    secret = "비밀문장XYZZY"
    assert server.post("/v1/moderations", {"input": f"{secret} 씨발"})[0] == 200
    assert server.post("/v1/comments", {"id": "c", "text": secret, "bogus": 1})[0] == 422
    assert server.post("/v1/moderations", {"input": secret * 5000})[0] == 413
    server.stop()
    log = server.log_tail(200_000)
    assert "/v1/moderations 200" in log and "/v1/comments 422" in log, log[-2000:]
    assert "XYZZY" not in log and "비밀" not in log


def test_a_missing_model_is_one_clear_line(tmp_path: Path) -> None:
    done = _serve_once(
        {"MODERATOR_REDIS_URL": ""}, "--port", str(free_port()), "--classifier", str(tmp_path / "none")
    )
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(f"moderator serve: {tmp_path / 'none'}: model directory")
    )
    assert "Traceback" not in done.stderr
