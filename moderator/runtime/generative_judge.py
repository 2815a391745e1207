"""Llama-Guard-style safety judge (KoSafeGuard) with an exact policy-prefix KV cache.

The judge's prompt is ~550 tokens of fixed policy followed by a short (prompt, reply) conversation.
The policy prefix runs once when the model loads; every batch of suffixes reuses its keys/values,
expanded to the batch and kept on the device. P(unsafe) comes from the first generated token only:
a two-way softmax over the ``safe`` and ``unsafe`` first-token logits (log-sum-exp when a verdict has
several first tokens). No decode loop. ``prefix_cache=False`` runs the whole prompt instead; it exists
for benchmarks and for the tests that prove both paths agree.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from moderator.runtime.base import JudgeOutput
from moderator.runtime.batching import run_batched
from moderator.runtime.decoder import DecoderGraph, Past, last_positions
from moderator.runtime.errors import ModelLoadError
from moderator.runtime.metadata import METADATA_FILE, ModelMetadata
from moderator.runtime.options import RuntimeOptions
from moderator.runtime.prompt import PromptEncoder
from moderator.runtime.tokenize import load_tokenizer

#: Expanded prefix caches kept per batch size on CUDA (full batches and the last, shorter one).
_EXPANDED_KEEP = 2


class GenerativeJudge:
    """``ReplyJudge`` over a decoder LM scored on its first answer token."""

    def __init__(
        self, directory: Path, meta: ModelMetadata, options: RuntimeOptions, *, prefix_cache: bool = True
    ) -> None:
        self.meta = meta
        self.options = options
        self.model_id = meta.model_id
        self.prefix_cache = prefix_cache
        self.graph = DecoderGraph(directory, meta, options)
        self.provider = self.graph.provider
        spec = self.graph.spec
        where = directory / METADATA_FILE
        try:
            self.prompt = PromptEncoder(
                load_tokenizer(directory, meta),
                spec.prompt_prefix,
                spec.prompt_suffix_template,
                meta.max_length,
            )
        except ValueError as exc:
            raise ModelLoadError(where, str(exc), "raise max_length or shorten the template") from exc
        if set(self.prompt.fields) != {"instruction", "response"}:
            raise ModelLoadError(
                where,
                f"judge template fields are {self.prompt.fields}, need {{instruction}} and {{response}}",
                "fix the template file and re-export",
            )
        self.safe_rows, self.unsafe_rows = self._verdict_rows(where)
        self._expanded: OrderedDict[int, Past] = OrderedDict()
        self._lock = threading.Lock()
        logits, past = self.graph.forward(self.graph.empty(1), [self.prompt.prefix_ids], keep=True)
        rows = len(spec.logit_rows) or meta.vocab_size
        if rows and logits.shape[-1] != rows:
            raise ModelLoadError(
                directory / "model.onnx",
                f"the graph returns {logits.shape[-1]} logit rows, metadata.json expects {rows}",
                "re-export so model.onnx and metadata.json come from the same export",
            )
        self._prefix: Past | None = past if prefix_cache else None
        self.prefix_tokens = len(self.prompt.prefix_ids)

    def _verdict_rows(self, where: Path) -> tuple[list[int], list[int]]:
        """Logit rows holding the safe/unsafe first tokens (pruned heads keep only a few rows)."""
        spec = self.graph.spec
        ids = spec.verdict_token_ids
        if not ids.get("safe") or not ids.get("unsafe"):
            raise ModelLoadError(where, "verdict_token_ids lacks 'safe'/'unsafe'", "re-export the judge")
        if not spec.logit_rows:
            return list(ids["safe"]), list(ids["unsafe"])
        rows = {token: row for row, token in enumerate(spec.logit_rows)}
        missing = [t for t in (*ids["safe"], *ids["unsafe"]) if t not in rows]
        if missing:
            raise ModelLoadError(where, f"pruned head lacks verdict tokens {missing}", "re-export the judge")
        return [rows[t] for t in ids["safe"]], [rows[t] for t in ids["unsafe"]]

    def _prefix_for(self, batch: int) -> Past:
        """The prefix cache repeated ``batch`` times, built once per batch size and reused.

        On CPU one copy at the largest batch size serves every smaller batch as a leading-rows view
        (no copy); on CUDA device buffers cannot be sliced, so the last two sizes are kept.
        """
        if self._prefix is None:
            raise RuntimeError("prefix cache disabled")
        with self._lock:
            if self.provider == "cpu":
                have = next(iter(self._expanded.values()), None)
                if have is None or have.batch < batch:
                    self._expanded.clear()
                    have = self.graph.select(self._prefix, [0] * batch)
                    self._expanded[batch] = have
                return Past([np.asarray(v)[:batch] for v in have.kv], have.mask[:batch])
            past = self._expanded.get(batch)
            if past is None:
                past = self.graph.on_device(self.graph.select(self._prefix, [0] * batch))
                self._expanded[batch] = past
                while len(self._expanded) > _EXPANDED_KEEP:
                    self._expanded.popitem(last=False)
            else:
                self._expanded.move_to_end(batch)
            return past

    def encode_pre(self, pairs: Sequence[tuple[str, str]]) -> tuple[list[list[int]], list[bool]]:
        return self.prompt.encode_values([{"instruction": p, "response": r} for p, r in pairs])

    def encode_core(self, suffixes: Sequence[Sequence[int]]) -> npt.NDArray[np.float32]:
        """Verdict-token logits at each row's last real position: ``B × (safe + unsafe)``."""
        if self.prefix_cache:
            rows: Sequence[Sequence[int]] = suffixes
            logits, _ = self.graph.forward(self._prefix_for(len(rows)), rows)
        else:
            rows = [[*self.prompt.prefix_ids, *s] for s in suffixes]
            logits, _ = self.graph.forward(self.graph.empty(len(rows)), rows)
        last = logits[np.arange(len(rows)), last_positions(rows)]
        return last[:, [*self.safe_rows, *self.unsafe_rows]]

    def encode_post(self, verdict_logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """P(unsafe) = softmax over the verdict first tokens, unsafe side summed."""
        n = len(self.safe_rows)
        x = verdict_logits.astype(np.float64)
        top = x.max(axis=1, keepdims=True)
        safe = np.log(np.exp(x[:, :n] - top).sum(axis=1))
        unsafe = np.log(np.exp(x[:, n:] - top).sum(axis=1))
        return (1.0 / (1.0 + np.exp(safe - unsafe))).astype(np.float32)

    def predict(self, pairs: Sequence[tuple[str, str]]) -> JudgeOutput:
        if not pairs:
            return JudgeOutput(np.zeros((0,), np.float32), [])
        suffixes, truncated = self.encode_pre(pairs)
        extra = 0 if self.prefix_cache else self.prefix_tokens
        unsafe = np.zeros(len(pairs), dtype=np.float32)

        def scatter(rows: list[int], probs: npt.NDArray[np.float32]) -> None:
            unsafe[rows] = probs

        tokens, padded = run_batched(
            [len(s) + extra for s in suffixes],
            self.options,
            self.provider,
            lambda rows: self.encode_post(self.encode_core([suffixes[i] for i in rows])),
            scatter,
        )
        return JudgeOutput(unsafe, truncated, tokens, padded)
