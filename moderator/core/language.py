"""The language of a text, as an ISO 639-1 code, offline and cheap enough for every record.

Korean is decided by script alone: when Hangul makes up at least ``KOREAN_HANGUL_RATIO`` of a text's
letters it is Korean, with no statistical model involved (the common case here costs one pass over
the characters). Anything else goes to lingua (a Rust wheel with its n-gram models inside, no
download), restricted to the languages this platform expects: on short comments a small candidate
set is far more accurate than all 75 languages (see ``bench/language.py`` for the measurement behind
``EXPECTED_LANGUAGES``). A text with no letters at all is ``und`` (undetermined, BCP 47).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

#: Share of Hangul among letters at or above which a text is Korean, no detector call. Low on purpose:
#: a syllable carries what an English word spells in 3-5 letters ("진짜 cute하다" is 4 of 8).
KOREAN_HANGUL_RATIO = 0.3
#: Languages lingua chooses among for non-Korean text (ISO 639-1), measured on short comments.
EXPECTED_LANGUAGES: tuple[str, ...] = ("en", "ja", "zh", "vi", "th", "id", "ru", "es", "fr", "de")
#: Undetermined: no letters to judge by, or a detector without an answer.
UNDETERMINED = "und"
#: Only this many characters are read: the language of a comment shows in its first lines.
MAX_DETECT_CHARS = 1000


def _is_hangul(ch: str) -> bool:
    o = ord(ch)
    return (
        0xAC00 <= o <= 0xD7A3  # syllables
        or 0x1100 <= o <= 0x11FF  # conjoining jamo
        or 0x3130 <= o <= 0x318F  # compatibility jamo (ㅋㅋ, ㅅㅂ)
        or 0xA960 <= o <= 0xA97F
        or 0xD7B0 <= o <= 0xD7FF
    )


def letter_counts(text: str) -> tuple[int, int]:
    """(letters, Hangul letters) of ``text``; letters by ``str.isalpha``, jamo included."""
    letters = hangul = 0
    for ch in text:
        if ch.isalpha():
            letters += 1
            if _is_hangul(ch):
                hangul += 1
    return letters, hangul


def hangul_ratio(text: str) -> float:
    """Hangul characters over all letters; 0.0 for a text without letters."""
    letters, hangul = letter_counts(text)
    return hangul / letters if letters else 0.0


@dataclass(frozen=True, slots=True)
class LanguageDetector:
    """Hangul ratio first, then lingua over ``candidates``; thread-safe, built once per process."""

    candidates: tuple[str, ...] = EXPECTED_LANGUAGES
    korean_ratio: float = KOREAN_HANGUL_RATIO

    def detect(self, text: str) -> str:
        sample = text[:MAX_DETECT_CHARS]
        letters, hangul = letter_counts(sample)
        if not letters:
            return UNDETERMINED
        if hangul >= self.korean_ratio * letters:
            return "ko"
        return _detect_with_lingua(self.candidates, sample)

    def detect_many(self, texts: Sequence[str]) -> list[str]:
        return [self.detect(t) for t in texts]

    def warm(self) -> None:
        """Load lingua's models now (seconds, ~230 MiB for the expected set; once per process), so
        the first non-Korean text of a stream does not stall its batch."""
        _lingua(self.candidates)


_LOCK = threading.Lock()
_DETECTORS: dict[tuple[str, ...], Any] = {}


def _lingua(candidates: tuple[str, ...]) -> Any:
    """One lingua detector per candidate set, built on first use (loading models takes ~100 ms)."""
    detector = _DETECTORS.get(candidates)
    if detector is not None:
        return detector
    with _LOCK:
        detector = _DETECTORS.get(candidates)
        if detector is None:
            from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

            languages = [Language.from_iso_code_639_1(_iso(IsoCode639_1, code)) for code in candidates]
            builder = (
                LanguageDetectorBuilder.from_languages(*languages)
                if len(languages) > 1
                else LanguageDetectorBuilder.from_languages(*languages, Language.ENGLISH)
            )
            detector = builder.with_preloaded_language_models().build()
            _DETECTORS[candidates] = detector
        return detector


def _iso(iso_enum: Any, code: str) -> Any:
    try:
        return getattr(iso_enum, code.upper())
    except AttributeError:
        raise ValueError(f"{code!r} is not an ISO 639-1 code lingua knows") from None


def _detect_with_lingua(candidates: tuple[str, ...], text: str) -> str:
    found = _lingua(candidates).detect_language_of(text)
    if found is None:
        return UNDETERMINED
    return str(found.iso_code_639_1.name).lower()


def check_codes(codes: Iterable[str]) -> tuple[str, ...]:
    """Validate ISO 639-1 codes against lingua's list (``ko`` and ``und`` are always accepted)."""
    from lingua import IsoCode639_1

    out: list[str] = []
    for code in codes:
        code = code.strip().lower()
        if code not in ("ko", UNDETERMINED):
            _iso(IsoCode639_1, code)
        out.append(code)
    return tuple(out)
