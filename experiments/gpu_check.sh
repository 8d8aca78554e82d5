#!/usr/bin/env bash
# GPU efficiency check: one prepared script for a machine with a CUDA GPU, within a 15-minute budget.
#
#   bash experiments/gpu_check.sh [--cpu-smoke] [OUT_DIR]     # OUT_DIR default: $OUT, else outputs/gpu_check
#
# Steps (each under `timeout`, capped by what is left of BUDGET seconds, default 780; a failed or timed-out
# step is recorded and the rest goes on):
#   env         nvidia-smi, torch / CUDA / cuDNN versions, bf16 support, cores      -> env.json
#   tt_bf16     training throughput + model FLOPs + MFU of every stage at the paper presets' sizes,
#               synthetic batches already on the GPU, bf16 autocast, channels-last  -> tt_bf16.json
#   tt_fp32     the same, Siamese and pose, fp32                                    -> tt_fp32.json
#   tt_nchw     Siamese and pose, bf16, NCHW instead of channels-last               -> tt_nchw.json
#   tt_compile  Siamese, bf16, torch.compile (compilation timed apart)               -> tt_compile.json
#   world       the `small` synthetic world (skipped when already there)
#   loader      the Siamese pair pipeline alone (datamodules.pairs), paper preset: pairs/s with the
#               workers `data.num_workers=auto` gives                               -> loader.json
#   e2e         `experiments.run siamese paper` for STEPS steps: real loader, Lightning, bf16 (auto)
#               -> runs/siamese/<id>/summary.json (perf/samples_per_s)
#   summary     summary.json + summary.md: samples/s, TFLOP/s and MFU per stage and setting, and whether
#               the loader keeps up (loader alone and end to end vs synthetic in-memory batches)
# --cpu-smoke: the same steps on the CPU at tiny sizes (64 px, width 0.25, batch 2, 1 step; the `tiny`
# world; timeouts x SLACK=10, budget 2 h), to check the script itself without a GPU (tests/test_perf.py).
set -uo pipefail
SMOKE=0
if [ "${1:-}" = "--cpu-smoke" ]; then SMOKE=1; shift; fi
OUT_DIR=${1:-${OUT:-outputs/gpu_check}}
if [ -z "${PY:-}" ]; then PY=python3; [ -x .venv/bin/python ] && PY=.venv/bin/python; fi
BUDGET=${BUDGET:-$([ $SMOKE = 1 ] && echo 7200 || echo 780)}
SLACK=${SLACK:-$([ $SMOKE = 1 ] && echo 10 || echo 1)}   # timeout multiplier: a shared CPU is slow to start torch
STEPS=${STEPS:-60}
START=$SECONDS
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
export CORRTRACK_OUTPUTS="$OUT_DIR/runs" PYTHONUNBUFFERED=1 WANDB_MODE=offline WANDB_SILENT=true
export CORRTRACK_SYNTH_ROOT=${CORRTRACK_SYNTH_ROOT:-$OUT_DIR/synth}
RID=gpu-$(date +%Y%m%d-%H%M%S)
: > "$OUT_DIR/steps.tsv"
exec > >(tee "$OUT_DIR/gpu_check.log") 2>&1

step() {  # step NAME SECONDS COMMAND...: run under a timeout capped by the budget left; record the status
    local name=$1 limit=$(($2 * SLACK)); shift 2
    local left=$((BUDGET - (SECONDS - START)))
    if [ "$left" -lt 20 ]; then echo "=== $name: skipped (budget spent)"; printf '%s\tskipped\t0\n' "$name" >> "$OUT_DIR/steps.tsv"; return; fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo; echo "=== $name (timeout ${limit} s): $*"
    local t0=$SECONDS rc
    timeout --signal=TERM --kill-after=10 "$limit" "$@"; rc=$?
    local st=ok; [ $rc -eq 124 ] && st=timeout; [ $rc -ne 0 ] && [ $rc -ne 124 ] && st="failed($rc)"
    echo "=== $name: $st ($((SECONDS - t0)) s)"
    printf '%s\t%s\t%s\n' "$name" "$st" "$((SECONDS - t0))" >> "$OUT_DIR/steps.tsv"
}

