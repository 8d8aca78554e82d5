#!/bin/bash
# The body that every training job file of experiments/slurm/ runs (not submitted by itself):
#
#   bash experiments/slurm/launch.sh CLUSTER_PRESET STAGE [PRESET ...] [key=value ...]
#
# Starts one training process per task of the job with `srun` (one task per GPU; on CPU nodes one task per
# DDP rank): `python -m experiments.run STAGE [PRESET ...] CLUSTER_PRESET [key=value ...]` with
# trainer.devices / trainer.num_nodes taken from the job's shape. Lightning reads SLURM's environment
# (ranks, master address and port). The run folder is <output_root>/<stage>/slurm-<job id>/; a requeued
# job (same id) finds it and resumes from its newest checkpoint (docs/cluster.md).
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:?launch.sh runs inside a SLURM job: sbatch experiments/slurm/<file>.sbatch ...}"
CLUSTER_PRESET=${1:?usage: launch.sh CLUSTER_PRESET STAGE [PRESET ...] [key=value ...]}
STAGE=${2:?usage: sbatch experiments/slurm/<file>.sbatch [STAGE] [PRESET ...] [key=value ...]}
shift 2

JOB=${SLURM_ARRAY_JOB_ID:+${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}}
JOB=${JOB:-$SLURM_JOB_ID}
NODES=${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-1}}
if [ -n "${SLURM_NTASKS_PER_NODE:-}" ]; then
    PER_NODE=${SLURM_NTASKS_PER_NODE%%(*}
else
    PER_NODE=$(( ${SLURM_NTASKS:-1} / NODES ))
fi
# one header per start of the job: the log is appended (--open-mode=append), a requeue adds a section
echo "=== $(date '+%F %T') job $JOB start $(( ${SLURM_RESTART_COUNT:-0} + 1 )) (SLURM_RESTART_COUNT=${SLURM_RESTART_COUNT:-0})" \
     "on ${SLURM_JOB_NODELIST:-?}: $NODES node(s) x $PER_NODE task(s), $STAGE $* $CLUSTER_PRESET"

PY=${CORRTRACK_PYTHON:-.venv/bin/python}
[ -x "$PY" ] || make venv
export PYTHONUNBUFFERED=1
rc=0
srun --kill-on-bad-exit=1 "$PY" -m experiments.run "$STAGE" "$@" "$CLUSTER_PRESET" \
    trainer.devices="$PER_NODE" trainer.num_nodes="$NODES" || rc=$?
echo "=== $(date '+%F %T') job $JOB start $(( ${SLURM_RESTART_COUNT:-0} + 1 )) ended: exit status $rc"
exit $rc
