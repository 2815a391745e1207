"""Open an exported model directory as the pipeline's ``TextClassifier`` or ``ReplyJudge``.

``metadata.json`` names the kind; the loader picks the implementation. Everything that can be wrong
with a directory (missing, corrupt, wrong kind, labels that do not match) surfaces here as a
``ModelLoadError`` naming the file and the fix.
"""

from __future__ import annotations

from pathlib import Path

from moderator.runtime.base import ReplyJudge, TextClassifier
from moderator.runtime.errors import ModelLoadError
from moderator.runtime.metadata import METADATA_FILE, read_metadata
from moderator.runtime.options import RuntimeOptions


def load_classifier(path: Path, options: RuntimeOptions) -> TextClassifier:
    """Load an ``encoder-classifier``, ``generative-classifier`` or ``encoder-multitask`` directory."""
    path = Path(path)
    meta = read_metadata(path)
    if meta.kind == "encoder-classifier":
        from moderator.runtime.encoder import EncoderClassifier

        return EncoderClassifier(path, meta, options)
    if meta.kind == "generative-classifier":
        from moderator.runtime.generative_classifier import GenerativeClassifier

        return GenerativeClassifier(path, meta, options)
    if meta.kind == "encoder-multitask":
        from moderator.runtime.multitask import open_multitask

        return open_multitask(path, meta, options).classifier
    raise ModelLoadError(
        path / METADATA_FILE,
        f"this is a {meta.kind}, not a classifier",
        "point the classifier path at an encoder-classifier or generative-classifier export "
        "(and the judge path at this one)",
    )


def load_judge(path: Path, options: RuntimeOptions) -> ReplyJudge:
    """Load an ``encoder-pair-judge``, ``generative-judge`` or ``encoder-multitask`` directory."""
    path = Path(path)
    meta = read_metadata(path)
    if meta.kind == "encoder-pair-judge":
        from moderator.runtime.encoder import EncoderPairJudge

        return EncoderPairJudge(path, meta, options)
    if meta.kind == "generative-judge":
        from moderator.runtime.generative_judge import GenerativeJudge

        return GenerativeJudge(path, meta, options)
    if meta.kind == "encoder-multitask":
        from moderator.runtime.multitask import open_multitask

        return open_multitask(path, meta, options).judge
    raise ModelLoadError(
        path / METADATA_FILE,
        f"this is a {meta.kind}, not a reply judge",
        "point the judge path at an encoder-pair-judge or generative-judge export "
        "(and the classifier path at this one)",
    )
