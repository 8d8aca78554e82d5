# corrtrack — every target creates .venv from setup.cfg on first use (and again when setup.cfg changes).
# Training targets pass ARGS="key=value ..." through as config overrides and PRESET as the preset(s).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-setup.cfg
# OpenMP threads sleep instead of spinning while they wait: on a shared or busy machine spinning threads
# slow torch several-fold (make demo beside one other job: 6 min 39 s spinning, 2 min 09 s passive).
# A value set in the environment wins.
export OMP_WAIT_POLICY ?= PASSIVE

PRESET ?= cpu
ARGS ?=
DATA ?= synth
SYNTH_PRESET ?= small
SEED ?= 0
COCO_ROOT ?=
POSETRACK_ROOT ?=
SIAMESE_CKPT ?= latest
POSE_CKPT ?= latest
REFINE_CKPT ?= latest
PYTEST_ARGS ?=
WEIGHTS_ID ?=

# DATA=synth (default): the built-in world; DATA=coco / DATA=posetrack: real data at COCO_ROOT / POSETRACK_ROOT.
ifeq ($(DATA),synth)
DATA_ARGS := data.coco_root=synth data.posetrack_root=synth
else ifeq ($(DATA),coco)
DATA_ARGS := data.coco_root=$(COCO_ROOT) data.train_format=coco $(if $(POSETRACK_ROOT),data.posetrack_root=$(POSETRACK_ROOT))
else ifeq ($(DATA),posetrack)
DATA_ARGS := data.posetrack_root=$(POSETRACK_ROOT) data.train_format=posetrack $(if $(COCO_ROOT),data.coco_root=$(COCO_ROOT))
else
$(error DATA must be synth, coco or posetrack (got '$(DATA)'))
endif
RUN := $(PY) -m experiments.run

.DEFAULT_GOAL := help
.PHONY: help venv demo test test-slow test-slurm world preview train-siamese train-refine train-pose finetune-pose weights \
        train-reid track sweep reproduce bench-eval bench-corr bench-propagation bench-track clean

help: ## list every target with one line each
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-18s %s\n", $$1, $$2}'
	@echo "  variables: PRESET=$(PRESET) ARGS=\"key=value ...\" DATA=synth|coco|posetrack COCO_ROOT= POSETRACK_ROOT= SIAMESE_CKPT=latest"

$(STAMP): setup.cfg pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@cp setup.cfg $(STAMP)

venv: $(STAMP) ## create/refresh the virtual environment .venv from setup.cfg

DEMO_OUT ?= outputs/demo/$(shell date +%Y%m%d-%H%M%S)
# the operating point of the shipped CPU-trained weights (`--preset shipped`, chosen on the hard world's
# seed-0 val videos; docs/tracking.md) and the small world's frame width as the correspondence input (its
# 320x240 frames are not upscaled); the paper's settings remain the tracking defaults
DEMO_TRACKING ?= --preset shipped input_size=320
demo: $(STAMP) ## the main job: generate the small world, track its val videos with all four cues (shipped weights), print Table 2, render MP4s
	$(PY) -m corrtrack.synth --out data/synth/$(SYNTH_PRESET)-seed$(SEED) --preset $(SYNTH_PRESET) --seed $(SEED) --preview
	$(PY) -m corrtrack.track --posetrack-root data/synth/$(SYNTH_PRESET)-seed$(SEED)/posetrack --out $(DEMO_OUT) \
		--cue all --boxes detections --render $(DEMO_TRACKING) $(ARGS)

test: $(STAMP) ## fast test tier (unit tests, fast_dev_run of every config, 2-process DDP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-slow: $(STAMP) ## slow tier: training smoke runs and benchmarks
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

test-slurm: $(STAMP) ## real one-node SLURM on localhost (apt-get installs slurm-wlm + munge; root): requeued 2-task CPU DDP job
	$(PY) -m pytest -q -s -m slurm tests/test_slurm.py $(PYTEST_ARGS)

world: $(STAMP) ## generate a synthetic world: SYNTH_PRESET=tiny|small|standard|hard SEED=0
	$(PY) -m corrtrack.synth --out data/synth/$(SYNTH_PRESET)-seed$(SEED) --preset $(SYNTH_PRESET) --seed $(SEED)

preview: $(STAMP) ## generate a synthetic world with contact sheet and per-video GIFs
	$(PY) -m corrtrack.synth --out data/synth/$(SYNTH_PRESET)-seed$(SEED) --preset $(SYNTH_PRESET) --seed $(SEED) --preview

train-siamese: $(STAMP) ## train the Siamese correspondence stage (PRESET=cpu|paper|debug, ARGS=...)
	$(RUN) siamese $(PRESET) $(DATA_ARGS) $(ARGS)

train-refine: $(STAMP) ## train the refinement stage on the frozen Siamese stage (SIAMESE_CKPT=latest|path)
	$(RUN) refine $(PRESET) $(DATA_ARGS) model.siamese_ckpt=$(SIAMESE_CKPT) $(ARGS)

train-pose: $(STAMP) ## train the top-down pose estimator on COCO-format data
	$(RUN) pose $(PRESET) $(DATA_ARGS) $(ARGS)

finetune-pose: $(STAMP) ## fine-tune the pose estimator on PoseTrack-format data (POSE_CKPT=latest|path; default: the preset's)
	$(RUN) finetune $(PRESET) $(subst data.train_format=coco,,$(DATA_ARGS)) \
		$(if $(filter command line environment,$(origin POSE_CKPT)),model.init_ckpt=$(POSE_CKPT)) $(ARGS)

