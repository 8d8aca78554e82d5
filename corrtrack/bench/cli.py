"""``python -m corrtrack.bench propagation|speed|tracking``: the command line of the benchmarks
(``tracking`` lives with the tracker: :mod:`corrtrack.tracking.bench`)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from corrtrack.bench.chart import plot_table
from corrtrack.bench.propagation import markdown_table, run_propagation
from corrtrack.bench.speed import AUTOCAST, affinity_speed, training_speed
from corrtrack.keypoints import NUM_JOINTS

DESCRIPTION = "Benchmarks of the correspondence stage: propagation PCKh and speed."


def _print_propagation(result: dict) -> None:
    print(f"PCKh@0.5 of propagated GT poses, {result['pairs']} consecutive labeled frame pairs from "
          f"{result['sequences']} {result['split']} videos ({result['data']})")
    print(markdown_table(result))


def main(argv: list[str] | None = None) -> int:
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["tracking"]:                 # tracking speed lives with the tracker
        from corrtrack.tracking.bench import main as tracking_main

        return tracking_main(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m corrtrack.bench", description=DESCRIPTION)
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("tracking", help="tracking frames/s per cue with a breakdown (corrtrack.tracking.bench; "
                                    "python -m corrtrack.bench tracking --help)")
    p = sub.add_parser("propagation", help="PCKh of propagated poses: zero motion, DIS flow, Siamese, refined")
    p.add_argument("--data", required=True, help="a world/dataset folder holding posetrack/ (or a PoseTrack root)")
    p.add_argument("--ckpt", default=None, help="refine (or siamese) stage checkpoint or run directory; "
                                                "without it only the zero-motion and flow columns are filled")
    p.add_argument("--split", default="val")
    p.add_argument("--input-size", type=int, default=512, help="whole-frame letterbox size (divisible by 32)")
    p.add_argument("--flow-preset", default="medium", choices=["ultrafast", "fast", "medium"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--max-pairs", type=int, default=None)
    p.add_argument("--out", default=None, help="JSON file (a markdown table is written next to it)")
    s = sub.add_parser("speed", help="batched vs looped affinity; training pairs/s")
    s.add_argument("--persons", type=int, default=8)
    s.add_argument("--size", type=int, default=64, help="feature map size of the affinity benchmark")
    s.add_argument("--variant", default="release", choices=["paper", "release"])
    s.add_argument("--width", type=float, default=0.25)
    s.add_argument("--input-size", type=int, default=128, help="training pair size")
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--train-persons", type=int, default=4, help="persons queried per training pair")
    s.add_argument("--steps", type=int, default=3)
    s.add_argument("--device", default="cpu", help="device of the training-speed figure (cpu, cuda, cuda:1)")
    s.add_argument("--precision", default="32", choices=list(AUTOCAST),
                   help="training-speed figure in fp32 or autocast bf16 / fp16 mixed precision")
    s.add_argument("--skip-training", action="store_true")
    s.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    if args.command == "propagation":
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

