"""Generative hate-speech classifier (seed 002: Gemma-2 answering ``Hate Speech: <categories>``).

The model was fine-tuned to answer ``Hate Speech: `` followed by one category per line (``Women/Family``,
``Men``, ``LGBTQ+``, ``Race/Nationality``, ``Age``, ``Region``, ``Religion``, ``Other Hate Speech``)
or ``None``, then end its turn. Decoding is constrained and greedy, one *line* at a time: at each line
start every allowed line (the categories not yet emitted, ``None`` on the first line only, end-of-turn
after the first) is scored as a whole sequence by running all of them as right-padded rows on top of
the row's cached context; the best one is appended by keeping its rows of the cache. A handful of
forward passes per batch, no free-running generation, and nothing that can fail to parse.

How the ten scores are filled (``LABEL_KEYS`` order):
  * each hate category: the largest probability the model gave that line at any line start, over
    the allowed lines (so a category emitted on line 2 scores what it scored there);
  * ``clean``: the probability of ``None`` as the first line;
  * ``profanity``: 0.0 always. The model was trained without UnSmile's 악플/욕설 column, so it has no
    opinion on profanity; deployments that need it pair this model with an encoder classifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from moderator.runtime.base import ClassifierOutput
from moderator.runtime.batching import run_batched
from moderator.runtime.decoder import DecoderGraph, Past, last_positions, log_softmax
from moderator.runtime.errors import ModelLoadError
from moderator.runtime.metadata import METADATA_FILE, ModelMetadata
from moderator.runtime.options import RuntimeOptions
from moderator.runtime.prompt import PromptEncoder
from moderator.runtime.tokenize import load_tokenizer
from topics.labels import LABEL_KEYS

END = "<end>"
#: seed 002's answer lines → label keys.
UNSMILE_GEMMA_LINES: dict[str, str] = {
    "Women/Family": "women_family",
    "Men": "men",
    "LGBTQ+": "lgbtq",
    "Race/Nationality": "race_nationality",
    "Age": "age",
    "Region": "region",
    "Religion": "religion",
    "Other Hate Speech": "other_hate",
    "None": "clean",
}


@dataclass(frozen=True, slots=True)
class Generated:
    """One text's decoded answer, the label keys it names, and its ten scores."""

    answer: str
    labels: tuple[str, ...]
    scores: npt.NDArray[np.float32]


def parse_answer(answer: str, lines: dict[str, str], answer_prefix: str = "Hate Speech:") -> tuple[str, ...]:
    """Label keys named by an answer like ``"Hate Speech: Men\\nRegion\\n"``; unknown lines are ignored."""
    body = answer.split(answer_prefix, 1)[1] if answer_prefix and answer_prefix in answer else answer
    keys: list[str] = []
    for line in body.splitlines():
        key = lines.get(line.strip())
        if key is not None and key not in keys:
            keys.append(key)
    return tuple(keys)


@dataclass(frozen=True, slots=True)
class _Option:
    line: str
    key: str
    ids: list[int]


