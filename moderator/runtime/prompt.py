"""Prompt construction for the decoder models: a cacheable prefix and a per-request suffix.

The export writes the full prompt (policy text inside the chat wrapper) split at the first field: the
prefix is tokenised once and its keys/values cached; the suffix carries ``{instruction}``/``{response}``
(judge) or ``{text}`` (classifier). Template pieces and user values are tokenised separately, which
matters twice: BPE must not merge across the cached boundary (the cached prefix has to be the exact
prefix of every full prompt), and user text is tokenised with special tokens disabled, so a comment
containing ``<|eot_id|>`` cannot close the turn and inject its own verdict.

Whitespace right before a field travels with the field value (``"User: " + text`` tokenises as
``"User:"`` + ``" text"``), which is how the BPE vocabularies of Llama-3 and Gemma split it anyway.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tokenizers import Tokenizer

FIELD = re.compile(r"\{(instruction|response|text)\}")


def split_template(full: str) -> tuple[str, str]:
    """Split ``full`` at its first field into (prefix, suffix template); spaces before it go to the suffix."""
    match = FIELD.search(full)
    if match is None:
        raise ValueError("prompt template has no {instruction}/{response}/{text} field")
    head = full[: match.start()]
    prefix = head.rstrip(" ")
    return prefix, full[len(prefix) :]


def fill(template: str, values: Mapping[str, str]) -> str:
    """Single-pass field substitution, so a value containing ``{response}`` is left alone."""
    return FIELD.sub(lambda m: values[m.group(1)], template)


@dataclass(frozen=True, slots=True)
class _Part:
    literal: list[int] | None = None
    field: str | None = None
    lead: str = ""


class PromptEncoder:
    """Turns field values into suffix token ids under a total length budget (prefix included)."""

    def __init__(self, tokenizer: Tokenizer, prefix: str, suffix_template: str, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.raw = Tokenizer.from_str(tokenizer.to_str())
        self.raw.no_truncation()
        self.raw.no_padding()
        self.raw.encode_special_tokens = True
        self.prefix_ids: list[int] = self._literal(prefix) if prefix else []
        self.max_length = max_length
        self.parts: list[_Part] = []
        pos = 0
        for match in FIELD.finditer(suffix_template):
            literal = suffix_template[pos : match.start()]
            stripped = literal.rstrip(" ")
            if stripped:
                self.parts.append(_Part(literal=self._literal(stripped)))
            self.parts.append(_Part(field=match.group(1), lead=literal[len(stripped) :]))
            pos = match.end()
        if suffix_template[pos:]:
            self.parts.append(_Part(literal=self._literal(suffix_template[pos:])))
        if not self.prefix_ids:
            raise ValueError("the prompt has no fixed text before its first field, so nothing can be cached")
        self.fields = tuple(p.field for p in self.parts if p.field is not None)
        self.fixed = len(self.prefix_ids) + sum(len(p.literal) for p in self.parts if p.literal is not None)
        if self.fixed + len(self.fields) >= max_length:
            raise ValueError(
                f"the prompt template alone takes {self.fixed} tokens, over max_length {max_length}"
            )

    def _literal(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def encode_values(self, rows: Sequence[Mapping[str, str]]) -> tuple[list[list[int]], list[bool]]:
        """Suffix ids for each row of field values, and whether a value had to be cut to fit."""
        out: list[list[int]] = []
        truncated: list[bool] = []
        budget = self.max_length - self.fixed
        for values in rows:
            pieces = {
                p.field: list(self.raw.encode(p.lead + values[p.field], add_special_tokens=False).ids)
                for p in self.parts
                if p.field is not None
            }
            cut = _fit(pieces, budget)
            ids: list[int] = []
            for part in self.parts:
                ids.extend(part.literal if part.literal is not None else cut[part.field or ""])
            out.append(ids)
            truncated.append(cut is not pieces)
        return out, truncated


def _fit(pieces: dict[str, list[int]], budget: int) -> dict[str, list[int]]:
    """Longest-first token cut so the values fit ``budget``; returns ``pieces`` itself when nothing is cut."""
    lengths = {k: len(v) for k, v in pieces.items()}
    if sum(lengths.values()) <= budget:
        return pieces
    while sum(lengths.values()) > budget:
        longest = max(lengths, key=lambda k: lengths[k])
        lengths[longest] -= 1
    return {k: v[: max(lengths[k], 1)] for k, v in pieces.items()}
