"""The ten UnSmile label keys, in the order every model and verdict uses."""

from typing import Final

#: Verdict label keys, in UnSmile's column order.
LABEL_KEYS: Final[tuple[str, ...]] = (
    "women_family",
    "men",
    "lgbtq",
    "race_nationality",
    "age",
    "region",
    "religion",
    "other_hate",
    "profanity",
    "clean",
)

#: Every key but ``clean``: the ones that can appear in a verdict's ``categories``.
HATE_LABEL_KEYS: Final[tuple[str, ...]] = LABEL_KEYS[:-1]

#: UnSmile's own Korean column names, aligned with ``LABEL_KEYS``.
UNSMILE_COLUMNS: Final[tuple[str, ...]] = (
    "여성/가족",
    "남성",
    "성소수자",
    "인종/국적",
    "연령",
    "지역",
    "종교",
    "기타 혐오",
    "악플/욕설",
    "clean",
)

#: Safety categories of a chatbot reply or a comment (KoSafeGuard's O1-O6, O1 split into hate keys
#: above and ``violence``). Their scores sit in a verdict's ``scores`` next to ``LABEL_KEYS``.
SAFETY_KEYS: Final[tuple[str, ...]] = (
    "violence",
    "sexual",
    "sexual_minors",
    "crime",
    "weapons",
    "drugs",
    "self_harm",
)

#: The multitask model's output columns, in order: UnSmile keys, safety keys, then ``unsafe``
#: (P(the text or reply is unsafe) overall).
MULTITASK_KEYS: Final[tuple[str, ...]] = (*LABEL_KEYS, *SAFETY_KEYS, "unsafe")

#: KoSafeGuard-8B's O1-O6 policy categories (the generative judge's category line) → the safety key
#: they are reported under. O1 (violence and hate) maps to ``violence``: the generative judge names no
#: group, so the hate keys stay the classifier's; O2 covers all sexual content, minors included, and
#: maps to ``sexual`` (only the multitask encoder separates ``sexual_minors``).
KOSAFEGUARD_CATEGORIES: Final[dict[str, str]] = {
    "O1": "violence",
    "O2": "sexual",
    "O3": "crime",
    "O4": "weapons",
    "O5": "drugs",
    "O6": "self_harm",
}
