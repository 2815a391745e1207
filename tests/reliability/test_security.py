"""Security: secrets from the environment, Kafka SASL/SSL and Redis TLS/ACL wiring, localhost-only web
endpoint, no raw text in Redis or in INFO logs, and the metrics a Prometheus user expects.

Redis TLS and ACL run against a real ``redis-server`` started with ``--tls-port`` and an ACL user, with a
throwaway CA made by the ``openssl`` command line.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import faust
import orjson
import psutil
import pytest
import redis

from moderator.cli import build_parser
from moderator.core.cache import VerdictCache, cache_key
from moderator.core.redis_store import RedisStore
from moderator.core.verdict_core import VerdictCore
from moderator.local.binaries import find_redis_server_binary
from moderator.local.embedded import free_port
from moderator.metrics import Metrics
from moderator.settings import Settings
from moderator.stream.app import broker_credentials
from tests.fixtures.faults import all_ids_done, new_topics, read_outputs
from tests.fixtures.worker import WorkerProcess
from tests.reliability.data import send
from tests.reliability.waiting import wait_for
from topics import LABEL_KEYS

SECRET = "s3cr3t-Passw0rd-do-not-log"
MARKER = "RAWTEXT-9c1e"


# ---------------------------------------------------------------------------------------- certificates


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 (and a client certificate)."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed to make test certificates (apt-get install openssl)")
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-extfile", "san.ext", "-out", f"{name}.crt", cwd=d)  # fmt: skip
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=other-ca",
             "-keyout", "other-ca.key", "-out", "other-ca.crt", cwd=d)  # fmt: skip
    return {p.name.replace(".", "_").replace("-", "_"): p for p in d.iterdir()}


# ------------------------------------------------------------------------------------------- Kafka auth


def test_plaintext_has_no_credentials() -> None:
    assert broker_credentials(Settings()) is None


def test_ssl_credentials_verify_the_broker_with_the_configured_ca_and_present_a_client_cert(
    pki: dict[str, Path],
) -> None:
    settings = Settings(
        broker_security_protocol="SSL",
        broker_ssl_cafile=str(pki["ca_crt"]),
        broker_ssl_certfile=str(pki["client_crt"]),
        broker_ssl_keyfile=str(pki["client_key"]),
    )
    creds = broker_credentials(settings)
    assert isinstance(creds, faust.SSLCredentials)
    context = creds.context
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert any(c.get("subject") == ((("commonName", "test-ca"),),) for c in context.get_ca_certs())


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_credentials_come_from_the_environment(
    protocol: str, mechanism: str, pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODERATOR_BROKER_SECURITY_PROTOCOL", protocol.lower())
    monkeypatch.setenv("MODERATOR_BROKER_SASL_MECHANISM", mechanism)
    monkeypatch.setenv("MODERATOR_BROKER_SASL_USERNAME", "moderator")
    monkeypatch.setenv("MODERATOR_BROKER_SASL_PASSWORD", SECRET)
    monkeypatch.setenv("MODERATOR_BROKER_SSL_CAFILE", str(pki["ca_crt"]))
    settings = Settings.from_env()
    creds = broker_credentials(settings)
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.username, creds.password, creds.mechanism.value) == ("moderator", SECRET, mechanism)
    assert (creds.ssl_context is not None) == (protocol == "SASL_SSL")
    assert SECRET not in repr(settings), "secrets never show in a settings repr (logs, tracebacks)"


def test_an_unknown_security_protocol_is_refused() -> None:
    with pytest.raises(ValueError, match="MODERATOR_BROKER_SECURITY_PROTOCOL"):
        broker_credentials(Settings(broker_security_protocol="SASL_MAGIC"))


def test_secrets_have_no_command_line_flags() -> None:
    """Flags show in ``ps``; passwords (SASL, Redis URL user:password) are environment-only."""
    flags = {
        opt for action in build_parser()._subparsers._group_actions[0].choices["worker"]._actions  # type: ignore[union-attr]
        for opt in action.option_strings
    }  # fmt: skip
    assert not [f for f in flags if re.search(r"pass|secret|sasl|credential|key\b", f)], flags
    assert SECRET not in repr(Settings(redis_url=f"redis://u:{SECRET}@127.0.0.1:1/0"))


def test_web_endpoint_binds_localhost_by_default() -> None:
    settings = Settings.from_env({})
    assert settings.web_host == "127.0.0.1"


# ----------------------------------------------------------------------------------- Redis TLS and ACL


@pytest.fixture(scope="module")
def tls_redis(pki: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """redis-server with TLS only (no plain port) and an ACL: user ``moderator`` may touch ``moderator:*``."""
    port = free_port()
    workdir = tmp_path_factory.mktemp("tls-redis")
    proc = subprocess.Popen(
        [
            find_redis_server_binary(),
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            str(pki["server_crt"]),
            "--tls-key-file",
            str(pki["server_key"]),
            "--tls-ca-cert-file",
            str(pki["ca_crt"]),
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--user",
            "default",
            "off",
            "--user",
            "moderator",
            "on",
            f">{SECRET}",
            "~moderator:*",
            "+@all",
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                client = redis.Redis(
                    host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=str(pki["ca_crt"]),
                    username="moderator", password=SECRET, socket_timeout=2,
                )  # fmt: skip
                client.ping()
                client.close()
                break
            except (redis.RedisError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


_CORE = VerdictCore.of([0.5] * len(LABEL_KEYS), None, False)


async def _roundtrip(cache: VerdictCache) -> tuple[list[VerdictCore | None], bool]:
    key = cache_key("tls", "test", "comment", "tls-test")
    await cache.set_many([(key, _CORE)])
    got = await cache.get_many([key])
    up = cache.available
    await cache.store.close()
    return got, up


def test_redis_over_tls_with_acl_user_and_password_from_the_url(
    tls_redis: int, pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODERATOR_REDIS_URL", f"rediss://moderator:{SECRET}@127.0.0.1:{tls_redis}/0")
    monkeypatch.setenv("MODERATOR_REDIS_SSL_CA_CERTS", str(pki["ca_crt"]))
    settings = Settings.from_env()
    metrics = Metrics()
    store = RedisStore(
        settings.redis_url, timeout_ms=2000, ssl_ca_certs=settings.redis_ssl_ca_certs, metrics=metrics
    )
    got, up = asyncio.run(_roundtrip(VerdictCache(store, ttl_s=60, metrics=metrics)))
    assert got == [_CORE] and up
    assert metrics.registry.get_sample_value("moderator_cache_errors_total", {"op": "set"}) == 0


@pytest.mark.parametrize(
    ("url", "ca"),
    [
        ("rediss://moderator:wrong-password@127.0.0.1:{port}/0", "ca_crt"),  # ACL refuses
        ("rediss://default@127.0.0.1:{port}/0", "ca_crt"),  # the default user is off
        ("rediss://moderator:" + SECRET + "@127.0.0.1:{port}/0", "other_ca_crt"),  # untrusted server cert
        ("redis://moderator:" + SECRET + "@127.0.0.1:{port}/0", ""),  # plain text to a TLS port
    ],
    ids=["wrong-password", "default-user-off", "untrusted-ca", "no-tls"],
)
def test_redis_refusing_auth_or_tls_means_uncached_not_crashed(
    tls_redis: int, pki: dict[str, Path], url: str, ca: str
) -> None:
    metrics = Metrics()
    store = RedisStore(
        url.format(port=tls_redis), timeout_ms=2000, ssl_ca_certs=str(pki[ca]) if ca else "", metrics=metrics
    )
    got, up = asyncio.run(_roundtrip(VerdictCache(store, ttl_s=60, metrics=metrics)))
    assert got == [None] and not up
    assert metrics.registry.get_sample_value("moderator_cache_errors_total", {"op": "set"}) == 1


# ----------------------------------------------------------------- a real worker: Redis, logs, sockets

EXPECTED_METRICS = {
    "moderator_messages_in_total",
    "moderator_messages_out_total",
    "moderator_dead_letters_total",
    "moderator_cache_hits_total",
    "moderator_cache_misses_total",
    "moderator_cache_errors_total",
    "moderator_cache_uncached_total",
    "moderator_cache_up",
    "moderator_batch_size_bucket",
    "moderator_batch_padded_tokens_bucket",
    "moderator_model_latency_seconds_bucket",
    "moderator_verdicts_total",
    "moderator_verdict_categories_total",
    "moderator_consumer_lag",
    "moderator_committed_offset",
    "moderator_execution_provider",
    "moderator_model_device_kind",
    "moderator_ready",
    "moderator_live",
}


@pytest.mark.slow
def test_no_raw_text_in_redis_or_info_logs_endpoint_on_localhost_and_metrics_named_conventionally(
    broker: Any, redis_server: Any, worker_factory: Callable[..., WorkerProcess], fresh_topics: Any
) -> None:
    topics, app_id = new_topics(fresh_topics, broker.url, partitions=2)
    worker = worker_factory(broker.url, topics, app_id, log_level="info")
    texts = [f"{MARKER} 비밀 댓글 {i} 너 같은 놈은 꺼져라" for i in range(150)]
    comments = [{"id": f"sec-{i}", "text": t, "author": f"{MARKER}-author"} for i, t in enumerate(texts)]
    replies = [
        {"id": f"secr-{i}", "prompt": f"{MARKER} 질문 {i}", "reply": f"{MARKER} 답변 {i}"} for i in range(50)
    ]
    bad = [{"id": "sec-bad", "text": MARKER, "extra": MARKER}]
    send(broker.url, topics.comments, comments + bad)
    send(broker.url, topics.replies, replies)
    ids = [r["id"] for r in comments + replies]
    out = read_outputs(broker.url, topics, all_ids_done(topics, ids, n_dead=1), 120)
    assert len(out[topics.dead_letter]) == 1

    # Redis: keys are hashes under versioned prefixes, values are verdict cores or positions, never text
    client = redis.Redis.from_url(redis_server.url)
    keys = list(client.scan_iter(count=1000))
    ours = [k for k in keys if k.startswith(b"moderator:")]
    assert ours, "the worker wrote to Redis"
    for key in ours:
        assert re.fullmatch(rb"moderator:(v2:[0-9a-f]{8}|id:v2):[0-9a-f]{32,40}", key), key
    values = client.mget(ours)
    leaked = [v for v in values if v and (MARKER.encode() in v or "댓글".encode() in v)]
    assert not leaked, leaked[:3]
    assert not [k for k in keys if MARKER.encode() in k]
    client.close()

    # the web endpoint listens on 127.0.0.1 only
    listening = [
        c.laddr
        for c in psutil.Process(worker.pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening

    # metrics: every family the issue lists, with conventional names (lag: after the first liveness check)
    wait_for(
        lambda: "moderator_consumer_lag" in {re.sub(r"\{.*", "", k) for k in worker.metrics()}, 20, "lag"
    )
    families = {re.sub(r"\{.*", "", k) for k in worker.metrics()}
    assert families >= EXPECTED_METRICS, EXPECTED_METRICS - families
    assert worker.stop() == 0
    log = worker.log_tail(10_000_000)
    assert "INFO" in log, "the log was captured at INFO"
    assert MARKER not in log and "댓글" not in log and "답변" not in log
    assert orjson.loads(out[topics.dead_letter][0][1])["reason"] == "unknown_field"
