"""Undo the spelling games people play to slip Korean abuse past a classifier.

Why: a model learns the spellings it was trained on. Writers evade it with loose jamo (ㅅㅣㅂㅏㄹ),
separators inside a word (시.발, 시1발, 시 발 놈), look-alike characters (ㅅl발, Cyrillic letters in
English words) and stretched syllables (씨이이이발, 존나아아아). This module maps all of those back to
one canonical spelling *before tokenisation*, the same function in training (``onnx_export.train``)
and serving (the runtime's text encoder when a model's metadata names this normaliser), so what the
model saw in training is what it sees in production. Pure Python, no dependencies, ~µs per comment.

``NORMALIZER_ID`` is written into a model's metadata; a model trained with another version must not
be served with this one (the runtime refuses unknown ids).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

NORMALIZER_ID: Final = "ko-obfuscation-v1"

_S_BASE, _S_END = 0xAC00, 0xD7A3
_N_V, _N_T = 21, 28

#: Compatibility jamo (what keyboards type for loose jamo) in syllable-composition order.
_CHOSEONG: Final = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
_JUNGSEONG: Final = "ㅏㅐㅑㅒㅓㅔㅕㅖㅗㅘㅙㅚㅛㅜㅝㅞㅟㅠㅡㅢㅣ"
_JONGSEONG: Final = " ㄱㄲㄳㄴㄵㄶㄷㄹㄺㄻㄼㄽㄾㄿㅀㅁㅂㅄㅅㅆㅇㅈㅊㅋㅌㅍㅎ"  # index 0 = none
_L_INDEX: Final = {c: i for i, c in enumerate(_CHOSEONG)}
_V_INDEX: Final = {c: i for i, c in enumerate(_JUNGSEONG)}
_T_INDEX: Final = {c: i for i, c in enumerate(_JONGSEONG) if i}

#: Two vowels typed separately that form one compound vowel (ㅗ+ㅏ = ㅘ ...).
_VOWEL_PAIRS: Final = {
    ("ㅗ", "ㅏ"): "ㅘ",
    ("ㅗ", "ㅐ"): "ㅙ",
    ("ㅗ", "ㅣ"): "ㅚ",
    ("ㅜ", "ㅓ"): "ㅝ",
    ("ㅜ", "ㅔ"): "ㅞ",
    ("ㅜ", "ㅣ"): "ㅟ",
    ("ㅡ", "ㅣ"): "ㅢ",
}

#: Conjoining (U+1100 block) jamo → compatibility jamo, so NFD-decomposed input recomposes too.
_CONJOINING: Final = {
    **{chr(0x1100 + i): c for i, c in enumerate(_CHOSEONG)},
    **{chr(0x1161 + i): c for i, c in enumerate(_JUNGSEONG)},
    **{chr(0x11A7 + i): c for i, c in enumerate(_JONGSEONG) if i},
}

#: Characters that stand in for the vowel ㅣ after a consonant jamo (ㅅ1발, ㅅl발, ㅅ|발).
_I_LOOKALIKES: Final = frozenset("1lI|!ǀ丨")

#: Cyrillic and Greek letters that look like Latin ones (homoglyph evasion in English words).
_HOMOGLYPHS: Final = str.maketrans(
    {
        "а": "a",
        "е": "e",
        "о": "o",
        "р": "p",
        "с": "c",
        "у": "y",
        "х": "x",
        "і": "i",
        "ј": "j",
        "ѕ": "s",
        "к": "k",
        "м": "m",
        "т": "t",
        "в": "b",
        "н": "h",
        "А": "A",
        "В": "B",
        "Е": "E",
        "К": "K",
        "М": "M",
        "Н": "H",
        "О": "O",
        "Р": "P",
        "С": "C",
        "Т": "T",
        "Х": "X",
        "І": "I",
        "α": "a",
        "ο": "o",
        "ν": "v",
        "ι": "i",
        "κ": "k",
        "ρ": "p",
        "τ": "t",
        "υ": "u",
        "Α": "A",
        "Β": "B",
        "Ε": "E",
        "Ζ": "Z",
        "Η": "H",
        "Ι": "I",
        "Κ": "K",
        "Μ": "M",
        "Ν": "N",
        "Ο": "O",
        "Ρ": "P",
        "Τ": "T",
        "Υ": "Y",
        "Χ": "X",
    }  # fmt: skip
)

_INVISIBLE = re.compile(
    "[\u00ad\u034f\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u3164\ufeff\uffa0]"
)
_HANGUL_SYL = "\uac00-\ud7a3"
#: One or two symbols wedged between two syllables (시.발, 병_신). Commas stay: they separate lists.
_WEDGED = re.compile(rf"(?<=[{_HANGUL_SYL}])[._\-*~^/\\|'`\"+=:;#@$%&]{{1,2}}(?=[{_HANGUL_SYL}])")
#: A single digit between syllables (시1발), unless a counter follows it (1년6개월, 3층) or a digit
#: precedes it.
_COUNTERS = "년월일개명번살시분초층원대세회차등위호권장잔병마점주달박위자도배kg"
_WEDGED_DIGIT = re.compile(rf"(?<=[{_HANGUL_SYL}])[0-9](?=[{_HANGUL_SYL}])(?![{_COUNTERS}])")
#: Three or more single syllables separated by single spaces: one word spelled apart (개 새 끼).
_SPACED = re.compile(rf"(?<![{_HANGUL_SYL}])[{_HANGUL_SYL}](?: [{_HANGUL_SYL}]){{2,}}(?![{_HANGUL_SYL}])")
_RUNS = re.compile(r"(.)\1{2,}")
_SYLLABLE_RUNS = re.compile(rf"([{_HANGUL_SYL}])\1{{2,}}")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")


def _syllable(lead: str, vowel: str, tail: str = "") -> str:
    t = _T_INDEX.get(tail, 0) if tail else 0
    return chr(_S_BASE + (_L_INDEX[lead] * _N_V + _V_INDEX[vowel]) * _N_T + t)


def _vowel_of(ch: str) -> str | None:
    code = ord(ch) - _S_BASE
    if 0 <= code <= _S_END - _S_BASE and code % _N_T == 0:
        return _JUNGSEONG[(code // _N_T) % _N_V]
    return None


def recompose_jamo(text: str) -> str:
    """Compose loose compatibility jamo into syllables where they spell one (ㅅㅣㅂㅏㄹ → 시발).

    A consonant not followed by a vowel stays as it is, so initial-consonant shorthand (ㅅㅂ, ㅋㅋ)
    keeps its own, already meaningful, spelling. A lone look-alike of ㅣ (1, l, |) after a consonant
    jamo is read as ㅣ.
    """
    chars = [_CONJOINING.get(c, c) for c in text]
    out: list[str] = []
    i, n = 0, len(chars)
    while i < n:
        c = chars[i]
        nxt = chars[i + 1] if i + 1 < n else ""
        if c in _L_INDEX and (
            nxt in _V_INDEX or (nxt in _I_LOOKALIKES and _lookalike_is_vowel(chars, i + 1))
        ):
            vowel = "ㅣ" if nxt in _I_LOOKALIKES else nxt
            j = i + 2
            if j < n and (vowel, chars[j]) in _VOWEL_PAIRS:
                vowel = _VOWEL_PAIRS[(vowel, chars[j])]
                j += 1
            tail = ""
            # a final consonant only if the jamo after it does not start the next syllable
            if j < n and chars[j] in _T_INDEX and not (j + 1 < n and chars[j + 1] in _V_INDEX):
                tail = chars[j]
                j += 1
            out.append(_syllable(c, vowel, tail))
            i = j
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _lookalike_is_vowel(chars: list[str], k: int) -> bool:
    """A digit/letter after a consonant jamo is a ㅣ only inside Hangul (ㅅ1발), not in ㅋ1등."""
    after = chars[k + 1] if k + 1 < len(chars) else ""
    return bool(after) and (after in _L_INDEX or after in _V_INDEX or _S_BASE <= ord(after) <= _S_END)


def _join_spaced(match: re.Match[str]) -> str:
    return match.group(0).replace(" ", "")


def _drop_stretch(text: str) -> str:
    """씨이이발 → 씨발: drop 'ㅇ + the same vowel' syllables that only stretch the one before.

    One such syllable is dropped only after ㅣ (씨이발); for other vowels it takes two or more in a
    row, because one is often a real particle or word (일베에서, 나아가다).
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        out.append(ch)
        v = _vowel_of(ch)
        j = i + 1
        if v is not None:
            filler = _syllable("ㅇ", v)
            while j < n and text[j] == filler:
                j += 1
            run = j - i - 1
            if run and not (run >= 2 or v == "ㅣ"):
                j = i + 1  # a single ordinary filler: keep it
        i = j
    return "".join(out)


