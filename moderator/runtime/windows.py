"""Long texts scored whole: windows over a text, and pooling their scores back.

A model reads at most ``max_length`` tokens. Cutting a longer text lets anyone hide hate behind a few
hundred friendly sentences, so a long text is split into windows (each a substring of the text,
planned from the tokenizer's own offsets) that travel as ordinary rows through the model's
token-budget batching; their scores are pooled back per text.

A long comment is cut at sentence ends, and whole sentences are packed into windows of at most
``sentence_tokens`` tokens: the classifier was trained on single comments, and a window of several
unrelated sentences cut mid-phrase reads to it like nothing it has seen (four friendly sentences
together scored ``violence`` 0.49, each alone ≤0.01), so over sixty such windows one crossed a
threshold and every long friendly text went to review. A sentence longer than a window is read in
overlapping fixed windows. For a (prompt, reply) pair the reply is read in overlapping fixed windows
(the judge was trained on whole multi-sentence replies) and the prompt rides along in every window,
cut to at most half of it.

Pooling is ``max`` per label (a hate window flags the text however much friendly text surrounds it)
and ``min`` for ``clean`` (a text is clean only if every window is). The cost is bounded by
``max_windows`` × ``tokens`` tokens read per text; a text that needs more is read up to the cap and
reported ``truncated``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

#: Tokens left free in every window: re-tokenising a substring can add a piece at its edges.
EDGE_MARGIN = 4
#: Share of a window repeated in the next one, so a phrase cut at one edge is whole in a neighbour.
DEFAULT_OVERLAP = 0.25
#: 8,000 Korean characters (the default input limit, ~4,400 tokens) fit 128 × 64 tokens: read whole.
DEFAULT_MAX_WINDOWS = 128
#: The classifier was trained on single comments (~25 tokens); a short hateful sentence dominates a
#: 64-token window but drowns in a 256-token one. Measured in ``bench/long_texts.py``.
DEFAULT_WINDOW_TOKENS = 64
#: Whole sentences of a long comment are packed into windows of at most this many tokens: about one
#: training comment's length (UnSmile's median is ~25 tokens). Measured in ``bench/long_texts.py``.
DEFAULT_SENTENCE_TOKENS = 24

#: Where a sentence ends: final punctuation (not inside "3.5" or a URL: whitespace must follow), a line
#: break, a Korean sentence ending (다/요/죠/냐/까, and 노 of online slang, closing a word of two or more
#: syllables, so the adverb "다" in "다 죽어" is no end), or laughter/crying jamo before a space.
_SENTENCE_END = re.compile(
    r"(?:[.!?…。？！~]+[\"'”’)\]」』]*(?=\s)|(?<=[가-힣])[다요죠냐까노](?=\s)|[ㅋㅎㅠㅜ](?=\s))\s*|\n\s*"
)


@runtime_checkable
class WindowTokenizer(Protocol):
    """What windowing needs from a model's tokenizer (``runtime.tokenize.TextEncoder`` has it)."""

    max_length: int

    def content_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character span of every token of each text, special tokens excluded."""
        ...

    def special_tokens(self, pair: bool) -> int:
        """Special tokens the model adds around one text (``pair=False``) or a pair."""
        ...


@dataclass(frozen=True, slots=True)
class WindowConfig:
    """``max_windows``: cap per text (cost bound); ``overlap``: share of a window its neighbour repeats;
    ``tokens``: text tokens per window (0: as many as the model takes). A text of at most ``tokens``
    tokens is one window, itself. ``sentence_tokens``: a longer comment's whole sentences are packed
    into windows of at most this many tokens (0: fixed overlapping windows, as pairs always are); it
    then reads at most ``max_windows`` × ``tokens`` tokens, as fixed windows would."""

    max_windows: int = DEFAULT_MAX_WINDOWS
    overlap: float = DEFAULT_OVERLAP
    tokens: int = DEFAULT_WINDOW_TOKENS
    sentence_tokens: int = DEFAULT_SENTENCE_TOKENS

    def __post_init__(self) -> None:
        if self.max_windows < 1:
            raise ValueError(f"max_windows must be at least 1, got {self.max_windows}")
        if self.tokens < 0 or 0 < self.tokens < 8:
            raise ValueError(
                f"window tokens must be 0 (the model's maximum) or at least 8, got {self.tokens}"
            )
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"window overlap must be in [0, 1), got {self.overlap}")
        if self.sentence_tokens < 0 or 0 < self.sentence_tokens < 8:
            raise ValueError(
                f"sentence window tokens must be 0 (fixed windows) or at least 8, got {self.sentence_tokens}"
            )


def _fixed_windows(first: int, end: int, size: int, overlap: float) -> Iterator[tuple[int, int]]:
    """Token ranges of windows of ``size`` tokens over ``[first, end)``, one every
    ``size × (1 - overlap)`` tokens, the last ending at ``end``."""
    stride = max(1, min(size, round(size * (1.0 - overlap))))
    while True:
        last = min(first + size, end)
        yield first, last
        if last >= end:
            return
        first += stride


def _char_spans(
    ranges: Sequence[tuple[int, int]], offsets: Sequence[tuple[int, int]], text_length: int, cut: bool
) -> list[tuple[int, int]]:
    """Character spans of token ranges; the first starts at character 0 and, when the text was read
    to its end, the last ends at ``text_length``, so no character between tokens (spaces, marks) falls
    outside every window."""
    spans = [(offsets[a][0], offsets[b - 1][1]) for a, b in ranges]
    spans[0] = (0, spans[0][1])
    if not cut:
        spans[-1] = (spans[-1][0], text_length)
    return spans


def plan_spans(
    offsets: Sequence[tuple[int, int]], text_length: int, size: int, overlap: float, max_windows: int
) -> tuple[list[tuple[int, int]], bool]:
    """Character spans of the windows over one text, and whether its tail was left unread.

    ``offsets``: each content token's character span; ``size``: content tokens per window. Windows
    start every ``size × (1 - overlap)`` tokens, at most ``max_windows`` of them.
    """
    if size < 1:
        raise ValueError(f"a window must hold at least one token, got {size}")
    n = len(offsets)
    if n <= size:
        return [(0, text_length)], False
    ranges = list(itertools.islice(_fixed_windows(0, n, size, overlap), max_windows))
    cut = ranges[-1][1] < n
    return _char_spans(ranges, offsets, text_length, cut), cut


def sentence_starts(text: str, offsets: Sequence[tuple[int, int]]) -> list[int]:
    """Index of the first token of every sentence of ``text`` (0 first), from ``_SENTENCE_END``."""
    starts = [0]
    t, n = 0, len(offsets)
    for match in _SENTENCE_END.finditer(text):
        cut = match.end()
        # a token belongs to the sentence it ends in (a word piece may carry the space before it)
        while t < n and offsets[t][1] <= cut:
            t += 1
        if t >= n:
            break
        if t > starts[-1]:
            starts.append(t)
    return starts


def _pack(starts: Sequence[int], n: int, unit: int) -> list[tuple[int, int]]:
    """Token ranges of consecutive whole sentences, each at most ``unit`` tokens unless one sentence
    alone is longer."""
    bounds = [*starts, n]
    out: list[tuple[int, int]] = []
    first = bounds[0]
    for i in range(1, len(bounds) - 1):
        if bounds[i + 1] - first > unit:
            out.append((first, bounds[i]))
            first = bounds[i]
    out.append((first, n))
    return out


def plan_sentence_spans(
    text: str,
    offsets: Sequence[tuple[int, int]],
    size: int,
    unit: int,
    overlap: float,
    max_windows: int,
) -> tuple[list[tuple[int, int]], bool]:
    """Character spans of windows of whole sentences (at most ``unit`` tokens each), and whether the
    tail was left unread.

    A text of at most ``size`` tokens is one window. A sentence longer than ``size`` is read in
    overlapping windows of ``size`` tokens. The text is read up to ``max_windows`` × ``size`` tokens
    (fixed windows' budget); the first window starts at character 0 and, when all is read, the last
    ends at ``len(text)``.
    """
    if size < 1 or unit < 1:
        raise ValueError(f"a window must hold at least one token, got size {size}, unit {unit}")
    n = len(offsets)
    if n <= size:
        return [(0, len(text))], False
    budget = max_windows * size
    ranges: list[tuple[int, int]] = []
    read = 0
    cut = False
    for first, end in _pack(sentence_starts(text, offsets), n, min(unit, size)):
        for a, b in _fixed_windows(first, end, size, overlap):
            if read + (b - a) > budget:
                cut = True
                break
            ranges.append((a, b))
            read += b - a
        if cut:
            break
    # never empty: the first piece is at most ``size`` tokens, within any budget (max_windows >= 1)
    return _char_spans(ranges, offsets, len(text), cut), cut


@dataclass(slots=True)
class Windows:
    """Rows to score and where they came from: ``owner[r]`` is the text row ``r`` belongs to."""

    rows: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    owner: list[int] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)
    #: per text: more windows were needed than the cap allows, so its tail was not read
    truncated: list[bool] = field(default_factory=list)
    #: per text: how many windows it became
    counts: list[int] = field(default_factory=list)

    @property
    def texts(self) -> int:
        return len(self.counts)

    def pairs(self) -> list[tuple[str, str]]:
        return list(zip(self.prompts, self.rows, strict=True))


class Windower:
    """Splits texts (or the reply side of pairs) into windows that fit one model's input."""

    def __init__(self, tokenizer: WindowTokenizer, config: WindowConfig | None = None) -> None:
        self.tokenizer = tokenizer
        self.config = config or WindowConfig()
        self.max_length = tokenizer.max_length
        self._single = tokenizer.special_tokens(False)
        self._pair = tokenizer.special_tokens(True)
        # A text of at most this many characters cannot need more than one window (no tokenizer
        # makes more than 4 tokens of one character: UTF-8 byte fallback), so it skips tokenisation.
        self._short_chars = max(0, self.window_size() // 4)
        self._short_pair_chars = max(0, self.window_size(1 << 30) // 4)

    def window_size(self, prompt_tokens: int | None = None) -> int:
        """Content tokens of text per window; with a prompt, what is left after its share."""
        if prompt_tokens is None:
            size = self.max_length - self._single - EDGE_MARGIN
        else:
            room = self.max_length - self._pair - EDGE_MARGIN
            size = room - min(prompt_tokens, room // 2)
        if self.config.tokens:
            size = min(size, self.config.tokens)
        return max(1, size)

    def plan(
        self, text: str, offsets: Sequence[tuple[int, int]], size: int, pair: bool
    ) -> tuple[list[tuple[int, int]], bool]:
        """Spans of one text's windows of at most ``size`` tokens, and whether its tail is unread: a
        comment's whole sentences (``sentence_tokens``), else, and for a pair's reply, fixed windows."""
        config = self.config
        if config.sentence_tokens and not pair:
            return plan_sentence_spans(
                text, offsets, size, config.sentence_tokens, config.overlap, config.max_windows
            )
        return plan_spans(offsets, len(text), size, config.overlap, config.max_windows)

    def split(self, texts: Sequence[str], prompts: Sequence[str] | None = None) -> Windows:
        """Windows for every text, in text order; ``prompts`` (one per text) rides along in each."""
        if prompts is not None and len(prompts) != len(texts):
            raise ValueError("one prompt per text")
        out = Windows()
        short = self._short_chars if prompts is None else self._short_pair_chars
        long_rows = [i for i, t in enumerate(texts) if len(t) > short]
        found = self.tokenizer.content_offsets([texts[i] for i in long_rows])
        offsets = dict(zip(long_rows, found, strict=True))
        prompt_tokens: dict[int, int] = {}
        if prompts is not None and long_rows:
            counted = self.tokenizer.content_offsets([prompts[i] for i in long_rows])
            prompt_tokens = {i: len(o) for i, o in zip(long_rows, counted, strict=True)}
        for i, text in enumerate(texts):
            prompt = prompts[i] if prompts is not None else ""
            if i in offsets:
                size = self.window_size(prompt_tokens.get(i) if prompts is not None else None)
                spans, cut = self.plan(text, offsets[i], size, pair=prompts is not None)
            else:
                spans, cut = [(0, len(text))], False
            for start, end in spans:
                out.rows.append(text[start:end])
                out.prompts.append(prompt)
                out.owner.append(i)
                out.spans.append((start, end))
            out.truncated.append(cut)
            out.counts.append(len(spans))
        return out


@dataclass(frozen=True, slots=True)
class Pooled:
    """``scores[t, j]``: pooled score of column ``j`` for text ``t``; ``window[t, j]``: the row it came from."""

    scores: npt.NDArray[np.float32]
    window: npt.NDArray[np.int64]


def pool(
    rows: npt.NDArray[np.float32], owner: Sequence[int], texts: int, min_columns: Sequence[int] = ()
) -> Pooled:
    """Max per column over each text's rows (min for ``min_columns``, e.g. ``clean``).

    ``window`` keeps the index of the row that decided each pooled score, so a verdict can say which
    part of a long text fired.
    """
    rows = np.asarray(rows, dtype=np.float32)
    if rows.ndim == 1:
        rows = rows[:, None]
    owner_arr = np.asarray(owner, dtype=np.int64)
    if len(owner_arr) != rows.shape[0]:
        raise ValueError(f"{rows.shape[0]} scored rows but {len(owner_arr)} owners")
    width = rows.shape[1]
    scores = np.zeros((texts, width), dtype=np.float32)
    window = np.full((texts, width), -1, dtype=np.int64)
    signs = np.ones(width, dtype=np.float32)
    signs[list(min_columns)] = -1.0
    # rows of one text are contiguous and in order (Windower.split), but do not rely on it
    order = np.argsort(owner_arr, kind="stable")
    bounds = np.searchsorted(owner_arr[order], np.arange(texts + 1))
    counts = np.diff(bounds)
    if texts and not counts.all():
        raise ValueError(f"text {int(np.argmin(counts))} has no scored window")
    # the common case, a text read in one window: its row is its score, in one gather for the batch
    single = np.flatnonzero(counts == 1)
    first = order[bounds[single]]
    scores[single] = rows[first]
    window[single] = first[:, None]
    columns = np.arange(width)
    for t in np.flatnonzero(counts > 1).tolist():
        idx = order[bounds[t] : bounds[t + 1]]
        best = np.argmax(rows[idx] * signs, axis=0)
        window[t] = idx[best]
        scores[t] = rows[idx[best], columns]
    return Pooled(scores, window)
