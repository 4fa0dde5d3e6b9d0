#!/usr/bin/env bash
# Every score docs/RESULTS.md reports for the bundled default model, in one run (about 4 minutes on 2 cores):
#
#     scripts/score_default_model.sh [FP32_RUN_MODEL]
#
# FP32_RUN_MODEL (optional) is the float32 training run the bundle came from (e.g.
# runs/mobrecon-ghost-sil-s15/model); it is scored beside the float16 bundle on the 300-image curve set, to show
# that float16 loses nothing. The held-out sets are rendered first if they are missing. Each step's printout is
# kept in outputs/final/logs/<step>.txt; the eval folders are outputs/final/eval_*. The learning curve is not
# here: it needs the run's checkpoints (scripts/learning_curve.py). Paths below are the repository's, wherever it
# is called from.
set -euo pipefail

FP32=${1:+$(realpath -m "$1")}   # before the cd: a relative path is the caller's
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${BIN:-.venv/bin}
MODEL=handrecon/assets/models/mobrecon-ghost-sil-synth
OUT=outputs/final
LOGS=$OUT/logs

if [[ -n "$FP32" && ! -f "$FP32.safetensors" ]]; then
    echo "score_default_model.sh: FP32_RUN_MODEL '$FP32' has no $FP32.safetensors" >&2
    exit 2
fi
mkdir -p "$LOGS"

step() {  # step NAME COMMAND...: run a command, show and keep its printout
    local name=$1
    shift
    echo "== $name: $*"
    "$@" 2>&1 | tee "$LOGS/$name.txt"
}

render() {  # render FOLDER NUM [EXTRA...]: the held-out synthetic set of seed 7, unless it is there
    local folder=$1 num=$2
    shift 2
    if [[ ! -f "$folder/evaluation_meta.json" ]]; then
        step "synth_$(basename "$folder")" "$BIN/handrecon" synth "$folder" --num "$num" --split evaluation \
            --seed 7 --size 256 --workers 1 "$@"
    fi
}

render data/synth-eval-s7 1000
render data/synth-eval-s7-full 1000 --mask full
render data/synth-eval-s7-300 300

# The held-out table, the root table and the per-image scores (visible-hand masks, as the set ships).
step eval "$BIN/handrecon" eval "$MODEL" --data data/synth-eval-s7 --crop box --crop-scale 1.4 --root-table \
    --quiet --out "$OUT/eval_bundled"
# The same images with full-hand masks: the IoU the silhouette head is trained for, and pred.json for below.
step eval_full "$BIN/handrecon" eval "$MODEL" --data data/synth-eval-s7-full --crop box --crop-scale 1.4 \
    --quiet --out "$OUT/eval_bundled_full"
# The learning curve's 300 images with the labelled root: float16 bundle against its float32 run.
step eval_300_fp16 "$BIN/handrecon" eval "$MODEL" --data data/synth-eval-s7-300 --crop box --crop-scale 1.4 \
    --root gt --quiet --out "$OUT/eval_300_fp16"
if [[ -n "$FP32" ]]; then
    step eval_300_fp32 "$BIN/handrecon" eval "$FP32" --data data/synth-eval-s7-300 --crop box \
        --crop-scale 1.4 --root gt --quiet --out "$OUT/eval_300_fp32"
fi
step breakdown "$BIN/python" scripts/error_breakdown.py "$OUT/eval_bundled/per_sample.csv" \
    data/synth-eval-s7/evaluation_meta.json
step breakdown_root "$BIN/python" scripts/error_breakdown.py "$OUT/eval_bundled/per_sample.csv" \
    data/synth-eval-s7/evaluation_meta.json --column root_error_mm
step bones "$BIN/python" scripts/bone_lengths.py "$OUT/eval_bundled_full/pred.json" data/synth-eval-s7-full
step root_oracle_predicted_size "$BIN/python" scripts/root_oracle.py data/synth-eval-s7-full --size predicted \
    --pred "$OUT/eval_bundled_full/pred.json"
step demo "$BIN/handrecon" demo --quiet
echo "score_default_model.sh: printouts in $LOGS/, eval folders in $OUT/"
