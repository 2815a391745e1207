"""Training and shipping of the bundled models (``python -m onnx_export.train --help``).

Modules: ``sources`` (one reader per data source, masked targets), ``templates`` (hand-written Korean
augmentation), ``perturb`` (spelling-game augmentation), ``multitask`` (the trainer), ``legacy`` (the
earlier single-task classifier/judge recipes), ``cli``.
"""

from onnx_export.train.legacy import (
    LexicalModel,
    TrainConfig,
    _train_flags,
    add_lexical_branch,
    bucketed_batches,
    train_judge,
    unsmile_reply_pairs,
)

__all__ = [
    "LexicalModel",
    "TrainConfig",
    "_train_flags",
    "add_lexical_branch",
    "bucketed_batches",
    "train_judge",
    "unsmile_reply_pairs",
]
