import asyncio
from typing import Any

from aiokafka.partitioner import DefaultPartitioner, murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from moderator.stream import adapter
from moderator.stream.partitioner import default_partitions, murmur2_many


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=60))
def test_murmur2_many_is_aiokafkas_murmur2_for_every_key(keys: list[bytes]) -> None:
    assert murmur2_many(keys) == [murmur2(key) for key in keys]


def test_edge_lengths_and_high_bytes() -> None:
    keys = [
        b"",
        b"\xff",
        b"\xff\xfe",
        b"\x80\x81\x82",
        b"\xff" * 4,
        b"\x00" * 5,
        b"c-12345",
        "아이디".encode(),
    ]
    assert murmur2_many(keys) == [murmur2(key) for key in keys]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=20), min_size=1, max_size=40), st.integers(1, 12))
def test_default_partitions_match_aiokafkas_default_partitioner(keys: list[bytes], count: int) -> None:
    partitions = list(range(count))
    expected = [DefaultPartitioner()(key, partitions, partitions) for key in keys]
    assert default_partitions(keys, partitions) == expected


def test_send_batches_puts_each_keyed_record_where_the_default_partitioner_would() -> None:
    sent: list[tuple[str, int, list[Any]]] = []

    class Builder:
        def __init__(self) -> None:
            self.keys: list[Any] = []

        def append(self, *, key: Any, value: Any, timestamp: Any) -> Any:
            self.keys.append(key)
            return object()

    class Kafka:
        client = type("Client", (), {"_wait_on_metadata": lambda self, topic: asyncio.sleep(0)})()
        _metadata = type(
            "Metadata",
            (),
            {
                "partitions_for_topic": lambda self, topic: {0, 1, 2, 3, 4},
                "available_partitions_for_topic": lambda self, topic: {0, 1, 2, 3, 4},
            },
        )()
        _partitioner = DefaultPartitioner()

        def create_batch(self) -> Builder:
            return Builder()

        async def send_batch(self, builder: Builder, topic: str, *, partition: int) -> Any:
            sent.append((topic, partition, builder.keys))
            return f"fut-{topic}-{partition}"

    producer = type("Producer", (), {"_ensure_producer": lambda self: Kafka()})()
    keys = [f"c-{i}".encode() for i in range(40)] + ["아이디".encode(), b""]
    records = [("v", key, b"x") for key in keys] + [("d", None, b"dead letter without an id")]
    out = asyncio.run(adapter.send_batches(producer, records))
    for key, outcome in zip(keys, out, strict=False):
        assert outcome == f"fut-v-{(murmur2(key) & 0x7FFFFFFF) % 5}"
    assert out[-1].startswith("fut-d-")  # a key-less record: a random available partition, as send()
    assert sorted(k for topic, _, ks in sent if topic == "v" for k in ks) == sorted(keys)
