"""A real ``moderator serve`` process per test module or test, on the session's real Redis."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from moderator.embedded import EmbeddedRedis, free_port
from moderator.settings import DEFAULT_CLASSIFIER, DEFAULT_JUDGE

_METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEinfNa]+)$")


def parse_metrics(text: bytes) -> dict[str, float]:
    """Prometheus text → {'name{labels}': value}."""
    out: dict[str, float] = {}
    for line in text.decode().splitlines():
        m = _METRIC.match(line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


@dataclass
class ServerProcess:
    redis_url: str
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for name in list(env):
            if name.startswith("MODERATOR_"):
                del env[name]
        env.update(
            MODERATOR_REDIS_URL=self.redis_url,
            MODERATOR_CLASSIFIER_PATH=str(DEFAULT_CLASSIFIER),
            MODERATOR_JUDGE_PATH=str(DEFAULT_JUDGE),
            MODERATOR_DEVICE="cpu",
            MODERATOR_INTRA_OP_THREADS="1",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def start(self, wait_ready: bool = True, timeout_s: float = 120.0) -> ServerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moderator", "serve", "--port", str(self.port), *self.args],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        if wait_ready:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"serve exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    if self.get("/ready")[0] == 200:
                        return self
                except OSError:
                    pass
                time.sleep(0.2)
            raise AssertionError(f"serve not ready after {timeout_s}s:\n{self.log_tail()}")
        return self

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def get(self, path: str) -> tuple[int, bytes]:
        status, _, body = self.request("GET", path)
        return status, body

    def post(self, path: str, payload: Any, key: str | None = None) -> tuple[int, Any]:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        status, _, data = self.request("POST", path, body, headers)
        return status, orjson.loads(data)

    def metrics(self) -> dict[str, float]:
        return parse_metrics(self.get("/metrics")[1])

    def stop(self, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=timeout_s)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


@pytest.fixture
def start_server(redis_server: EmbeddedRedis, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """``start_server(*args, wait_ready=True, port=None, **env)`` → a started server; killed at teardown."""
    servers: list[ServerProcess] = []

    def make(*args: str, wait_ready: bool = True, port: int | None = None, **env: str) -> ServerProcess:
        server = ServerProcess(
            redis_url=redis_server.url,
            log_path=tmp_path / f"serve-{len(servers)}.log",
            extra_env={"MODERATOR_" + k.upper(): v for k, v in env.items()},
            args=list(args),
            port=port or free_port(),
        )
        servers.append(server)
        return server.start(wait_ready=wait_ready)

    yield make
    for server in servers:
        server.kill()


@pytest.fixture(scope="module")
def server(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for a module's tests that do not change its settings (no keys, default limits)."""
    proc = ServerProcess(
        redis_url=redis_server.url,
        log_path=tmp_path_factory.mktemp("serve") / "serve.log",
        extra_env={"MODERATOR_API_RATE_LIMIT": "0", "MODERATOR_API_MAX_INPUTS": "16"},
    )
    proc.start()
    yield proc
    proc.kill()
