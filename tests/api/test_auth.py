"""Keys held as hashes, bearer parsing, loopback detection and the token bucket's arithmetic."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from moderator.api.auth import (
    ANONYMOUS,
    ApiKeys,
    KeyConfigError,
    RateLimiter,
    is_loopback,
    retry_after_header,
)


def test_plain_keys_and_hash_file(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    digest = hashlib.sha256(b"file-key").hexdigest()
    path.write_text(f"# comment\n{digest.upper()}  ops team\n")
    keys = ApiKeys.load(" a-key , ,b-key", str(path))
    assert keys.enabled and len(keys.hashes) == 3
    assert "a-key" not in repr(keys.hashes)
    assert keys.identify("Bearer file-key") == "ops team"
    assert keys.identify("bearer a-key") == f"key-{hashlib.sha256(b'a-key').hexdigest()[:8]}"
    for header in (None, "", "Bearer", "Bearer nope", "Basic a-key", "a-key"):
        assert keys.identify(header) is None


def test_no_keys_means_anonymous() -> None:
    assert ApiKeys.load("", "").identify(None) == ANONYMOUS


@pytest.mark.parametrize("content", ["abc\n", "z" * 64 + "\n"])
def test_bad_key_file_lines_are_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "keys"
    path.write_text(content)
    with pytest.raises(KeyConfigError, match=":1: not a SHA-256 hex digest"):
        ApiKeys.load("", str(path))
    with pytest.raises(KeyConfigError, match="cannot read it"):
        ApiKeys.load("", str(tmp_path / "missing"))


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
        ("example.org", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_token_bucket() -> None:
    limiter = RateLimiter(rate=2.0, burst=3)
    assert [limiter.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a", now=0.0) == pytest.approx(0.5)
    assert limiter.take("b", now=0.0) == 0.0, "buckets are per caller"
    assert limiter.take("a", now=0.5) == 0.0, "refilled at 2/s"
    assert limiter.take("a", now=0.5) == pytest.approx(0.5)
    assert RateLimiter(rate=0, burst=0).take("a") == 0.0
    assert retry_after_header(0.01) == "1" and retry_after_header(1.2) == "2"
