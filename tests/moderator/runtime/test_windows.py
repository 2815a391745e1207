"""Windows over long texts: planning from token offsets, real tokenizers, pooling back per text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from moderator.runtime.metadata import read_metadata
from moderator.runtime.tokenize import TextEncoder, load_tokenizer
from moderator.runtime.windows import (
    WindowConfig,
    Windower,
    plan_sentence_spans,
    plan_spans,
    pool,
    sentence_starts,
)

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "models" / "moderator-multitask-e5-small"
FRIENDLY = "오늘 날씨가 정말 좋아서 친구들이랑 공원에 산책을 다녀왔어요. "


def shipped_encoder() -> TextEncoder:
    meta = read_metadata(SHIPPED)
    return TextEncoder(load_tokenizer(SHIPPED, meta), meta.max_length)


def word_offsets(n: int) -> tuple[list[tuple[int, int]], int]:
    """``n`` three-character tokens separated by single spaces, as a tokenizer would report them."""
    return [(4 * i, 4 * i + 3) for i in range(n)], max(0, 4 * n - 1)


def test_short_text_is_one_window_over_all_of_it() -> None:
    offsets, length = word_offsets(10)
    assert plan_spans(offsets, length + 2, size=10, overlap=0.25, max_windows=4) == ([(0, length + 2)], False)


def test_long_text_windows_overlap_and_reach_both_ends() -> None:
    offsets, length = word_offsets(100)
    spans, cut = plan_spans(offsets, length, size=40, overlap=0.25, max_windows=10)
    assert not cut
    assert spans[0][0] == 0 and spans[-1][1] == length
    for (_, e0), (s1, _) in zip(spans, spans[1:], strict=False):
        assert s1 < e0, "neighbouring windows share tokens"
    assert len(spans) == 1 + -(-(100 - 40) // 30)


def test_cap_reads_the_head_and_reports_the_rest_unread() -> None:
    offsets, length = word_offsets(1000)
    spans, cut = plan_spans(offsets, length, size=40, overlap=0.0, max_windows=3)
    assert cut
    assert len(spans) == 3
    assert spans[-1][1] == offsets[119][1] < length


@given(
    st.integers(0, 600),
    st.integers(1, 80),
    st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9]),
    st.integers(1, 40),
)
def test_every_token_inside_a_window_of_at_most_size_tokens(
    n: int, size: int, overlap: float, cap: int
) -> None:
    offsets, length = word_offsets(n)
    spans, cut = plan_spans(offsets, length, size, overlap, cap)
    assert 1 <= len(spans) <= cap
    for start, end in spans:
        inside = [o for o in offsets if start <= o[0] and o[1] <= end]
        assert len(inside) <= size
    covered = [any(s <= o[0] and o[1] <= e for s, e in spans) for o in offsets]
    assert cut == (not all(covered))
    if not cut:
        assert spans[0][0] == 0 and spans[-1][1] == length


@pytest.mark.parametrize("sentence_tokens", [0, 24])
def test_shipped_tokenizer_windows_fit_the_model_untruncated(sentence_tokens: int) -> None:
    encoder = shipped_encoder()
    windower = Windower(encoder, WindowConfig(max_windows=64, sentence_tokens=sentence_tokens))
    text = (FRIENDLY * 120).strip()
    split = windower.split([text, "짧은 댓글"])
    assert split.counts[1] == 1 and split.rows[-1] == "짧은 댓글"
    assert split.counts[0] > 5 and split.truncated == [False, False]
    long_rows = split.rows[: split.counts[0]]
    assert all(not t for t in encoder.encode(long_rows).truncated)
    # together the windows hold every token of the text (fixed windows overlap, sentences do not)
    held = sum(len(o) for o in encoder.content_offsets(long_rows))
    whole = len(encoder.content_offsets([text])[0])
    assert held > whole if sentence_tokens == 0 else held == whole
    assert "".join(r[:5] for r in long_rows[:1]) == text[:5] and long_rows[-1].endswith(text[-5:])
    if sentence_tokens:
        # every window is whole sentences: here one (17 tokens; two would pass 24)
        assert all(row.strip() == FRIENDLY.strip() for row in long_rows)


def test_sentence_ends_korean_endings_punctuation_and_breaks() -> None:
    encoder = shipped_encoder()
    text = "오늘 바다에 갔다 진짜 좋았어요 3.5km 걸었음 www.naver.com 참고 이 새끼들 다 죽어 ㅋㅋ 좋네!! 그래?\n다음"
    (offsets,) = encoder.content_offsets([text])
    firsts = [text[offsets[t][0] : offsets[t][1]].strip() for t in sentence_starts(text, offsets)]
    # a sentence starts after 갔다, 좋았어요, ㅋㅋ, !!, ? and the line break; not after "3." (no space),
    # "www." or the adverb 다 in "다 죽어"
    assert [f[:1] for f in firsts] == ["오", "진", "3", "좋", "그", "다"], firsts


def test_a_word_piece_carrying_its_space_starts_the_next_sentence() -> None:
    # tokens as a sentencepiece tokenizer reports them: "▁이" spans the space before 이
    text = "좋네요. 이 새끼"
    offsets = [(0, 3), (3, 4), (4, 6), (6, 7), (7, 10)]
    assert sentence_starts(text, offsets) == [0, 2]


def sentence_offsets(lengths: list[int]) -> tuple[str, list[tuple[int, int]]]:
    """A text of sentences of ``lengths`` tokens ("가다" words, each sentence ending in "다."),
    one token per word, and its offsets."""
    words: list[str] = []
    for n in lengths:
        words += ["가가"] * (n - 1) + ["가다."]
    text = " ".join(words)
    offsets, at = [], 0
    for w in words:
        offsets.append((at, at + len(w)))
        at += len(w) + 1
    return text, offsets


def test_sentences_packed_whole_up_to_the_unit() -> None:
    text, offsets = sentence_offsets([5, 5, 5, 30, 2, 2])
    spans, cut = plan_sentence_spans(text, offsets, size=16, unit=12, overlap=0.25, max_windows=100)
    assert not cut
    tokens = [sum(1 for o in offsets if s <= o[0] and o[1] <= e) for s, e in spans]
    # 5+5 packed, 5 alone (a third would pass 12), the 30-token sentence in windows of 16 every 12
    # tokens, then 2+2
    assert tokens == [10, 5, 16, 16, 6, 4]
    assert spans[0][0] == 0 and spans[-1][1] == len(text)


@given(
    st.lists(st.integers(1, 40), min_size=1, max_size=40),
    st.integers(8, 40),
    st.integers(8, 48),
    st.integers(1, 30),
)
def test_sentence_windows_read_every_token_within_the_budget(
    lengths: list[int], size: int, unit: int, cap: int
) -> None:
    text, offsets = sentence_offsets(lengths)
    spans, cut = plan_sentence_spans(text, offsets, size, unit, 0.25, cap)
    inside = [[o for o in offsets if s <= o[0] and o[1] <= e] for s, e in spans]
    assert all(1 <= len(i) <= size for i in inside)
    read = sum(len(i) for i in inside) if len(spans) > 1 else len(offsets)
    assert read <= max(cap * size, size) or len(spans) == 1
    covered = [any(s <= o[0] and o[1] <= e for s, e in spans) for o in offsets]
    assert cut == (not all(covered))
    if not cut:
        assert spans[0][0] == 0 and spans[-1][1] == len(text)


def test_pair_windows_keep_the_prompt_and_fit() -> None:
    encoder = shipped_encoder()
    windower = Windower(encoder, WindowConfig(max_windows=64))
    prompt = "주말에 뭐 하면 좋을까? " * 40  # longer than half a window: cut by the model, not the reply
    reply = (FRIENDLY * 60).strip()
    split = windower.split([reply], [prompt])
    assert split.counts[0] > 2
    assert all(p == prompt for p in split.prompts)
    enc = encoder.encode(split.pairs())
    for ids, row in zip(enc.ids, split.rows, strict=True):
        assert len(ids) <= encoder.max_length
        # the prompt was cut to fit; every token of the reply window reached the model
        window_ids = encoder.tokenizer.encode(row, add_special_tokens=False).ids
        assert ids[-1 - len(window_ids) : -1] == window_ids


def test_cap_from_config_marks_the_text_truncated() -> None:
    fixed = Windower(shipped_encoder(), WindowConfig(max_windows=2, sentence_tokens=0))
    split = fixed.split([(FRIENDLY * 80).strip()])
    assert split.counts == [2] and split.truncated == [True]
    # sentence windows read the same budget: 2 × 64 tokens, as sentences of ~18 tokens, one per window
    encoder = shipped_encoder()
    sentences = Windower(encoder, WindowConfig(max_windows=2))
    split = sentences.split([(FRIENDLY * 80).strip()])
    assert split.truncated == [True]
    assert sum(len(o) for o in encoder.content_offsets(split.rows)) <= 2 * 64
    assert split.counts[0] > 2 and all(row.strip() == FRIENDLY.strip() for row in split.rows)


def test_config_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        WindowConfig(max_windows=0)
    with pytest.raises(ValueError):
        WindowConfig(overlap=1.0)
    with pytest.raises(ValueError):
        WindowConfig(sentence_tokens=3)


def test_pool_takes_max_per_label_min_for_clean_and_remembers_the_window() -> None:
    rows = np.array(
        [
            [0.1, 0.9],  # text 0, window 0
            [0.8, 0.2],  # text 0, window 1: hate here, not clean
            [0.3, 0.7],  # text 1
        ],
        dtype=np.float32,
    )
    pooled = pool(rows, owner=[0, 0, 1], texts=2, min_columns=[1])
    np.testing.assert_allclose(pooled.scores, [[0.8, 0.2], [0.3, 0.7]], rtol=1e-6)
    assert pooled.window.tolist() == [[1, 1], [2, 2]]


def test_pool_one_column_and_bad_owners() -> None:
    pooled = pool(np.array([0.2, 0.6, 0.1], dtype=np.float32), owner=[0, 0, 1], texts=2)
    assert pooled.scores[:, 0].tolist() == pytest.approx([0.6, 0.1])
    with pytest.raises(ValueError):
        pool(np.zeros((2, 1), np.float32), owner=[0], texts=1)
    with pytest.raises(ValueError):
        pool(np.zeros((1, 1), np.float32), owner=[0], texts=2)


def test_pool_matches_a_per_text_reference_on_shuffled_mixed_batches() -> None:
    """One-window texts take the batched gather, several-window ones the per-text max: same answer."""
    rng = np.random.default_rng(7)
    counts = rng.integers(1, 4, size=40)  # 1-3 windows per text
    owner = np.repeat(np.arange(40), counts)
    rng.shuffle(owner)  # pool must not rely on rows arriving grouped
    rows = rng.random((len(owner), 3)).astype(np.float32)
    pooled = pool(rows, owner=owner.tolist(), texts=40, min_columns=[2])
    for t in range(40):
        idx = np.flatnonzero(owner == t)
        best = [idx[np.argmax(rows[idx, 0])], idx[np.argmax(rows[idx, 1])], idx[np.argmin(rows[idx, 2])]]
        assert pooled.window[t].tolist() == best
        assert pooled.scores[t].tolist() == [rows[best[j], j] for j in range(3)]
