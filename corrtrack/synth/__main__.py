"""Command line of the synthetic world.

``python -m corrtrack.synth --out DIR --preset {tiny,small,standard,hard} [--seed N] [--preview]``.

Also ``python -m corrtrack.synth --preview-only DIR`` to (re)draw the preview of an existing world.
An existing complete world of the same preset and seed is kept (``--force`` regenerates it); files you
put into a world's folder are never deleted (``corrtrack.synth.world``). Bad arguments get one line
naming the argument or file and exit status 2 (a traceback with ``--debug``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from corrtrack.cli import entry_point
from corrtrack.synth.presets import PRESETS


def _count(name: str, minimum: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be >= {minimum}, got {v}")
        return v
    return parse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m corrtrack.synth",
        description="Generate the synthetic world: COCO-format images, PoseTrack-2018-format videos, "
        "simulated detections and a visibility sidecar (see docs/synthetic_world.md).",
    )
    p.add_argument(
        "--out", type=Path, help="output folder (created; a world already there is kept unless --force)"
    )
    p.add_argument(
        "--preset", default="small", choices=sorted(PRESETS), help="size / difficulty (default: small)"
    )
    p.add_argument("--seed", type=_count("--seed", 0), default=0,
                   help="random seed (>= 0); the output is identical for a seed")
    p.add_argument(
        "--preview", action="store_true", help="also draw DIR/preview: contact sheet, GIF per video"
    )
    p.add_argument(
        "--preview-only", type=Path, metavar="DIR", help="only (re)draw the preview of the world in DIR"
    )
    p.add_argument(
        "--force", action="store_true", help="regenerate even if a complete world is already there"
    )
    p.add_argument(
        "--workers", type=_count("--workers", 1), default=None,
        help="render processes (default: 1 for tiny, else <= 4)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show a traceback on errors (also CORRTRACK_DEBUG=1)")
    return p


@entry_point
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from corrtrack.synth.preview import make_preview
    from corrtrack.synth.world import generate_world, read_marker

    progress = not args.quiet
    if args.preview_only is not None:
        if read_marker(args.preview_only) is None:
            print(
                f"error: {args.preview_only} holds no complete synthetic world (no world.json)",
                file=sys.stderr,
            )
            return 2
        out = make_preview(args.preview_only, progress=progress)
        print(f"preview: {out}/index.md")
        return 0
    if args.out is None:
        _parser().error("--out DIR is required (or --preview-only DIR)")
    t0 = time.time()
    m = read_marker(args.out)
    from corrtrack.synth.presets import get_preset
    from corrtrack.synth.world import stale_reasons

    ours = m is not None and m.get("preset") == args.preset and int(m.get("seed", -1)) == args.seed
    stale = stale_reasons(m, get_preset(args.preset)) if ours else []
    same = ours and not stale
    try:
        if same and not args.force:
            print(
                f"{args.out}: complete '{args.preset}' world (seed {args.seed}) already there; "
                "--force regenerates"
            )
            if args.preview:
                make_preview(args.out, progress=progress)
        else:
            if stale:
                print(f"{args.out}: regenerating the '{args.preset}' world there ({'; '.join(stale)})")
            elif m is not None and not args.force:
                print(
                    f"error: {args.out} holds the world preset={m.get('preset')!r} seed={m.get('seed')} "
                    f"(version {m.get('version')}); use --force to replace it or choose another --out",
                    file=sys.stderr,
                )
                return 2
            generate_world(
                args.out,
                args.preset,
                args.seed,
                preview=args.preview,
                progress=progress,
                workers=args.workers,
            )
    except FileExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:   # unwritable or impossible --out
        print(f"error: --out {args.out}: cannot write the world there ({e.strerror or e}: {e.filename})",
              file=sys.stderr)
        return 2
    m = read_marker(args.out) or {}
    c = m.get("counts", {})
    print(f"synthetic world '{args.preset}' seed {args.seed} in {args.out}  ({time.time() - t0:.1f} s)")
    for k in ("coco_train2017", "coco_val2017"):
        if k in c:
            print(f"  {k}: {c[k]['images']} images, {c[k]['annotations']} people")
    for k in ("posetrack_train", "posetrack_val"):
        if k in c:
            print(
                f"  {k}: {c[k]['videos']} videos, {c[k]['frames']} frames "
                f"({c[k]['labeled_frames']} labelled), "
                f"{c[k]['annotations']} people"
            )
    if (Path(args.out) / "preview" / "index.md").is_file():
        print(f"  preview: {Path(args.out) / 'preview' / 'index.md'} (contact sheet, one GIF per video)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
