"""The language of a text, as an ISO 639-1 code, offline and cheap enough for every record.

Korean is decided by script alone: when Hangul makes up at least ``KOREAN_HANGUL_RATIO`` of a text's
letters it is Korean, with no statistical model involved (the common case here costs one pass over
the characters). Anything else goes to lingua (a Rust wheel with its n-gram models inside, no
download), restricted to the languages this platform expects: on short comments a small candidate
set is far more accurate than all 75 languages (see ``bench/language.py`` for the measurement behind
``EXPECTED_LANGUAGES``). A text with no letters at all is ``und`` (undetermined, BCP 47).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

#: Share of Hangul among letters at or above which a text is Korean, no detector call. Low on purpose:
#: a syllable carries what an English word spells in 3-5 letters ("진짜 cute하다" is 4 of 8).
KOREAN_HANGUL_RATIO = 0.3
#: Languages lingua chooses among for non-Korean text (ISO 639-1), measured on short comments.
EXPECTED_LANGUAGES: tuple[str, ...] = ("en", "ja", "zh", "vi", "th", "id", "ru", "es", "fr", "de")
#: Undetermined: no letters to judge by, or a detector without an answer.
UNDETERMINED = "und"
#: Only this many characters are read: the language of a comment shows in its first lines.
MAX_DETECT_CHARS = 1000


#: Hangul blocks: syllables, conjoining jamo, compatibility jamo (ㅋㅋ, ㅅㅂ), extended jamo A and B.
HANGUL_BLOCKS: tuple[tuple[int, int], ...] = (
    (0xAC00, 0xD7A3),
    (0x1100, 0x11FF),
    (0x3130, 0x318F),
    (0xA960, 0xA97F),
    (0xD7B0, 0xD7FF),
)
_LETTER, _HANGUL = 1, 2
_CLASSES: npt.NDArray[np.uint8] | None = None


def _classes() -> npt.NDArray[np.uint8]:
    """Per code point: bit 1 = a letter (``str.isalpha``), bit 2 = a Hangul letter; built once per
    process (~0.2 s, 1.1 MB), so a batch is classified by one numpy lookup instead of a loop per
    character."""
    global _CLASSES
    if _CLASSES is None:
        with _LOCK:
            if _CLASSES is None:
                table = np.fromiter(
                    (chr(i).isalpha() for i in range(sys.maxunicode + 1)),
                    dtype=np.uint8,
                    count=sys.maxunicode + 1,
                )
                for start, end in HANGUL_BLOCKS:
                    table[start : end + 1] *= _LETTER | _HANGUL
                _CLASSES = table
    return _CLASSES


def letter_counts_many(texts: Sequence[str]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(letters, Hangul letters) per text, for a whole batch in a few numpy calls.

    The texts are joined and encoded once as UTF-32 (code points as uint32; lone surrogates pass,
    they are neither letters nor Hangul), looked up in ``_classes`` and summed per text.
    """
    if not texts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    codes = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    flags = _classes()[codes]
    ends = np.cumsum([len(t) for t in texts])
    letters = np.concatenate(([0], np.cumsum(flags & _LETTER, dtype=np.int64)))
    hangul = np.concatenate(([0], np.cumsum(flags >> 1, dtype=np.int64)))
    starts = np.concatenate(([0], ends[:-1]))
    return letters[ends] - letters[starts], hangul[ends] - hangul[starts]


def letter_counts(text: str) -> tuple[int, int]:
    """(letters, Hangul letters) of ``text``; letters by ``str.isalpha``, jamo included."""
    letters, hangul = letter_counts_many([text])
    return int(letters[0]), int(hangul[0])


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
        return self.detect_many([text])[0]

    def detect_many(self, texts: Sequence[str]) -> list[str]:
        samples = [t[:MAX_DETECT_CHARS] for t in texts]
        letters, hangul = letter_counts_many(samples)
        out = [UNDETERMINED if n == 0 else "ko" for n in letters.tolist()]
        for i in np.flatnonzero(hangul < self.korean_ratio * letters).tolist():
            if letters[i]:
                out[i] = _detect_with_lingua(self.candidates, samples[i])
        return out

    def warm(self) -> None:
        """Build the letter table and load lingua's models now (seconds, ~230 MiB for the expected
        set; once per process), so the first non-Korean text of a stream does not stall its batch."""
        _classes()
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
