"""The demo's bundled sample: valid records, repeats for the cache, and its licence notice."""

from pathlib import Path

from moderator.local.demo import DEMO_DATA
from topics import decode_comment, decode_reply


def lines(name: str) -> list[bytes]:
    return [line for line in (DEMO_DATA / name).read_bytes().splitlines() if line.strip()]


def test_every_demo_record_validates_and_ids_are_unique() -> None:
    comments = [decode_comment(raw) for raw in lines("comments.jsonl")]
    replies = [decode_reply(raw) for raw in lines("replies.jsonl")]
    ids = [c.id for c in comments] + [r.id for r in replies]
    assert len(ids) == len(set(ids))
    assert len(comments) >= 200 and len(replies) >= 100


def test_some_texts_repeat_so_the_cache_shows_hits() -> None:
    texts = [decode_comment(raw).text for raw in lines("comments.jsonl")]
    repeats = len(texts) - len(set(texts))
    assert 0.1 * len(texts) <= repeats <= 0.4 * len(texts)


def test_notice_carries_the_mit_licence() -> None:
    notice = (Path(DEMO_DATA) / "NOTICE").read_text()
    assert "MIT" in notice and "NAVER" in notice
