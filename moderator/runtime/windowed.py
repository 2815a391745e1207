"""Any classifier or judge, read whole: texts become windows, windows become rows, rows pool back.

The pipeline calls these instead of ``predict`` directly. Every window of every text in a batch goes
to the model in one ``predict`` call, so windows share the model's token-budget batching with the
short texts around them (a long text is several rows of the batch, scattered back by owner). A model
that exposes no tokenizer (``encoder`` attribute with ``content_offsets``), such as a generative one,
is called on whole texts and reports its own truncation, which the policy then escalates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from moderator.runtime.base import ReplyJudge, TextClassifier
from moderator.runtime.windows import WindowConfig, Windower, Windows, WindowTokenizer, pool
from topics.labels import LABEL_KEYS

#: Pooled with ``min``: a text is clean only if every window is.
_MIN_POOLED = ("clean",)


@dataclass(frozen=True, slots=True)
class Scored:
    """Pooled scores per text and where they came from.

    ``spans[t]``: for a text read in more than one window, column key → character span of the window
    that decided that column's score (empty for a one-window text). ``truncated[t]``: part of the text
    was not read (over the window cap, or cut by a model without windowing).
    """

    scores: npt.NDArray[np.float32]
    truncated: list[bool]
    spans: list[dict[str, tuple[int, int]]]
    windows: int = 0
    padded_tokens: int = 0


def windower_for(model: object, config: WindowConfig) -> Windower | None:
    """A windower over ``model``'s own tokenizer, or ``None`` when the model does not expose one."""
    encoder = getattr(model, "encoder", None)
    if isinstance(encoder, WindowTokenizer):
        return Windower(encoder, config)
    return None


def _spans(
    windows: Windows | None, window: npt.NDArray[np.int64], keys: Sequence[str]
) -> list[dict[str, tuple[int, int]]]:
    if windows is None:
        return [{} for _ in range(window.shape[0])]
    out: list[dict[str, tuple[int, int]]] = []
    for t in range(window.shape[0]):
        if windows.counts[t] <= 1:
            out.append({})
            continue
        out.append(
            {key: windows.spans[int(window[t, j])] for j, key in enumerate(keys) if key not in _MIN_POOLED}
        )
    return out


def _truncated(windows: Windows | None, row_truncated: Sequence[bool], texts: int) -> list[bool]:
    """A text is unread in part when it passed the cap, or the model cut its *last* window (a cut
    inside an earlier window is read again by the overlapping next one)."""
    if windows is None:
        return [bool(t) for t in row_truncated]
    last = np.cumsum(windows.counts) - 1
    return [windows.truncated[t] or bool(row_truncated[int(last[t])]) for t in range(texts)]


def _column_keys(model: object, width: int) -> tuple[str, ...]:
    """Names of the classifier's output columns: ``LABEL_KEYS``, or the model's own wider list."""
    if width == len(LABEL_KEYS):
        return LABEL_KEYS
    keys = tuple(getattr(model, "output_keys", ()))
    return keys if len(keys) == width else tuple(f"column_{j}" for j in range(width))


#: Scores every row of a batch: (row matrix, per-row truncated, padded tokens the model ran).
RowScorer = Callable[[list[Any]], tuple[npt.NDArray[np.float32], Sequence[bool], int]]


def score_windows(
    windower: Windower | None,
    run: RowScorer,
    texts: Sequence[str],
    keys: Sequence[str] | Callable[[int], Sequence[str]],
    prompts: Sequence[str] | None = None,
) -> Scored:
    """Split ``texts`` (with their ``prompts``, for pairs) into windows, score every window in one
    ``run`` call, pool per text. Without a windower each text (or pair) is one row, as it is.
    ``keys`` names the columns (or names them from the column count)."""
    n = len(texts)
    windows = windower.split(texts, prompts) if windower is not None else None
    rows: list[Any]
    if windows is not None:
        rows = windows.pairs() if prompts is not None else windows.rows
    else:
        rows = list(zip(prompts, texts, strict=True)) if prompts is not None else list(texts)
    probs, row_truncated, padded = run(rows)
    if callable(keys):
        keys = keys(probs.shape[1] if probs.ndim == 2 else 1)
    owner = windows.owner if windows is not None else list(range(n))
    pooled = pool(probs, owner, n, [j for j, k in enumerate(keys) if k in _MIN_POOLED])
    if windows is not None and prompts is not None:
        # Windows leave the reply room for at least half of each input, so when the model cuts a
        # pair it cuts the prompt (the context), never the reply being judged: only the cap counts.
        truncated = list(windows.truncated)
    else:
        truncated = _truncated(windows, row_truncated, n)
    return Scored(pooled.scores, truncated, _spans(windows, pooled.window, keys), len(rows), padded)


class WindowedClassifier:
    """``TextClassifier`` over windows: pooled ``LABEL_KEYS`` scores per text."""

    def __init__(self, model: TextClassifier, config: WindowConfig | None = None) -> None:
        self.model = model
        self.windower = windower_for(model, config or WindowConfig())

    def _run(self, rows: list[Any]) -> tuple[npt.NDArray[np.float32], Sequence[bool], int]:
        out = self.model.predict(rows)
        return out.probs, out.truncated, out.padded_tokens

    def score(self, texts: Sequence[str]) -> Scored:
        if not texts:
            return Scored(np.zeros((0, len(LABEL_KEYS)), np.float32), [], [])
        return score_windows(self.windower, self._run, texts, lambda width: _column_keys(self.model, width))


class WindowedJudge:
    """``ReplyJudge`` over windows of the reply, the prompt in each: pooled P(unsafe) per pair."""

    def __init__(self, model: ReplyJudge, config: WindowConfig | None = None) -> None:
        self.model = model
        self.windower = windower_for(model, config or WindowConfig())

    def _run(self, rows: list[Any]) -> tuple[npt.NDArray[np.float32], Sequence[bool], int]:
        out = self.model.predict(rows)
        return out.unsafe[:, None], out.truncated, out.padded_tokens

    def score(self, pairs: Sequence[tuple[str, str]]) -> Scored:
        prompts = [p for p, _ in pairs]
        replies = [r for _, r in pairs]
        return score_windows(self.windower, self._run, replies, ("unsafe",), prompts)


class WindowedMultitask:
    """A one-pass model with ``score_comments``/``score_replies`` returning ``.probs``, ``.truncated``
    and ``.padded_tokens`` (the multitask encoder): every column pooled, ``keys`` naming them."""

    def __init__(self, model: Any, keys: Sequence[str], config: WindowConfig | None = None) -> None:
        self.model = model
        self.keys = tuple(keys)
        self.windower = windower_for(model, config or WindowConfig())

    @staticmethod
    def _runner(fn: Callable[[Any], Any]) -> RowScorer:
        def run(rows: list[Any]) -> tuple[npt.NDArray[np.float32], Sequence[bool], int]:
            out = fn(rows)
            return out.probs, out.truncated, out.padded_tokens

        return run

    def score_comments(self, texts: Sequence[str]) -> Scored:
        return score_windows(self.windower, self._runner(self.model.score_comments), texts, self.keys)

    def score_replies(self, pairs: Sequence[tuple[str, str]]) -> Scored:
        prompts = [p for p, _ in pairs]
        replies = [r for _, r in pairs]
        return score_windows(
            self.windower, self._runner(self.model.score_replies), replies, self.keys, prompts
        )
