#!/usr/bin/env bash
# GPU path check: mixed-precision training steps of every stage through the real Lightning entry point,
# and throughput figures, on the `small` synthetic world. Run from the repository root on a CUDA machine:
#
#   bash experiments/gpu_check.sh [OUT_DIR]        # default outputs/gpu_check
#
# Writes OUT_DIR/gpu_check.log (everything printed), speed_<precision>.json (Siamese training pairs/s of
# the paper-size net in fp32 / bf16 / fp16 autocast), runs/<stage>/gpu-<time>/summary.json (each stage's last
# metrics, perf/samples_per_s and perf/max_memory_gib among them) and propagation.json / .md / .png.
# STEPS (default 60) sets the optimiser steps per stage, PRECISION (default bf16-mixed) Lightning's precision.
set -uo pipefail
PY=${PY:-python3}
OUT_DIR=${1:-outputs/gpu_check}
STEPS=${STEPS:-60}
PRECISION=${PRECISION:-bf16-mixed}
RID=gpu-$(date +%Y%m%d-%H%M%S)   # run folders are never reused: a new id per check
mkdir -p "$OUT_DIR"
export CORRTRACK_OUTPUTS="$OUT_DIR/runs" CORRTRACK_SYNTH_ROOT="$OUT_DIR/synth" PYTHONUNBUFFERED=1
exec > >(tee "$OUT_DIR/gpu_check.log") 2>&1
status=0
step() {  # step NAME COMMAND...: run, time and report one part; a failure is reported and the rest goes on
    local name=$1; shift
    echo; echo "=== $name: $*"
    local t0=$SECONDS
    if "$@"; then echo "=== $name: ok ($((SECONDS - t0)) s)"; else echo "=== $name: FAILED ($((SECONDS - t0)) s)"; status=1; fi
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
$PY -c 'import torch, pytorch_lightning as pl; print("torch", torch.__version__, "lightning", pl.__version__,
"cuda", torch.version.cuda, torch.cuda.get_device_name(0))' || exit 1

step world $PY -m corrtrack.synth --out "$CORRTRACK_SYNTH_ROOT/small-seed0" --preset small --seed 0 --workers 8 --quiet

for prec in 32 bf16 16; do
    step "speed-$prec" $PY -m corrtrack.bench speed --device cuda --precision $prec --variant paper --width 1.0 \
        --input-size 256 --batch-size 32 --train-persons 8 --steps 20 --out "$OUT_DIR/speed_$prec.json"
done

COMMON=(data.synth.preset=small data.num_workers=8 data.pin_memory=true trainer.accelerator=gpu
        trainer.precision=$PRECISION trainer.max_steps=$STEPS trainer.max_epochs=-1 trainer.enable_progress_bar=false
        logger.wandb=false run_id=$RID)
step siamese $PY -m experiments.run siamese paper "${COMMON[@]}"
step refine  $PY -m experiments.run refine paper "${COMMON[@]}" model.siamese_ckpt=latest
step pose    $PY -m experiments.run pose paper "${COMMON[@]}"
step propagation $PY -m corrtrack.bench propagation --data "$CORRTRACK_SYNTH_ROOT/small-seed0" \
    --ckpt "$CORRTRACK_OUTPUTS/refine/$RID" --device cuda --out "$OUT_DIR/propagation.json"

echo; echo "=== summary"
for s in siamese refine pose; do
    f="$CORRTRACK_OUTPUTS/$s/$RID/summary.json"
    [ -f "$f" ] && $PY -c "import json, sys; d = json.load(open(sys.argv[1])); m = d['final_metrics'];
print(f\"{sys.argv[2]:8s} steps {d['global_step']:4d}  samples/s {m.get('perf/samples_per_s', float('nan')):8.1f}  \"
      f\"peak GPU memory {m.get('perf/max_memory_gib', float('nan')):.2f} GiB\")" "$f" "$s"
done
exit $status
