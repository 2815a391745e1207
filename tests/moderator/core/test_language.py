"""Language tags: Hangul decides Korean alone, lingua (offline) the rest, ``und`` without letters."""

from __future__ import annotations

import pytest

from moderator.core import language
from moderator.core.language import LanguageDetector, check_codes, hangul_ratio


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("이거 진짜 웃기네 ㅋㅋ", "ko"),
        ("ㅋㅋㅋㅋ", "ko"),
        ("오늘 BTS 콘서트 다녀옴", "ko"),
        ("where did you buy this?", "en"),
        ("this video made my day", "en"),
        ("次の動画も楽しみにしてます", "ja"),
        ("这个在哪里买的？", "zh"),
        ("cảm ơn bạn đã chia sẻ", "vi"),
        ("спасибо, что поделились", "ru"),
        ("12345 !!!", "und"),
        ("😂😂😂", "und"),
        ("", "und"),
    ],
)
def test_short_comments(detector: LanguageDetector, text: str, expected: str) -> None:
    assert detector.detect(text) == expected


def test_korean_never_reaches_lingua(monkeypatch: pytest.MonkeyPatch, detector: LanguageDetector) -> None:
    def refuse(*_: object) -> str:
        raise AssertionError("lingua called for Korean text")

    monkeypatch.setattr(language, "_detect_with_lingua", refuse)
    assert detector.detect_many(["안녕하세요 반가워요", "ㅅㅂ 왜 이래", "좋아요 good"]) == ["ko"] * 3
    with pytest.raises(AssertionError):
        detector.detect("hello there my friend")


def test_hangul_ratio_counts_letters_only() -> None:
    assert hangul_ratio("한국 abc 123 !!") == pytest.approx(2 / 5)
    assert hangul_ratio("123") == 0.0
    # mostly English with one Korean word: not Korean
    assert LanguageDetector().detect("I went to the 시장 yesterday with my friends") == "en"


def test_candidate_set_is_respected() -> None:
    only_english_and_german = LanguageDetector(candidates=("en", "de"))
    assert only_english_and_german.detect("danke fürs Teilen") == "de"
    assert only_english_and_german.detect("merci pour le partage") in ("en", "de")


def test_check_codes() -> None:
    assert check_codes(["KO", " en", "und", "ja"]) == ("ko", "en", "und", "ja")
    with pytest.raises(ValueError, match="xx"):
        check_codes(["xx"])


def _letter_counts_by_character(text: str) -> tuple[int, int]:
    """The definition ``letter_counts`` implements with regexes: ``str.isalpha``, Hangul blocks."""
    hangul_blocks = ((0xAC00, 0xD7A3), (0x1100, 0x11FF), (0x3130, 0x318F), (0xA960, 0xA97F), (0xD7B0, 0xD7FF))
    letters = [ch for ch in text if ch.isalpha()]
    return len(letters), sum(any(a <= ord(ch) <= b for a, b in hangul_blocks) for ch in letters)


def test_letter_counts_match_isalpha_over_all_of_unicode() -> None:
    every = "".join(chr(i) for i in range(0x110000) if not 0xD800 <= i <= 0xDFFF)
    assert language.letter_counts(every) == _letter_counts_by_character(every)
    # and chunk by chunk, so a miscount in one block cannot hide behind another's
    for start in range(0, len(every), 4096):
        chunk = every[start : start + 4096]
        assert language.letter_counts(chunk) == _letter_counts_by_character(chunk), hex(ord(chunk[0]))
    for text in ("한국 abc 123 !!", "ㅋㅋ² ½ Ⅻ _x_", "ᄒᆞᆫ글 ꥠ ힰ", "", "١٢٣ abc"):
        assert language.letter_counts(text) == _letter_counts_by_character(text), text
