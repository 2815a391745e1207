"""Text normalisation shared by validation, the cache key and the models.

NFC (Korean arrives both composed and as conjoining jamo), control characters dropped, runs of
white space folded to one space. The original text is kept by the caller; only this form is hashed
and scored, so "안녕  하세요" and "안녕 하세요" share a cache entry.
"""

import hashlib
import re
import unicodedata

_CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\ufeff]"
)


#: The length-prefixed kind every content digest starts with, for the record kinds.
_KIND_PREFIXES = {
    kind: len(kind.encode("utf-8")).to_bytes(4, "little") + kind.encode("utf-8")
    for kind in ("comment", "reply")
}


def normalize_text(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    if text.isprintable():
        # the common text, in C loops only: every character _CONTROL removes is non-printable (Cc, Cf,
        # Zl, Zp), and the only white space a printable text can hold is " ", so only runs of it and
        # spaces at the ends need folding
        if "  " in text or text[:1] == " " or text[-1:] == " ":
            return " ".join(text.split())
        return text
    text = _CONTROL.sub("", text)
    # = re.sub(r"\s+", " ", text).strip(): str.split() splits on the characters re's \s matches (both
    # are Py_UNICODE_ISSPACE) and drops the ends, with no replacement per single space
    return " ".join(text.split())


def content_revision(kind: str, text: str, prompt: str | None = None) -> str:
    """The revision of a record's content: 16 hex digits of blake2b over kind and normalised text(s).

    Identity on the input topics is (id, revision): a record re-published under the same id with the
    same content is a repeat; with new content (an edited comment) it is a new revision with its own
    verdict. Producers can compute it from the same function to match verdicts to what they sent.
    """
    return _content_digest(kind, text, prompt, 8)


def content_hash(kind: str, text: str, prompt: str | None = None) -> str:
    """The key of human decisions on a text (``topics.reviews``): 40 hex digits over the same parts.

    Longer than a revision on purpose: a reviewer's decision found under it is served for every repeat
    of the text, so it must never land on another text. Model and policy are not part of it: a human
    decision outlives a model upgrade.
    """
    return _content_digest(kind, text, prompt, 20)


def is_blank(text: str) -> bool:
    """``normalize_text(text) == ""`` without building the normalised text (NFC never empties a string)."""
    return not _CONTROL.sub("", text).strip()


def revision_of_normalized(kind: str, text: str, prompt: str | None = None) -> str:
    """``content_revision`` of texts already through ``normalize_text`` (the pipeline normalises once)."""
    return _digest_normalized(kind, text, prompt, 8)


def content_hash_of_normalized(kind: str, text: str, prompt: str | None = None) -> str:
    """``content_hash`` of texts already through ``normalize_text``."""
    return _digest_normalized(kind, text, prompt, 20)


def content_parts(text: str, prompt: str | None = None) -> bytes:
    """The length-prefixed (text, prompt) bytes every content digest ends with, encoded once.

    ``revision_and_hash_of_parts`` and ``moderator.core.cache.cache_key_of_parts`` hash these bytes
    instead of encoding the normalised texts again each (blake2b over a concatenation is blake2b fed
    part by part, so the digests are the same as ``_digest_normalized``'s).
    """
    first = text.encode("utf-8")
    second = b"\x00none" if prompt is None else prompt.encode("utf-8")
    return b"".join((len(first).to_bytes(4, "little"), first, len(second).to_bytes(4, "little"), second))


def revision_and_hash_of_parts(kind: str, parts: bytes) -> tuple[str, str]:
    """(``revision_of_normalized``, ``content_hash_of_normalized``) from ``content_parts``."""
    prefix = _KIND_PREFIXES.get(kind)
    if prefix is None:
        encoded = kind.encode("utf-8")
        prefix = len(encoded).to_bytes(4, "little") + encoded
    payload = prefix + parts
    return (
        hashlib.blake2b(payload, digest_size=8).hexdigest(),
        hashlib.blake2b(payload, digest_size=20).hexdigest(),
    )


def _content_digest(kind: str, text: str, prompt: str | None, size: int) -> str:
    return _digest_normalized(
        kind, normalize_text(text), None if prompt is None else normalize_text(prompt), size
    )


def _digest_normalized(kind: str, text: str, prompt: str | None, size: int) -> str:
    """blake2b over length-prefixed parts, so ("ab", "c") and ("a", "bc") never collide."""
    h = hashlib.blake2b(digest_size=size)
    for part in (kind, text, "\x00none" if prompt is None else prompt):
        encoded = part.encode("utf-8")
        h.update(len(encoded).to_bytes(4, "little"))
        h.update(encoded)
    return h.hexdigest()
