"""Id registry: the content revision last verdicted under each input id.

Identity on an input topic is (id, content revision). A record whose id was verdicted before with
another revision is an edit: its verdict names the revision it supersedes. Ids are recorded only once
a verdict exists, so a record dead-lettered for a model error and re-fed later (``moderator replay``)
is simply scored. Shared through Redis by the workers of one deployment (keys hashed per input topic
and id, values are revisions, no text); an in-process LRU answers while Redis is down or off, which is
all ``moderator score`` uses unless asked to share.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from moderator.core.redis_store import RedisStore

ID_PREFIX = "moderator:id:v2:"
#: ids this process remembers itself (the newest; ~0.5 KB each as the worker builds them: key, revision,
#: partition name and offset): the fallback while Redis is down, and all ``moderator score`` uses
LOCAL_MAX = 200_000


@dataclass(slots=True)
class Revision:
    """The revision verdicted under an id, and where its record sat (``partition`` = ``topic/partition``).

    The position tells a redelivery from an edit: Kafka keeps one partition in order, so a record at
    an earlier offset of the partition that holds the id's latest revision is an old record coming
    round again (a crash before commit), not a newer edit.

    Not frozen: one is built per verdicted record, and a frozen dataclass's ``__init__`` costs several
    times a plain one's; nothing changes one after it is built.
    """

    revision: str
    partition: str = ""
    offset: int = -1

    def encode(self) -> bytes:
        return f"{self.revision} {self.offset} {self.partition}".encode()

    @classmethod
    def decode(cls, raw: bytes | str) -> Revision:
        text = raw.decode() if isinstance(raw, bytes) else raw
        revision, _, rest = text.partition(" ")
        offset, _, partition = rest.partition(" ")
        return cls(revision, partition, int(offset) if offset.lstrip("-").isdigit() else -1)

    def is_later_than(self, partition: str, offset: int) -> bool:
        return bool(partition) and self.partition == partition and self.offset > offset


def id_key(topic: str, record_id: str) -> str:
    return ID_PREFIX + hashlib.blake2b(f"{topic}\x00{record_id}".encode(), digest_size=16).hexdigest()


class IdRegistry:
    def __init__(
        self, store: RedisStore | None = None, *, ttl_s: int = 24 * 3600, local_max: int = LOCAL_MAX
    ) -> None:
        self.store = store
        self._ttl = ttl_s
        self._local_max = local_max
        #: insertion-ordered (a plain dict: re-inserting a key moves it last), oldest first
        self._local: dict[str, Revision] = {}

    async def latest(self, keys: Sequence[str]) -> list[Revision | None]:
        """The revision last verdicted under each id key (Redis first, then this process's memory)."""
        remote: list[bytes | str | None] = [None] * len(keys)
        if self.store is not None:
            # the verdict cache's look-up counts the batch's uncached rows; this one must not count them again
            remote = await self.store.get_many("ids", keys, count_rows=False)
        return self.resolve(keys, remote)

    def resolve(self, keys: Sequence[str], remote: Sequence[bytes | str | None]) -> list[Revision | None]:
        """Stored values (``None``: not in Redis, or Redis down) → revisions, this process's memory second."""
        local = self._local.get
        decode = Revision.decode
        return [
            decode(value) if value is not None else local(key)
            for key, value in zip(keys, remote, strict=True)
        ]

    async def record(self, items: Sequence[tuple[str, Revision]]) -> None:
        """Remember (id key, revision) pairs that now have a verdict; a later pair for a key wins."""
        if self.store is None:  # this process's memory only: no stored values to encode
            self._remember_locally(items)
            return
        entries = self.remember(items)
        if entries:
            await self.store.set_each("ids", entries)

    def remember(self, items: Sequence[tuple[str, Revision]]) -> list[tuple[str, bytes, int]]:
        """Record the pairs in this process; returns (key, stored value, TTL) for Redis, last pair per key."""
        self._remember_locally(items)
        latest = dict(items)
        ttl = self._ttl
        return [(k, r.encode(), ttl) for k, r in latest.items()]

    def _remember_locally(self, items: Sequence[tuple[str, Revision]]) -> None:
        local = self._local
        pop = local.pop
        for key, revision in items:
            pop(key, None)  # re-inserted below: the newest go last
            local[key] = revision
        excess = len(local) - self._local_max
        if excess > 0:
            for key in list(itertools.islice(local, excess)):
                del local[key]
