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
