"""The pipeline's per-record digests: computed from the texts encoded once, equal to the per-text ones."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from moderator.core.cache import cache_key_of_parts, cache_key_prefix, cache_key_with
from topics.text import (
    content_hash_of_normalized,
    content_parts,
    revision_and_hash_of_parts,
    revision_of_normalized,
)


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=40),
    st.one_of(st.none(), st.text(max_size=20)),
    st.sampled_from(["comment", "reply"]),
)
def test_digests_from_content_parts_equal_the_per_text_ones(text: str, prompt: str | None, kind: str) -> None:
    """The pipeline encodes a record's texts once (``content_parts``) for its cache key, revision and
    content hash; each must be the digest the per-text functions give."""
    parts = content_parts(text, prompt)
    assert revision_and_hash_of_parts(kind, parts) == (
        revision_of_normalized(kind, text, prompt),
        content_hash_of_normalized(kind, text, prompt),
    )
    prefix = cache_key_prefix("classifier|judge", "policy-v1", kind)
    assert cache_key_of_parts(prefix, parts) == cache_key_with(prefix, text, prompt)