if [ $SMOKE = 1 ]; then
    DEV=cpu PRESET=${SYNTH_PRESET:-tiny}
    TT=(--device cpu --input-size 64 --width 0.25 --batch-size 2 --steps 1 --warmup 1 --threads 1)
    ALL=(--stage siamese --stage refine); TWO=(--stage siamese)
    RUN=(data.synth.preset=$PRESET data.input_size=64 model.width=0.25 data.batch_size=2 data.num_workers=0
         trainer.accelerator=cpu cpu_threads=1 trainer.max_steps=6 trainer.limit_train_batches=6
         trainer.limit_val_batches=0)   # 6 steps: the Throughput callback skips the first 3
    LOADER=(data.synth.preset=$PRESET data.input_size=64 data.batch_size=2 --workers 0 --batches 2)
else
    DEV=cuda PRESET=small
    TT=(--device cuda --steps 20 --warmup 3)
    ALL=(--stage siamese --stage refine --stage pose --stage reid); TWO=(--stage siamese --stage pose)
    RUN=(trainer.max_steps=$STEPS trainer.max_epochs=-1 trainer.limit_val_batches=0 trainer.num_sanity_val_steps=0)
    LOADER=(data.num_workers=auto --batches 40)
fi

step env 60 $PY -c '
import json, os, platform, sys, torch
d = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
     "cudnn": torch.backends.cudnn.version(), "cores": len(os.sched_getaffinity(0)),
     "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
     "bf16": torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
     "gpu_memory_gib": torch.cuda.get_device_properties(0).total_memory / 2**30 if torch.cuda.is_available() else None}
print(json.dumps(d, indent=1)); json.dump(d, open(sys.argv[1], "w"), indent=1)' "$OUT_DIR/env.json"
[ $SMOKE = 0 ] && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv

B=(-m corrtrack.bench train-throughput "${TT[@]}")
if [ $SMOKE = 1 ]; then P16=32; else P16=bf16; fi   # bf16 autocast on CPU is slow and says nothing here
step tt_bf16 240 $PY "${B[@]}" "${ALL[@]}" --precision $P16 --out "$OUT_DIR/tt_bf16.json"
step tt_fp32 120 $PY "${B[@]}" "${TWO[@]}" --precision 32 --out "$OUT_DIR/tt_fp32.json"
step tt_nchw 90 $PY "${B[@]}" "${TWO[@]}" --precision $P16 --no-channels-last --out "$OUT_DIR/tt_nchw.json"
[ $SMOKE = 0 ] && step tt_compile 240 $PY "${B[@]}" --stage siamese --precision bf16 --compile --out "$OUT_DIR/tt_compile.json"

WORLD="$CORRTRACK_SYNTH_ROOT/$PRESET-seed0"
step world 180 $PY -m corrtrack.synth --out "$WORLD" --preset $PRESET --seed 0 --workers "$(nproc)" --quiet
step loader 120 $PY -c '
import json, sys, time
from datamodules.pairs import benchmark_pipeline
from datamodules.workers import loader_settings
from experiments.config import load_config
smoke = sys.argv[2] == "1"
args = sys.argv[3:]
over = [a for a in args if "=" in a]
workers = int(args[args.index("--workers") + 1]) if "--workers" in args else None
batches = int(args[args.index("--batches") + 1])
cfg = load_config("siamese", [] if smoke else ["paper"], over)
nw = workers if workers is not None else loader_settings(cfg.data)[0]
rate = benchmark_pipeline(cfg, num_workers=nw, batches=batches)
d = {"pairs_per_s": rate, "num_workers": nw, "batch_size": int(cfg.data.batch_size), "input_size": int(cfg.data.input_size)}
print(f"data pipeline alone: {rate:.1f} pairs/s with {nw} workers"); json.dump(d, open(sys.argv[1], "w"), indent=1)
' "$OUT_DIR/loader.json" $SMOKE "${LOADER[@]}"
if [ $SMOKE = 1 ]; then E2E=(siamese debug); else E2E=(siamese paper); fi
step e2e 300 $PY -m experiments.run "${E2E[@]}" "${RUN[@]}" logger.wandb=false trainer.enable_progress_bar=false \
    track_eval.enabled=false figures.every_n_validations=0 run_id=$RID
step summary 60 $PY -m experiments.gpu_summary "$OUT_DIR" --run "$CORRTRACK_OUTPUTS/siamese/$RID"
echo; cat "$OUT_DIR/summary.md" 2>/dev/null
echo "=== total $((SECONDS - START)) s of a ${BUDGET} s budget; results in $OUT_DIR"
! grep -qv $'\tok\t' "$OUT_DIR/steps.tsv"
