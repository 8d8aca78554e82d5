"""Benchmarks of the correspondence stage (modules ``propagation``, ``chart``, ``speed``, ``cli``) and the
training throughput / model-FLOP utilisation of every stage (``throughput``, ``flops``).

    python -m corrtrack.bench propagation --data DIR [--ckpt CKPT_OR_RUN_DIR] [--split val]
                                          [--input-size 512] [--out results.json]
    python -m corrtrack.bench speed
    python -m corrtrack.bench train-throughput [--stage siamese ...] [--device cuda] [--precision auto]
                                               [--peak-tflops T] [--out results.json]

``propagation``: on every pair of consecutive labeled frames (f-1, f) of the PoseTrack-format videos
under DIR/posetrack (or DIR itself when it holds annotations/), the GT poses of frame f-1 are propagated
to frame f and scored with PCKh@0.5 (head size = 0.6 x head-box diagonal, ``posetrack.head_size``) against the GT of
frame f (persons matched by track id). Rows: all joints; joints occluded in either frame (from the
synthetic world's sidecar ``visibility/<split>/<seq>.json``, flags 0 outside / 1 occluded / 2 visible;
n/a without it); joints that moved more than a quarter of the person's height. Columns: zero motion,
OpenCV DIS optical flow, Siamese argmax, refined argmax (n/a without a checkpoint / refinement net).

``speed``: (a) batched affinity vs a per-keypoint Python loop; (b) training pairs per second of the
Siamese net (forward + backward + Adam step). The data pipeline's pairs per second are measured by
``python -m experiments.stages.correspondence bench-data`` (the datamodules are not part of corrtrack).

``train-throughput``: samples/s of each stage's training step at the paper presets' sizes on synthetic
batches already on the device, beside the model FLOPs, achieved TFLOP/s and MFU (docs/performance.md).
"""
from corrtrack.bench.chart import COLUMN_COLOURS, plot_table
from corrtrack.bench.cli import main
from corrtrack.bench.propagation import (COLUMN_TITLES, COLUMNS, ROW_TITLES, ROWS, FramePair, load_pairs,
                                         markdown_table, pckh_hits, posetrack_root, run_propagation)
from corrtrack.bench.flops import PEAK_TFLOPS, forward_flops, peak_tflops, training_flops, utilisation
from corrtrack.bench.speed import AUTOCAST, affinity_speed, training_speed
from corrtrack.bench.throughput import PAPER, StageProblem, build_problem, stage_flops, train_throughput

__all__ = ["AUTOCAST", "PAPER", "PEAK_TFLOPS", "StageProblem", "build_problem", "forward_flops", "peak_tflops",
           "stage_flops", "train_throughput", "training_flops", "utilisation", "COLUMNS", "COLUMN_COLOURS", "COLUMN_TITLES", "ROWS", "ROW_TITLES", "FramePair",
           "affinity_speed", "load_pairs", "main", "markdown_table", "pckh_hits", "plot_table", "posetrack_root",
           "run_propagation", "training_speed"]