_COMPAT_JAMO = re.compile("([\u3131-\u318e]+)")


def _nfkc_keep_jamo(text: str) -> str:
    """NFKC (full-width, ligatures, circled letters) except for compatibility jamo, which NFKC would
    turn into leading-consonant forms and so lose the final consonant of ㅂㅏㄹ."""
    parts = _COMPAT_JAMO.split(text)
    return "".join(p if i % 2 else unicodedata.normalize("NFKC", p) for i, p in enumerate(parts))


def normalize_text(text: str) -> str:
    """Canonical spelling of ``text`` for the classifier (idempotent: f(f(x)) == f(x))."""
    t = _nfkc_keep_jamo(text)
    t = _INVISIBLE.sub("", t)
    t = t.translate(_HOMOGLYPHS)
    t = recompose_jamo(t)
    t = _WEDGED.sub("", t)
    t = _WEDGED_DIGIT.sub("", t)
    t = _SPACED.sub(_join_spaced, t)
    t = _drop_stretch(t)
    t = _SYLLABLE_RUNS.sub(r"\1", t)  # 날날날씨 → 날씨 (a doubled syllable is often a word: 짝짝)
    t = _RUNS.sub(r"\1\1", t)  # ㅋㅋㅋㅋ → ㅋㅋ, !!!!! → !!
    t = _SPACES.sub(" ", t)
    return t.strip()
