"""Training and shipping of the bundled models (``python -m onnx_export.train --help``).

Modules: ``sources`` (one reader per data source, masked targets), ``templates`` (hand-written Korean
augmentation), ``perturb`` (spelling-game augmentation), ``warmstart``, ``multitask`` (the shared-backbone
trainer), ``ship_multitask`` (export, calibration, report, card), ``report`` (the dev report that
``moderator eval --sources`` reproduces), ``lexical`` (the hashed n-gram branch in the graph), and the
earlier single-task recipes: ``single_task`` (classifier/judge trainers), ``ship``, ``cards``,
``legacy_cli``; ``cli`` dispatches.
"""
