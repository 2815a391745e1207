"""Text normalisation shared by validation, the cache key and the models.

NFC (Korean arrives both composed and as conjoining jamo), control characters dropped, runs of
white space folded to one space. The original text is kept by the caller; only this form is hashed
and scored, so "안녕  하세요" and "안녕 하세요" share a cache entry.
"""

import re
import unicodedata

_CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\ufeff]"
)
_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub("", text)
    return _SPACE.sub(" ", text).strip()
