"""API keys (bearer tokens, held as SHA-256 hashes) and per-key token-bucket rate limits.

Only hashes are kept in memory and in the keys file, so a leaked file or heap dump reveals no key.
Keys are named by the first 8 hex digits of their hash in logs and metrics, never by the key itself.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from moderator.exits import UsageError

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")

#: The caller's identity when the server runs without keys (loopback only).
ANONYMOUS = "anonymous"


class KeyConfigError(UsageError):
    """A keys setting the server cannot use: exit 2 with one line (``moderator.exits``)."""


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKeys:
    """The accepted keys' SHA-256 hashes → their display name (``key-<first 8 hex>``)."""

    hashes: dict[str, str] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.hashes)

    @classmethod
    def load(cls, plain: str, hashes_file: str) -> ApiKeys:
        """``plain``: comma-separated keys; ``hashes_file``: one SHA-256 hex per line (``#`` comments).

        A line may carry a name after the hash (``<sha256> team-a``), used in logs and metrics.
        """
        out: dict[str, str] = {}
        for key in (k.strip() for k in plain.split(",")):
            if key:
                digest = key_hash(key)
                out[digest] = f"key-{digest[:8]}"
        if hashes_file:
            path = Path(hashes_file)
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise KeyConfigError(
                    f"MODERATOR_API_KEYS_FILE {path}: cannot read it ({exc.strerror})",
                    "point MODERATOR_API_KEYS_FILE at a readable file of SHA-256 key hashes",
                ) from None
            for number, line in enumerate(lines, 1):
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                digest, _, name = line.partition(" ")
                if not _HEX64.match(digest):
                    raise KeyConfigError(
                        f"MODERATOR_API_KEYS_FILE {path}:{number}: not a SHA-256 hex digest",
                        "one hash per line (`printf %s KEY | sha256sum`), optionally followed by a name",
                    )
                digest = digest.lower()
                out[digest] = name.strip() or f"key-{digest[:8]}"
        return cls(out)

    def identify(self, authorization: str | None) -> str | None:
        """The caller's name for an ``Authorization: Bearer <key>`` header; ``None`` when refused."""
        if not self.enabled:
            return ANONYMOUS
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        # A dict lookup on the hash: timing can at most reveal a prefix of a hash, never of a key.
        return self.hashes.get(key_hash(token))


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class RateLimiter:
    """Token bucket per caller: ``rate`` requests/s on average, bursts up to ``burst``; 0 = no limit."""

    rate: float
    burst: int
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def take(self, caller: str, cost: float = 1.0, now: float | None = None) -> float:
        """Take ``cost`` tokens; returns 0 when allowed, else the seconds until it would be."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        capacity = max(float(self.burst), cost, 1.0)
        tokens, last = self._buckets.get(caller, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * self.rate)
        if tokens >= cost:
            self._buckets[caller] = (tokens - cost, now)
            return 0.0
        self._buckets[caller] = (tokens, now)
        return (cost - tokens) / self.rate


def retry_after_header(wait_s: float) -> str:
    """Retry-After is whole seconds; round up so a client that obeys it is not refused again."""
    return str(max(1, math.ceil(wait_s)))
