"""A real ``moderator serve`` process per test module or test, on the session's real Redis."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from moderator.local.embedded import EmbeddedRedis, free_port
from moderator.local.harness import ServiceProcess
from moderator.settings import DEFAULT_CLASSIFIER, DEFAULT_JUDGE


@dataclass
class ServerProcess(ServiceProcess):
    """``moderator serve`` with the shipped models; ``/health``, ``/ready``, ``/metrics`` on its API port."""

    @classmethod
    def of(
        cls,
        *,
        redis_url: str,
        log_path: Path,
        args: Sequence[str] = (),
        extra_env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> ServerProcess:
        port = port or free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODERATOR_")}
        env.update(
            MODERATOR_REDIS_URL=redis_url,
            MODERATOR_CLASSIFIER_PATH=str(DEFAULT_CLASSIFIER),
            MODERATOR_JUDGE_PATH=str(DEFAULT_JUDGE),
            MODERATOR_DEVICE="cpu",
            MODERATOR_INTRA_OP_THREADS="1",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra_env or {})
        argv = [sys.executable, "-m", "moderator", "serve", "--port", str(port), *args]
        return cls(argv=argv, env=env, log_path=log_path, web_port=port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def post(self, path: str, payload: Any, key: str | None = None) -> tuple[int, Any]:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        status, _, data = self.request("POST", path, body, headers)
        return status, orjson.loads(data)


@pytest.fixture
def start_server(redis_server: EmbeddedRedis, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """``start_server(*args, wait_ready=True, port=None, **env)`` → a started server; killed at teardown."""
    servers: list[ServerProcess] = []

    def make(*args: str, wait_ready: bool = True, port: int | None = None, **env: str) -> ServerProcess:
        server = ServerProcess.of(
            redis_url=redis_server.url,
            log_path=tmp_path / f"serve-{len(servers)}.log",
            args=args,
            extra_env={"MODERATOR_" + k.upper(): v for k, v in env.items()},
            port=port,
        )
        servers.append(server)
        server.start(wait_ready=wait_ready, timeout_s=120)
        return server

    yield make
    for server in servers:
        server.kill()


@pytest.fixture(scope="module")
def server(redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for a module's tests that do not change its settings (no keys, no rate limit)."""
    proc = ServerProcess.of(
        redis_url=redis_server.url,
        log_path=tmp_path_factory.mktemp("serve") / "serve.log",
        extra_env={"MODERATOR_API_RATE_LIMIT": "0", "MODERATOR_API_MAX_INPUTS": "16"},
    )
    proc.start(wait_ready=True, timeout_s=120)
    yield proc
    proc.kill()
