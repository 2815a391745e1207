"""Spelling-game perturbations of Korean text, for training-time augmentation and the robustness figure.

Each perturbation imitates an evasion seen in real comments: a syllable written as loose jamo, a
space / digit / symbol wedged inside a word, a look-alike for the vowel ㅣ, a stretched syllable.
``perturb`` applies one or two of them to random Hangul words. Training adds perturbed copies (then
normalised by ``moderator.core.normalize``, as serving does); ``moderator eval --perturb`` and the card
score dev with a perturbation seed training did not use, so the clean → perturbed drop is measured on
spellings the model did not see verbatim.
"""

from __future__ import annotations

import random
import re

from moderator.core.normalize import _CHOSEONG, _JONGSEONG, _JUNGSEONG

_S_BASE = 0xAC00
_WORD = re.compile(r"[\uac00-\ud7a3]{2,}")


def decompose(syllable: str) -> str:
    """가 → ㄱㅏ, 각 → ㄱㅏㄱ (compatibility jamo, as typed)."""
    code = ord(syllable) - _S_BASE
    if not 0 <= code <= 11171:
        return syllable
    lead, rest = divmod(code, 21 * 28)
    vowel, tail = divmod(rest, 28)
    return _CHOSEONG[lead] + _JUNGSEONG[vowel] + (_JONGSEONG[tail] if tail else "")


def _jamo(word: str, rng: random.Random) -> str:
    i = rng.randrange(len(word))
    return word[:i] + decompose(word[i]) + word[i + 1 :]


def _all_jamo(word: str, rng: random.Random) -> str:
    return "".join(decompose(c) for c in word)


def _space(word: str, rng: random.Random) -> str:
    return " ".join(word) if len(word) >= 3 else word[0] + " " + word[1:]


def _wedge(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word))
    return word[:i] + rng.choice("1.0_*~-/^7") + word[i:]


def _i_lookalike(word: str, rng: random.Random) -> str:
    for i, c in enumerate(word):
        j = decompose(c)
        if len(j) == 2 and j[1] == "ㅣ":
            return word[:i] + j[0] + rng.choice("1l|") + word[i + 1 :]
    return _wedge(word, rng)


def _stretch(word: str, rng: random.Random) -> str:
    i = rng.randrange(len(word))
    j = decompose(word[i])
    if len(j) == 2:  # open syllable: 씨 → 씨이이
        filler = chr(_S_BASE + (11 * 21 + _JUNGSEONG.index(j[1])) * 28)
        return word[: i + 1] + filler * rng.randint(1, 3) + word[i + 1 :]
    return word[: i + 1] + word[i] * rng.randint(2, 4) + word[i + 1 :]


PERTURBATIONS = (_jamo, _all_jamo, _space, _wedge, _i_lookalike, _stretch)


def perturb(text: str, rng: random.Random, max_words: int = 2) -> str:
    """One evasion each on up to ``max_words`` random Hangul words of ``text`` (unchanged without any)."""
    words = list(_WORD.finditer(text))
    if not words:
        return text
    picked = sorted(rng.sample(words, min(max_words, len(words))), key=lambda m: m.start(), reverse=True)
    out = text
    for m in picked:
        op = rng.choice(PERTURBATIONS)
        out = out[: m.start()] + op(m.group(0), rng) + out[m.end() :]
    return out
