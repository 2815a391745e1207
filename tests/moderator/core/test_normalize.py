"""The Korean obfuscation normaliser: evasions collapse to the plain spelling, ordinary text survives."""

from __future__ import annotations

import random

import pytest

from moderator.core.normalize import normalize_text, recompose_jamo
from onnx_export.train.perturb import perturb


@pytest.mark.parametrize(
    ("spelled", "plain"),
    [
        ("ㅅㅣㅂㅏㄹ 놈아", "시발 놈아"),  # loose jamo
        ("ㄱㅐㅅㅐㄲㅣ", "개새끼"),
        ("ㅎㅗㅏㄱ인", "확인"),  # a compound vowel typed as two
        ("시.발", "시발"),  # a symbol inside a word
        ("병_신", "병신"),
        ("시1발", "시발"),  # a digit inside a word
        ("ㅅ1발", "시발"),  # a look-alike for ㅣ
        ("개 새 끼 야", "개새끼야"),  # a word spelled apart
        ("씨이이이발", "씨발"),  # stretched syllable
        ("존나아아아", "존나"),
        ("날날날씨", "날씨"),
        ("병\u200b신", "병신"),  # zero-width space
        ("ｓｅｘ", "sex"),  # full-width
        ("sеx", "sex"),  # Cyrillic е
        ("ㅋㅋㅋㅋㅋㅋ", "ㅋㅋ"),
    ],
)
def test_evasions_collapse(spelled: str, plain: str) -> None:
    assert normalize_text(spelled) == plain


@pytest.mark.parametrize(
    "text",
    [
        "ㅅㅂ",  # initial-consonant shorthand keeps its own spelling
        "ㅗㅗ",
        "1년6개월 만에 3층으로 이사했다",  # counters after digits stay
        "일베에서 카페에 갔다",  # a single 에 after 베/페 is a particle, not a stretch
        "나아가다",
        "상징성,정통성",
        "흑인 친구가 한국어를 정말 잘해요",
        "짝짝 박수",
    ],
)
def test_ordinary_text_survives(text: str) -> None:
    assert normalize_text(text) == text


def test_idempotent_and_undoes_most_training_perturbations() -> None:
    rng = random.Random(3)
    texts = ["시발 진짜 개새끼들 다 꺼져", "여자들은 집에서 애나 봐라", "오늘 날씨가 정말 좋네요"] * 30
    undone = 0
    for t in texts:
        n = normalize_text(perturb(t, rng))
        assert normalize_text(n) == n
        undone += n == normalize_text(t)
    # measured 64/90 here: a two-syllable word spelled apart (시 발), a single stretch by a vowel other than
    # ㅣ (새애끼) stay as they are by design (ordinary text has too many of both); the model learns them
    # from the perturbed training copies instead
    assert undone / len(texts) >= 0.7


def test_recompose_leaves_lone_consonants() -> None:
    assert recompose_jamo("ㄱㄴㄷ") == "ㄱㄴㄷ"
