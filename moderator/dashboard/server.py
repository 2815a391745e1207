"""``moderator dashboard``: wire the index, the source reader, the producer and the web app; serve.

The ``reviews`` topic is created when missing (with the worker's partition count) so a fresh stack
works; the other topics are the worker's to create, and the index simply waits for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from typing import Any

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from moderator.core.policy import load_policy
from moderator.dashboard.accounts import Accounts
from moderator.dashboard.indexer import Indexer
from moderator.dashboard.overview import GroupLag
from moderator.dashboard.source import SourceReader
from moderator.dashboard.store import Store
from moderator.dashboard.web import Dashboard, build_app
from moderator.settings import Settings, bootstrap_servers
from moderator.stream.worker import BrokerUnavailable, wait_for_broker

log = logging.getLogger(__name__)


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """aiokafka security arguments from the same settings the worker uses."""
    protocol = settings.broker_security_protocol.upper()
    if protocol == "PLAINTEXT":
        return {}
    if protocol not in ("SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        raise ValueError(f"MODERATOR_BROKER_SECURITY_PROTOCOL: unknown protocol {protocol!r}")
    kwargs: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.broker_ssl_cafile or None)
        if settings.broker_ssl_certfile:
            context.load_cert_chain(settings.broker_ssl_certfile, settings.broker_ssl_keyfile or None)
        kwargs["ssl_context"] = context
    if protocol.startswith("SASL"):
        kwargs.update(
            sasl_mechanism=settings.broker_sasl_mechanism,
            sasl_plain_username=settings.broker_sasl_username,
            sasl_plain_password=settings.broker_sasl_password,
        )
    return kwargs


_TOPIC_ALREADY_EXISTS = 36


async def ensure_reviews_topic(settings: Settings, kwargs: dict[str, Any]) -> None:
    """Create the ``reviews`` topic when missing (the worker's partition count); an existing one is
    left as it is. Waits until metadata lists it, so the first decision never races the creation."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(settings.broker), **kwargs)
    await admin.start()
    try:
        topic = settings.topic_reviews
        if topic in await admin.list_topics():
            return
        response = await admin.create_topics(
            [
                NewTopic(
                    name=topic,
                    num_partitions=settings.topic_partitions,
                    replication_factor=settings.topic_replication,
                )
            ]
        )
        errors = [
            f"error {code} {message or ''}".strip()
            for _, code, message, *_ in getattr(response, "topic_errors", [])
            if code not in (0, _TOPIC_ALREADY_EXISTS)
        ]
        if errors:
            raise ValueError(f"could not create the reviews topic {topic!r}: {'; '.join(errors)}")
        for _ in range(300):
            if topic in await admin.list_topics():
                return
            await asyncio.sleep(0.1)
        raise ValueError(f"the reviews topic {topic!r} was created but is not listed after 30 s")
    finally:
        await admin.close()


async def serve(
    settings: Settings, *, ready: asyncio.Event | None = None, stop: asyncio.Event | None = None
) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT when run from the CLI)."""
    policy = load_policy(settings.policy_path)
    kwargs = client_kwargs(settings)
    # the worker's bounded, logged wait: a dashboard started with (or before) the broker does not crash-loop
    await wait_for_broker(settings, timeout_s=settings.broker_wait_s)
    await ensure_reviews_topic(settings, kwargs)
    store = Store(settings.dashboard_db)
    reader = SourceReader(settings.broker, client_kwargs=kwargs)
    # enrichment reads inputs in bulk: its own reader, so a reviewer's text never waits behind it
    enrich_reader = SourceReader(settings.broker, client_kwargs=kwargs)
    indexer = Indexer(
        store,
        settings.topics,
        settings.broker,
        enrich_reader,
        redis_url=settings.redis_url,
        client_kwargs=kwargs,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers(settings.broker), acks="all", **kwargs)
    group_lag = GroupLag(settings.broker, settings.app_id, list(settings.topics.inputs()), kwargs)
    await reader.start()
    await enrich_reader.start()
    await producer.start()
    await group_lag.start()
    await indexer.start()
    dash = Dashboard(
        store=store,
        accounts=Accounts(store),
        indexer=indexer,
        reader=reader,
        producer=producer,
        topics=settings.topics,
        policy=policy,
        metrics_urls=[u.strip() for u in settings.dashboard_metrics_urls.split(",") if u.strip()],
        group_lag=group_lag,
        cookie_secure=settings.dashboard_cookie_secure,
        http=aiohttp.ClientSession(),
    )
    runner = web.AppRunner(build_app(dash), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.dashboard_host, settings.dashboard_port)
    try:
        await site.start()
        log.info("dashboard on http://%s:%d", settings.dashboard_host, settings.dashboard_port)
        if ready is not None:
            ready.set()
        await (stop or asyncio.Event()).wait()
    finally:
        await runner.cleanup()
        assert dash.http is not None
        await dash.http.close()
        await indexer.close()
        await group_lag.close()
        await producer.stop()
        await reader.close()
        await enrich_reader.close()
        store.close()


def run_dashboard(settings: Settings) -> int:
    if not settings.redis_url:
        log.warning("MODERATOR_REDIS_URL is empty: human decisions will not reach the worker's cache")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop=stop)

    try:
        asyncio.run(main())
    except BrokerUnavailable as exc:
        raise ValueError(str(exc)) from None
    except KafkaError as exc:
        raise ValueError(f"broker {settings.broker}: {exc}") from None
    except OSError as exc:
        raise ValueError(
            f"cannot serve on {settings.dashboard_host}:{settings.dashboard_port}: {exc}"
        ) from None
    return 0
