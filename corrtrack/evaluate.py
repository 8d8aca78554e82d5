"""PoseTrack evaluation CLI: AP and MOTA with poseval's official numbers, optionally keypoint HOTA with the
PoseTrack21 kit's.

    python -m corrtrack.evaluate --gt GT_DIR --pred PRED_DIR [--out metrics.json] [--strict] [--hota]

One JSON per sequence in each folder, PoseTrack 2017, 2018 or PoseTrack21 format in any mix, paired by
file name.
Prints the AP and MOT tables (Head, Shou, Elb, Wri, Hip, Knee, Ankl, Total); ``--out`` writes the numbers
as JSON (docs/evaluation.md). Bad input gives a one-line message naming the file (exit status 2), never a
traceback (``--debug`` or CORRTRACK_DEBUG=1 shows it, ``corrtrack.cli``). A 2018-format prediction file
without ``categories`` gets a warning naming the joint order assumed. This module imports numpy, not torch.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from corrtrack.cli import debug_requested, entry_point


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m corrtrack.evaluate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gt", required=True, metavar="GT_DIR", help="folder of GT files, one JSON per sequence")
    p.add_argument("--pred", required=True, metavar="PRED_DIR",
                   help="folder of prediction files, named like their GT files")
    p.add_argument("--out", metavar="FILE", help="write the metrics as JSON to FILE")
    p.add_argument("--strict", action="store_true",
                   help="fix poseval's MOT quirks (last frame dropped, dummy entries for frames without "
                        "GT or predictions) and the PoseTrack21 kit's HOTA rules; default: the official "
                        "numbers")
    p.add_argument("--hota", action="store_true",
                   help="also compute keypoint HOTA (DetA, AssA, LocA): the PoseTrack21 kit's numbers, or the "
                        "corrected metric with --strict")
    p.add_argument("--engine", choices=("fast", "motmetrics"), default="fast",
                   help="MOT matching engine: vectorised (default) or the motmetrics reference (slow)")
    p.add_argument("--quiet", action="store_true", help="print no tables (warnings still go to stderr)")
    p.add_argument("--debug", action="store_true", help="show a traceback on internal errors")
    return p


@entry_point   # warnings of the readers and the evaluation go to stderr, one line each
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    from corrtrack.evaluation import EvaluationInputError, evaluate_folders, format_tables
    from corrtrack.posetrack.types import PoseTrackFormatError

    t0 = time.perf_counter()
    try:
        metrics = evaluate_folders(args.gt, args.pred, strict=args.strict, hota=args.hota, engine=args.engine)
    except (EvaluationInputError, PoseTrackFormatError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:                     # a bug of ours: one line, the traceback on request
        if args.debug or debug_requested():
            raise
        print(f"internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 3
    if not args.quiet:
        print(format_tables(metrics))
        print(f"{metrics.num_sequences} sequences, {metrics.num_frames} evaluated frames, "
              f"{time.perf_counter() - t0:.2f} s")
    if args.out:
        try:
            d = os.path.dirname(os.path.abspath(args.out))
            os.makedirs(d, exist_ok=True)
            tmp = f"{args.out}.tmp{os.getpid()}"
            with open(tmp, "w") as f:
                json.dump(metrics.to_dict(), f, indent=2)
            os.replace(tmp, args.out)
        except OSError as e:
            print(f"error: cannot write {args.out}: {e.strerror or e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