train-reid: $(STAMP) ## train the person re-ID net of the tracker's reid cue on PoseTrack track identities
	$(RUN) reid $(PRESET) $(subst data.train_format=coco,,$(DATA_ARGS)) $(ARGS)

weights: $(STAMP) ## retrain the shipped weights (pose, Siamese+refinement, re-ID) with the cpu presets; export to weights/
	bash experiments/weights.sh $(WEIGHTS_ID)

# make track: checkpoints only when given on the command line or in the environment (else the shipped
# weights); 'latest' = the newest run under outputs/.
CUE ?= all
BOXES ?= gt
TRACK_ROOT = $(if $(filter synth,$(DATA)),data/synth/$(SYNTH_PRESET)-seed$(SEED)/posetrack,$(POSETRACK_ROOT))
TRACK_NAME = $(if $(filter synth,$(DATA)),$(SYNTH_PRESET)-seed$(SEED),$(DATA))
TRACK_CKPTS = $(if $(filter command line environment,$(origin POSE_CKPT)),--pose-ckpt $(POSE_CKPT)) \
              $(if $(filter command line environment,$(origin REFINE_CKPT)),--corr-ckpt $(REFINE_CKPT)) \
              $(if $(REID_CKPT),--reid-ckpt $(REID_CKPT))
track: $(STAMP) ## track the val videos: CUE=all|oks|flow|reid|corr BOXES=gt|detections|gt-poses ARGS="key=value" (POSE_CKPT= REFINE_CKPT= REID_CKPT=)
	$(if $(filter synth,$(DATA)),$(PY) -m corrtrack.synth --out data/synth/$(SYNTH_PRESET)-seed$(SEED) --preset $(SYNTH_PRESET) --seed $(SEED) --quiet)
	$(PY) -m corrtrack.track --posetrack-root $(TRACK_ROOT) --out outputs/track/$(TRACK_NAME)-$(CUE)-$(BOXES) --cue $(CUE) --boxes $(BOXES) $(TRACK_CKPTS) $(ARGS)

# make sweep: online (wandb sweep + AGENTS x wandb agent, one GPU each when there are several) when W&B
# credentials are configured, else the offline runner (experiments/sweep.py) into SWEEP_OUT/<name>/<timestamp>/.
SWEEP ?= tracking
AGENTS ?= 1
COUNT ?=
SWEEP_OUT ?= outputs/sweeps
SWEEP_ARGS ?=
sweep: $(STAMP) ## W&B sweep over experiments/sweeps/$(SWEEP).yaml (tracking|siamese|refine): AGENTS=N COUNT=N; offline runner when not logged in
	$(if $(filter tracking,$(SWEEP)),$(PY) -m corrtrack.synth --out data/synth/small-seed0 --preset small --seed 0 --quiet)
	$(PY) -m experiments.sweep launch $(SWEEP) --agents $(AGENTS) $(if $(COUNT),--count $(COUNT)) --out-root $(SWEEP_OUT) $(SWEEP_ARGS)

# make reproduce: every step of experiments/reproduce.py into outputs/reproduce/<SCALE>/, then docs/RESULTS.md;
# a rerun skips the finished steps (REPRO_ARGS="--force STEP" redoes one, "--jobs 2" runs independent steps at once). SCALE=smoke: the cpu presets'
# nets trained 3 steps (debug) on the tiny world, a check of the pipeline (about 5 min), results in its run folder.
SCALE ?= full
REPRO_ARGS ?=
reproduce: $(STAMP) ## worlds, all stages (cpu presets, fixed seeds), tables, tracking, sweep, propagation -> docs/RESULTS.md (SCALE=full|smoke)
	$(PY) -m experiments.reproduce --scale $(SCALE) $(REPRO_ARGS)

bench-eval: $(STAMP) ## evaluator speed on a generated 40-sequence set (sequences per second)
	$(PY) -m corrtrack.evaluation.bench --sequences 40 --frames 60

bench-corr: $(STAMP) ## batched affinity vs per-keypoint loop, training pairs/s
	$(PY) -m corrtrack.bench speed

bench-propagation: $(STAMP) ## PCKh of propagated poses: zero motion, DIS flow, Siamese, refined (SYNTH_PRESET=hard REFINE_CKPT=latest|path)
	$(PY) -m corrtrack.synth --out data/synth/$(SYNTH_PRESET)-seed$(SEED) --preset $(SYNTH_PRESET) --seed $(SEED) --quiet
	$(PY) -m corrtrack.bench propagation --data data/synth/$(SYNTH_PRESET)-seed$(SEED) --ckpt $(if $(filter latest,$(REFINE_CKPT)),outputs/refine/latest,$(REFINE_CKPT)) --input-size 512 --out outputs/bench/propagation-$(SYNTH_PRESET).json

bench-track: $(STAMP) ## tracking frames/s per cue with a breakdown (SYNTH_PRESET=hard; untrained cpu-preset nets unless POSE_CKPT/REFINE_CKPT)
	$(PY) -m corrtrack.synth --out data/synth/$(SYNTH_PRESET)-seed$(SEED) --preset $(SYNTH_PRESET) --seed $(SEED) --quiet
	$(PY) -m corrtrack.bench tracking --data data/synth/$(SYNTH_PRESET)-seed$(SEED) --max-videos 1 $(TRACK_CKPTS) --out outputs/bench/tracking-$(SYNTH_PRESET).json $(ARGS)

clean: ## remove outputs/ and generated data (keeps .venv)
	rm -rf outputs data/synth wandb lightning_logs
