"""Language tagging on short comments: accuracy and cost per text, candidate sets compared.

The samples are short, comment-like lines written for this check (not from any corpus), ten or more per
language, some with slang, emoji or a Latin word inside. Compared: lingua over all its languages, lingua
over the expected set (``moderator.core.language.EXPECTED_LANGUAGES``), and the detector the worker uses
(Hangul ratio first, then the expected set). Run: ``.venv/bin/python -m bench.language``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from moderator.core.language import EXPECTED_LANGUAGES, LanguageDetector

SAMPLES: dict[str, list[str]] = {
    "ko": [
        "진짜 웃기네 ㅋㅋㅋ",
        "이거 어디서 샀어요?",
        "오늘 BTS 콘서트 다녀옴 ㅠㅠ 최고",
        "ㅅㅂ 왜 이래",
        "배송 너무 늦어요",
        "좋은 글 감사합니다!",
        "그건 아닌 듯",
        "헐 대박",
        "유튜브 알고리즘이 날 여기로 데려왔다",
        "내일 시험 망했다...",
        "응원합니다 화이팅 💪",
        "ㅋㅋㅋㅋㅋ",
    ],
    "en": [
        "lol this is so funny",
        "where did you buy this?",
        "worst service ever",
        "I totally agree with you",
        "thanks for sharing!",
        "no way that's true",
        "this video made my day",
        "can't wait for the next episode",
        "you are an idiot",
        "great job guys",
        "ok",
        "same here tbh",
    ],
    "ja": [
        "めっちゃ面白い",
        "これどこで買えますか？",
        "最高でした！",
        "ありがとうございます",
        "それは違うと思う",
        "明日も頑張ろう",
        "草",
        "かわいすぎる",
        "次の動画も楽しみにしてます",
        "本当にそう思います",
    ],
    "zh": [
        "太好笑了",
        "这个在哪里买的？",
        "我完全同意",
        "谢谢分享",
        "这是真的吗",
        "加油！",
        "服务太差了",
        "期待下一集",
        "你说得对",
        "今天天气很好",
    ],
    "vi": [
        "hay quá bạn ơi",
        "mua cái này ở đâu vậy?",
        "cảm ơn bạn đã chia sẻ",
        "tôi không đồng ý",
        "video này tuyệt vời",
        "chúc mừng năm mới",
        "đẹp quá trời",
        "sao lại như vậy",
        "mình cũng thấy thế",
        "cố lên nhé",
    ],
    "th": [
        "ตลกมาก",
        "ซื้อที่ไหนครับ",
        "ขอบคุณที่แบ่งปัน",
        "สวยมากเลย",
        "ไม่เห็นด้วย",
        "สู้ๆนะ",
        "รอตอนต่อไป",
        "จริงเหรอ",
        "น่ารักมาก",
        "ดีมากครับ",
    ],
    "id": [
        "lucu banget",
        "beli di mana ini?",
        "terima kasih sudah berbagi",
        "saya setuju sekali",
        "videonya bagus",
        "semangat ya",
        "kok bisa begitu",
        "keren banget kak",
        "ditunggu episode selanjutnya",
        "mantap jiwa",
    ],
    "es": [
        "me encanta este video",
        "¿dónde lo compraste?",
        "muchas gracias por compartir",
        "no estoy de acuerdo",
        "qué bonito",
        "jajaja qué risa",
        "eres un genio",
        "esto es increíble",
        "ánimo chicos",
        "feliz año nuevo",
    ],
    "fr": [
        "trop drôle",
        "où l'as-tu acheté ?",
        "merci pour le partage",
        "je ne suis pas d'accord",
        "c'est magnifique",
        "vivement la suite",
        "bravo à toute l'équipe",
        "n'importe quoi",
        "tellement mignon",
        "bonne année à tous",
    ],
    "de": [
        "echt lustig",
        "wo hast du das gekauft?",
        "danke fürs Teilen",
        "ich stimme nicht zu",
        "wunderschön",
        "freue mich auf die nächste Folge",
        "so ein Quatsch",
        "super gemacht",
        "das ist unglaublich",
        "frohes neues Jahr",
    ],
    "ru": [
        "очень смешно",
        "где ты это купил?",
        "спасибо, что поделились",
        "я не согласен",
        "красиво",
        "жду продолжения",
        "молодцы ребята",
        "это правда?",
        "с новым годом",
        "какая прелесть",
    ],
}


def _timed(fn: Callable[[str], str], texts: list[str], repeat: int = 5) -> tuple[list[str], float]:
    out = [fn(t) for t in texts]  # warm (lingua loads its models on first use)
    started = time.perf_counter()
    for _ in range(repeat):
        for t in texts:
            fn(t)
    return out, (time.perf_counter() - started) / (repeat * len(texts)) * 1e6


def _lingua(languages: list[Any] | None) -> Callable[[str], str]:
    from lingua import LanguageDetectorBuilder

    builder = (
        LanguageDetectorBuilder.from_all_languages()
        if languages is None
        else LanguageDetectorBuilder.from_iso_codes_639_1(*languages)
    )
    detector = builder.with_preloaded_language_models().build()

    def detect(text: str) -> str:
        found = detector.detect_language_of(text)
        return "und" if found is None else str(found.iso_code_639_1.name).lower()

    return detect


def main() -> None:
    from lingua import IsoCode639_1

    texts = [t for lang in SAMPLES for t in SAMPLES[lang]]
    truth = [lang for lang in SAMPLES for _ in SAMPLES[lang]]
    expected = [getattr(IsoCode639_1, c.upper()) for c in ("ko", *EXPECTED_LANGUAGES)]
    rivals: dict[str, Callable[[str], str]] = {
        "lingua, all 75 languages": _lingua(None),
        "lingua, ko/en/ja/zh only": _lingua(expected[:4]),
        "lingua, ko + expected set": _lingua(expected),
        "worker: Hangul ratio, then expected set": LanguageDetector().detect,
    }
    print(
        f"{len(texts)} short comments, {len(SAMPLES)} languages (median {sorted(map(len, texts))[len(texts) // 2]} chars)"
    )
    print(f"{'detector':42s} {'accuracy':>8s} {'us/text':>8s}  per-language accuracy")
    base_us = None
    for name, fn in rivals.items():
        got, us = _timed(fn, texts)
        base_us = base_us or us
        acc = sum(g == t for g, t in zip(got, truth, strict=True)) / len(texts)
        per = {
            lang: sum(g == lang for g, t in zip(got, truth, strict=True) if t == lang) / len(SAMPLES[lang])
            for lang in SAMPLES
        }
        wrong = [(t, g, x) for x, g, t in zip(texts, got, truth, strict=True) if g != t]
        print(
            f"{name:42s} {acc:8.3f} {us:8.1f}  "
            + " ".join(f"{k}={v:.1f}" for k, v in per.items())
            + f"  ({us / base_us:.2f}x the cost of all-languages)"
        )
        for t, g, x in wrong[:6]:
            print(f"    {t} -> {g}: {x}")
    korean = SAMPLES["ko"]
    _, lingua_ko = _timed(rivals["lingua, ko + expected set"], korean)
    _, worker_ko = _timed(rivals["worker: Hangul ratio, then expected set"], korean)
    print(
        f"Korean only: lingua {lingua_ko:.1f} us/text, Hangul fast path {worker_ko:.1f} us/text "
        f"({lingua_ko / worker_ko:.1f}x)"
    )


if __name__ == "__main__":
    main()
