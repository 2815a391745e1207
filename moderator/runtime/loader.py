"""Open an exported model directory as the pipeline's ``TextClassifier`` or ``ReplyJudge``.

``metadata.json`` names the kind; ``KINDS`` maps each kind to its role and implementation (imported
only when used, so a worker without a generative model never imports the decoder code). A new model
kind is one entry here plus its class (tokenize → run → decode over ``runtime.batching.run_batched``).
Everything that can be wrong with a directory (missing, corrupt, wrong kind, labels that do not
match) surfaces here as a ``ModelLoadError`` naming the file and the fix.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from moderator.runtime.base import ReplyJudge, TextClassifier
from moderator.runtime.errors import ModelLoadError
from moderator.runtime.metadata import METADATA_FILE, read_metadata
from moderator.runtime.options import RuntimeOptions

Role = Literal["classifier", "judge"]


@dataclass(frozen=True, slots=True)
class KindEntry:
    role: Role
    #: ``module:Class``, imported on first use
    implementation: str

    def build(self, path: Path, meta: Any, options: RuntimeOptions) -> Any:
        module, _, name = self.implementation.partition(":")
        return getattr(importlib.import_module(module), name)(path, meta, options)


KINDS: dict[str, KindEntry] = {
    "encoder-classifier": KindEntry("classifier", "moderator.runtime.encoder:EncoderClassifier"),
    "generative-classifier": KindEntry(
        "classifier", "moderator.runtime.generative_classifier:GenerativeClassifier"
    ),
    "encoder-pair-judge": KindEntry("judge", "moderator.runtime.encoder:EncoderPairJudge"),
    "generative-judge": KindEntry("judge", "moderator.runtime.generative_judge:GenerativeJudge"),
}


def _kinds(role: Role) -> list[str]:
    return [name for name, kind in KINDS.items() if kind.role == role]


def _load(path: Path, options: RuntimeOptions, role: Role) -> Any:
    path = Path(path)
    meta = read_metadata(path)
    kind = KINDS.get(meta.kind)
    if kind is None or kind.role != role:
        other: Role = "judge" if role == "classifier" else "classifier"
        what = "a reply judge" if role == "judge" else "a classifier"
        raise ModelLoadError(
            path / METADATA_FILE,
            f"this is a {meta.kind}, not {what}",
            f"point the {role} path at an {' or '.join(_kinds(role))} export "
            f"(and the {other} path at this one)",
        )
    return kind.build(path, meta, options)


def load_classifier(path: Path, options: RuntimeOptions) -> TextClassifier:
    """Load an ``encoder-classifier`` or ``generative-classifier`` directory."""
    model: TextClassifier = _load(path, options, "classifier")
    return model


def load_judge(path: Path, options: RuntimeOptions) -> ReplyJudge:
    """Load an ``encoder-pair-judge`` or ``generative-judge`` directory."""
    model: ReplyJudge = _load(path, options, "judge")
    return model
