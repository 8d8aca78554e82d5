"""``python -m corrtrack.bench propagation|speed|train-throughput|tracking|sweep-cache``: the command line
of the benchmarks (``tracking`` and ``sweep-cache`` live with the tracker: :mod:`corrtrack.tracking.bench`,
:mod:`corrtrack.tracking.sweep_bench`). Bad input (a folder that is not a
world, a missing or wrong checkpoint, a bad argument) gets one line naming it and exit status 2
(``corrtrack.cli``; a traceback with ``--debug`` or CORRTRACK_DEBUG=1)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from corrtrack.bench.chart import plot_table
from corrtrack.bench.propagation import markdown_table, run_propagation
from corrtrack.bench.speed import AUTOCAST, affinity_speed, training_speed
from corrtrack.bench.throughput import PAPER, STAGES, describe, stage_flops, train_throughput
from corrtrack.cli import InputError, entry_point
from corrtrack.keypoints import NUM_JOINTS

DESCRIPTION = ("Benchmarks: propagation PCKh and speed of the correspondence stage; training throughput and "
               "model-FLOP utilisation of every stage.")


def _size(text: str) -> tuple[int, int]:
    """``256`` or ``384x288`` (H x W), each divisible by 32."""
    try:
        hw = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        hw = ()
    if len(hw) == 1:
        hw = (hw[0], hw[0])
    if len(hw) != 2 or min(hw) < 32 or any(v % 32 for v in hw):
        raise argparse.ArgumentTypeError(f"--input-size must be N or HxW, multiples of 32, got {text!r}")
    return hw


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if v <= 0:
        raise argparse.ArgumentTypeError(f"--peak-tflops must be a positive number, got {text!r}")
    return v


def _print_propagation(result: dict) -> None:
    print(f"PCKh@0.5 of propagated GT poses, {result['pairs']} consecutive labeled frame pairs from "
          f"{result['sequences']} {result['split']} videos ({result['data']})")
    print(markdown_table(result))


def _int_at_least(name: str, minimum: int, multiple: int = 1):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if v < minimum or v % multiple:
            raise argparse.ArgumentTypeError(f"{name} must be >= {minimum}" +
                                             (f" and divisible by {multiple}" if multiple > 1 else "") + f", got {v}")
        return v
    return parse


def _check_device(device: str) -> None:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device}: no CUDA device on this machine (use --device cpu)")


def _add_tracker_benches(sub) -> None:
    """The subcommands that live with the tracker (their own argument parsers; listed here for --help)."""
    sub.add_parser("sweep-cache", help="a 25-point tau_corr x joint_threshold sweep with the disk cache vs one "
                                       "tracking run (python -m corrtrack.bench sweep-cache --help)")
    sub.add_parser("tracking", help="tracking frames/s per cue with a breakdown (corrtrack.tracking.bench; "
                                    "python -m corrtrack.bench tracking --help)")


def _add_train_throughput(sub) -> None:
    """The ``train-throughput`` subcommand's arguments."""
    t = sub.add_parser("train-throughput", help="training samples/s of a stage on synthetic in-memory "
                                                "batches, with model FLOPs, TFLOP/s and MFU")
    t.add_argument("--stage", action="append", choices=STAGES, default=None,
                   help="stage(s) to measure (repeat the flag; default: all)")
    t.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    t.add_argument("--precision", default="auto", choices=["auto", *AUTOCAST],
                   help="auto: bf16 autocast on a GPU with bf16, fp32 otherwise")
    t.add_argument("--input-size", type=_size, default=None, help="N or HxW (default: the paper preset's)")
    t.add_argument("--width", type=float, default=None, help="channel multiplier (default: the paper's 1.0)")
    t.add_argument("--batch-size", type=_int_at_least("--batch-size", 2), default=None,
                   help="samples per step (default: the paper preset's)")
    t.add_argument("--steps", type=_int_at_least("--steps", 1), default=20)
    t.add_argument("--warmup", type=_int_at_least("--warmup", 1), default=3)
    t.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                   help="NCHW tensors instead of channels-last")
    t.add_argument("--compile", action="store_true", help="torch.compile the nets (first step timed apart)")
    t.add_argument("--no-cudnn-benchmark", dest="cudnn_benchmark", action="store_false")
    t.add_argument("--peak-tflops", type=_positive_float, default=None,
                   help="the device's peak TFLOP/s for MFU (default: dense bf16 of known GPUs; none on CPU)")
    t.add_argument("--threads", type=_int_at_least("--threads", 1), default=None, help="CPU threads")
    t.add_argument("--flops-only", action="store_true",
                   help="print the model FLOPs per sample, train nothing")
    t.add_argument("--out", default=None, help="JSON file of the results")
    t.add_argument("--debug", action="store_true", help="show tracebacks (also CORRTRACK_DEBUG=1)")


def _train_throughput(args: argparse.Namespace) -> int:
    """``train-throughput``: model FLOPs only, or samples/s + TFLOP/s + MFU of each stage."""
    print("FLOPs: forward matmul/conv FLOPs (torch FlopCounterMode); training = 3 x forward of trained "
          "nets + 1 x forward of frozen ones; MFU against the dense bf16 peak")
    results = []
    for stage in args.stage or list(STAGES):
        overrides = {"input_size": args.input_size, "batch_size": args.batch_size}
        if args.width is not None:
            overrides["width"] = args.width
            if "refine_width" in PAPER[stage]:
                overrides["refine_width"] = args.width
        if args.flops_only:
            f = stage_flops(stage, **overrides)
            size = "x".join(str(v) for v in f["config"]["input_size"])
            g = {k: f[k] / 1e9 for k in ("forward_trained", "forward_frozen", "train")}
            print(f"{stage:8s} {size:>7s}: forward {g['forward_trained']:.2f} GFLOP/{f['unit']} trained + "
                  f"{g['forward_frozen']:.2f} frozen -> training {g['train']:.2f} GFLOP/{f['unit']}")
            results.append(f)
            continue
        r = train_throughput(stage, device=args.device, precision=args.precision, steps=args.steps,
                             warmup=args.warmup, channels_last=args.channels_last, compile=args.compile,
                             cudnn_benchmark=args.cudnn_benchmark, peak=args.peak_tflops,
                             threads=args.threads, **overrides)
        print(describe(r), flush=True)
        results.append(r)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