class GenerativeClassifier:
    """``TextClassifier`` over a decoder LM answering category lines; see the module doc for scores."""

    def __init__(self, directory: Path, meta: ModelMetadata, options: RuntimeOptions) -> None:
        self.meta = meta
        self.options = options
        self.model_id = meta.model_id
        self.graph = DecoderGraph(directory, meta, options)
        self.provider = self.graph.provider
        spec = self.graph.spec
        where = directory / METADATA_FILE
        tokenizer = load_tokenizer(directory, meta)
        try:
            self.prompt = PromptEncoder(
                tokenizer, spec.prompt_prefix, spec.prompt_suffix_template, meta.max_length
            )
        except ValueError as exc:
            raise ModelLoadError(where, str(exc), "raise max_length or shorten the template") from exc
        if self.prompt.fields != ("text",):
            raise ModelLoadError(
                where, f"template fields {self.prompt.fields}, need {{text}}", "fix and re-export"
            )
        self.lines = dict(spec.category_lines)
        bad = {k for k in self.lines.values() if k not in LABEL_KEYS}
        if bad or not self.lines or not spec.eos_token_ids:
            raise ModelLoadError(
                where, f"category_lines/eos_token_ids unusable (unknown keys {sorted(bad)})", "re-export"
            )
        raw = Tokenizer.from_str(tokenizer.to_str())
        raw.encode_special_tokens = True

        def ids(text: str) -> list[int]:
            return list(raw.encode(text, add_special_tokens=False).ids)

        self.first = [_Option(line, key, ids(" " + line + "\n")) for line, key in self.lines.items()]
        self.later = [
            _Option(line, key, ids(line + "\n")) for line, key in self.lines.items() if key != "clean"
        ]
        self.later.append(_Option(END, END, [spec.eos_token_ids[0]]))
        self.columns = {key: LABEL_KEYS.index(key) for key in LABEL_KEYS}
        _, prefix = self.graph.forward(self.graph.empty(1), [self.prompt.prefix_ids], keep=True)
        assert prefix is not None
        self._prefix = prefix

    def _step(
        self, past: Past, ctx: npt.NDArray[np.float32], options: list[_Option], banned: list[set[str]]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], Past]:
        """Score every option on every row: (probabilities B × K, next-token log-probs per row×option, past)."""
        rows, k = past.batch, len(options)
        fan = np.repeat(np.arange(rows), k)
        tokens = [o.ids for o in options] * rows
        logits, extended = self.graph.forward(self.graph.select(past, fan), tokens, keep=True)
        assert extended is not None
        lp = log_softmax(logits)  # (rows·k) × S × V
        flat = np.empty(rows * k, dtype=np.float64)
        for r in range(rows * k):
            seq = tokens[r]
            flat[r] = ctx[r // k, seq[0]] + sum(lp[r, j - 1, seq[j]] for j in range(1, len(seq)))
        total = flat.reshape(rows, k)
        for r, ban in enumerate(banned):
            for j, option in enumerate(options):
                if option.key in ban:
                    total[r, j] = -np.inf
        total -= total.max(axis=1, keepdims=True)
        probs = np.exp(total)
        probs /= probs.sum(axis=1, keepdims=True)
        nxt = lp[np.arange(rows * k), last_positions(tokens)]
        return probs.astype(np.float32), nxt, extended

    def generate_batch(self, suffixes: Sequence[Sequence[int]]) -> list[Generated]:
        """Constrained greedy decode for one batch of tokenised prompts."""
        n = len(suffixes)
        prefix = self.graph.select(self._prefix, [0] * n)
        logits, past = self.graph.forward(prefix, suffixes, keep=True)
        assert past is not None
        ctx = log_softmax(logits[np.arange(n), last_positions(suffixes)])
        scores = np.zeros((n, len(LABEL_KEYS)), dtype=np.float32)
        chosen: list[list[str]] = [[] for _ in range(n)]
        active = list(range(n))
        options = self.first
        for _ in range(self.graph.spec.max_new_tokens or len(self.later)):
            if not active:
                break
            banned = [{self.lines[line] for line in chosen[i]} for i in active]
            probs, nxt, extended = self._step(past, ctx, options, banned)
            k = len(options)
            keep_rows: list[int] = []
            still: list[int] = []
            for a, row in enumerate(active):
                for j, option in enumerate(options):
                    if option.key != END:
                        col = self.columns[option.key]
                        scores[row, col] = max(scores[row, col], probs[a, j])
                best = options[int(np.argmax(probs[a]))]
                if best.key in (END, "clean"):
                    continue
                chosen[row].append(best.line)
                keep_rows.append(a * k + int(np.argmax(probs[a])))
                still.append(row)
            if not still:
                break
            past = self.graph.select(extended, keep_rows)
            ctx = nxt[keep_rows]
            active = still
            options = self.later
        out = []
        for row in range(n):
            lines = chosen[row] or ["None"]
            answer = "Hate Speech: " + "\n".join(lines) + "\n"
            out.append(Generated(answer, parse_answer(answer, self.lines), scores[row]))
        return out

    def generate(self, texts: Sequence[str]) -> tuple[list[Generated], list[bool], int, int]:
        """Decode every text; returns results in input order, truncation flags and token counts."""
        suffixes, truncated = self.prompt.encode_values([{"text": t} for t in texts])
        results: list[Generated | None] = [None] * len(texts)

        def scatter(rows: list[int], generated: list[Generated]) -> None:
            for i, result in zip(rows, generated, strict=True):
                results[i] = result

        tokens, padded = run_batched(
            [len(s) for s in suffixes],
            self.options,
            self.provider,
            lambda rows: self.generate_batch([suffixes[i] for i in rows]),
            scatter,
        )
        done = [r for r in results if r is not None]
        return done, truncated, tokens, padded

    def predict(self, texts: Sequence[str]) -> ClassifierOutput:
        if not texts:
            return ClassifierOutput(np.zeros((0, len(LABEL_KEYS)), np.float32), [])
        results, truncated, tokens, padded = self.generate(texts)
        probs = np.stack([r.scores for r in results]).astype(np.float32)
        return ClassifierOutput(probs, truncated, tokens, padded)
