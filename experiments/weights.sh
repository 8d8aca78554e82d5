#!/usr/bin/env bash
# `make weights`: retrain the weights that ship in weights/ from scratch with the `cpu` presets and export
# them (weights only) with weights/MANIFEST.json (command, commit, run id, metrics, sha256).
# Every stage trains for its preset's full epoch count (trainer.max_time=null), so the result does not
# depend on how fast or busy the machine is; seeds are the presets' (seed 0, synthetic worlds of seed 0).
# The pose weights are also scored on the `hard` world's val videos with GT boxes (COCO keypoint AP,
# PoseTrack layout), the figure the manifest states as `hard_val_ap_gt_boxes`.
# Usage: bash experiments/weights.sh [RUN_ID]   (default: weights-<timestamp>; outputs/<stage>/<RUN_ID>/)
#        HIRES_CYCLES=N bash experiments/weights.sh   (cycles of the pose net's second phase; default below)
#        DRY_RUN=1 bash experiments/weights.sh [RUN_ID]   (print the commands, run nothing)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
ID=${1:-weights-$(date +%Y%m%d-%H%M%S)}
HIRES_CYCLES=${HIRES_CYCLES:-4}
[[ "$HIRES_CYCLES" =~ ^[0-9]+$ ]] || { echo "error: HIRES_CYCLES must be a whole number, not '$HIRES_CYCLES'" >&2; exit 2; }
OUT=${CORRTRACK_OUTPUTS:-outputs}
COMMON=(data.coco_root=synth data.posetrack_root=synth trainer.max_time=null trainer.enable_progress_bar=false)

run() { echo "+ $*" >&2; [[ -n "${DRY_RUN:-}" ]] || "$@"; }
# pose: `finetune cpu` trains from scratch on the hard world's PoseTrack videos (a COCO `pose cpu` stage
# first did not pay for its time there: docs/pose_estimator.md), then `finetune cpu-hires` continues it
run "$PY" -m experiments.run finetune cpu "${COMMON[@]}" run_id="$ID"
# second phase: HIRES_CYCLES runs of `finetune cpu-hires` on 256x192 crops, each continuing the previous
# run's best checkpoint (docs/pose_estimator.md, r4 onwards)
prev="$OUT/finetune/$ID"
for k in $(seq 1 "$HIRES_CYCLES"); do
    run "$PY" -m experiments.run finetune cpu-hires "${COMMON[@]}" model.init_ckpt="$prev" run_id="$ID-hires$k"
    prev="$OUT/finetune/$ID-hires$k"
done
# the tracking evaluation during training is a monitor, not part of the recipe (it would need the very
# weights being made): off for the correspondence stages here
run "$PY" -m experiments.run siamese cpu "${COMMON[@]}" track_eval.enabled=false run_id="$ID"
run "$PY" -m experiments.run refine cpu "${COMMON[@]}" track_eval.enabled=false model.siamese_ckpt="$OUT/siamese/$ID" \
    run_id="$ID"
run "$PY" -m experiments.run reid cpu "${COMMON[@]}" run_id="$ID"

if [[ -n "${DRY_RUN:-}" ]]; then
    run "$PY" -m experiments.stages.pose "<best checkpoint of $prev>" data.synth.preset=hard
    ap="<its ap>"
else
    pose_ckpt=$("$PY" -c "from corrtrack import checkpoints; print(checkpoints.resolve('$prev'))")
    ap=$(run "$PY" -m experiments.stages.pose "$pose_ckpt" data.synth.preset=hard | tail -n 1 \
         | "$PY" -c "import json, sys; print(json.load(sys.stdin)['ap'])")
fi
run "$PY" -m corrtrack.weights export --pose "$prev" --correspondence "$OUT/refine/$ID" \
    --reid "$OUT/reid/$ID" --metric "pose:hard_val_ap_gt_boxes=$ap" \
    --command "make weights (bash experiments/weights.sh $ID)"
run "$PY" -m corrtrack.weights verify