def _tracking_main():
    from corrtrack.tracking.bench import main

    return main


def _sweep_cache_main():
    from corrtrack.tracking.sweep_bench import main

    return main


_TRACKER_BENCHES = {"tracking": _tracking_main, "sweep-cache": _sweep_cache_main}


@entry_point
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["tracking"], ["sweep-cache"]):     # these benchmarks live with the tracker
        return _TRACKER_BENCHES[argv[0]]()(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m corrtrack.bench", description=DESCRIPTION)
    sub = ap.add_subparsers(dest="command", required=True)
    _add_tracker_benches(sub)
    p = sub.add_parser("propagation", help="PCKh of propagated poses: zero motion, DIS flow, Siamese, refined")
    p.add_argument("--data", required=True, help="a world/dataset folder holding posetrack/ (or a PoseTrack root)")
    p.add_argument("--ckpt", default=None, help="refine (or siamese) stage checkpoint or run directory; "
                                                "without it only the zero-motion and flow columns are filled")
    p.add_argument("--split", default="val")
    p.add_argument("--input-size", type=_int_at_least("--input-size", 32, 32), default=512,
                   help="whole-frame letterbox size (divisible by 32)")
    p.add_argument("--flow-preset", default="medium", choices=["ultrafast", "fast", "medium"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--max-pairs", type=_int_at_least("--max-pairs", 1), default=None)
    p.add_argument("--out", default=None, help="JSON file (a markdown table is written next to it)")
    p.add_argument("--debug", action="store_true", help="show tracebacks (also CORRTRACK_DEBUG=1)")
    s = sub.add_parser("speed", help="batched vs looped affinity; training pairs/s")
    s.add_argument("--persons", type=_int_at_least("--persons", 1), default=8)
    s.add_argument("--size", type=_int_at_least("--size", 1), default=64,
                   help="feature map size of the affinity benchmark")
    s.add_argument("--variant", default="release", choices=["paper", "release"])
    s.add_argument("--width", type=float, default=0.25)
    s.add_argument("--input-size", type=_int_at_least("--input-size", 32, 32), default=128,
                   help="training pair size")
    s.add_argument("--batch-size", type=_int_at_least("--batch-size", 1), default=8)
    s.add_argument("--train-persons", type=_int_at_least("--train-persons", 1), default=4,
                   help="persons queried per training pair")
    s.add_argument("--steps", type=_int_at_least("--steps", 1), default=3)
    s.add_argument("--device", default="cpu", help="device of the training-speed figure (cpu, cuda, cuda:1)")
    s.add_argument("--precision", default="32", choices=list(AUTOCAST),
                   help="training-speed figure in fp32 or autocast bf16 / fp16 mixed precision")
    s.add_argument("--skip-training", action="store_true")
    s.add_argument("--out", default=None)
    s.add_argument("--debug", action="store_true", help="show tracebacks (also CORRTRACK_DEBUG=1)")
    _add_train_throughput(sub)
    args = ap.parse_args(argv)
    _check_device(args.device)

    if args.command == "train-throughput":
        return _train_throughput(args)
    if args.command == "propagation":
        if not Path(args.data).is_dir():
            raise InputError(f"--data {args.data}: no such folder (a synthetic world or a PoseTrack root)")
        if args.ckpt:   # a missing, corrupt or wrong-stage checkpoint: one line naming --ckpt, before work
            from corrtrack import checkpoints

            checkpoints.load(args.ckpt, accept=("siamese", "refine"), what="--ckpt")
        result = run_propagation(args.data, args.ckpt, split=args.split, input_size=args.input_size,
                                 flow_preset=args.flow_preset, device=args.device, max_pairs=args.max_pairs)
        _print_propagation(result)
        if args.out:
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result, indent=2))
            out.with_suffix(".md").write_text(markdown_table(result))
            plot_table(result, out.with_suffix(".png"))
            print(f"wrote {out}, {out.with_suffix('.md')} and the bar chart {out.with_suffix('.png')}")
        return 0

    result = {"affinity": affinity_speed(args.persons, NUM_JOINTS, args.size)}
    a = result["affinity"]
    print(f"(a) affinity of {a['persons']} persons x {a['joints']} joints at {a['size']}x{a['size']}: "
          f"batched {a['batched_ms']:.2f} ms, per-keypoint loop {a['loop_ms']:.2f} ms -> {a['speedup']:.1f}x")
    if not args.skip_training:
        t = training_speed(args.variant, args.width, args.input_size, args.batch_size, args.train_persons,
                           args.steps, device=args.device, precision=args.precision)
        result["training"] = t
        where = t.get("gpu") or f"{t['threads']} threads"
        print(f"(b) Siamese training ({t['variant']}, width {t['width']}, {t['input_size']}px, batch "
              f"{t['batch_size']}, {t['params'] / 1e6:.2f} M params, {where}, precision {t['precision']}): "
              f"{t['pairs_per_s']:.1f} pairs/s")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0

