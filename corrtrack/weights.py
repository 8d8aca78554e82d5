"""The weights that ship with the project (``weights/``) and their manifest.

``weights/`` holds one weights-only checkpoint per role -- ``pose.ckpt`` (the fine-tuned top-down pose
estimator), ``correspondence.ckpt`` (the refinement stage, which carries its frozen Siamese stage) and
``reid.ckpt`` (the re-ID net) -- and ``MANIFEST.json``: for every file the run it was exported from, its
sha256, size, epoch / step and the metrics the run reached, plus the command and commit that trained them.
``make weights`` retrains every stage with the ``cpu`` presets and calls ``python -m corrtrack.weights
export``; ``python -m corrtrack.weights verify`` checks that the files load and match the manifest.

A weights-only checkpoint keeps exactly what the Lightning-free loaders read (``hyper_parameters`` and
``state_dict``, plus ``epoch`` / ``global_step``) and drops optimizer and loop state, so it cannot resume
training. Nothing here imports Lightning.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from corrtrack import checkpoints
from corrtrack.cli import entry_point

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
MANIFEST = "MANIFEST.json"
ROLES = ("pose", "correspondence", "reid")
KEPT_KEYS = ("hyper_parameters", "state_dict", "epoch", "global_step")


class WeightsError(ValueError):
    """A shipped-weights file or manifest is missing, corrupt or does not match."""


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load(path: Path) -> dict:
    try:
        return checkpoints.read(path)
    except checkpoints.CheckpointError as e:
        raise WeightsError(str(e)) from None


def _run_of(checkpoint: Path) -> Path | None:
    """The run folder of ``<run>/checkpoints/x.ckpt`` (it holds summary.json and config.yaml)."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else None


def export_checkpoint(src: str | Path, dst: str | Path) -> dict[str, Any]:
    """Write the weights-only copy of checkpoint (or run folder) ``src`` to ``dst``; returns its manifest
    entry (source, sha256, bytes, epoch, global_step, the run's final metrics)."""
    try:
        src_path = checkpoints.resolve(src)
    except checkpoints.CheckpointError as e:
        raise WeightsError(str(e)) from None
    ckpt = _load(src_path)
    slim = {k: ckpt[k] for k in KEPT_KEYS if k in ckpt}
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(dst.suffix + ".tmp")
    torch.save(slim, tmp)
    tmp.replace(dst)
    entry: dict[str, Any] = {"file": dst.name, "source_checkpoint": str(src_path),
                             "epoch": ckpt.get("epoch"), "global_step": ckpt.get("global_step"),
                             "sha256": sha256(dst), "bytes": dst.stat().st_size}
    stage = checkpoints.stage_of(ckpt)
    if stage:
        entry["stage"] = stage
    run = _run_of(src_path)
    if run is not None:
        entry["source_run"] = run.name
        summary = run / "summary.json"
        if summary.is_file():
            s = json.loads(summary.read_text())
            entry["stage"] = entry.get("stage") or s.get("stage")
            entry["metrics"] = s.get("final_metrics", {})
    return entry


def git_commit(repo: str | Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo or Path(__file__).resolve().parents[1],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def export(sources: dict[str, str | Path], out_dir: str | Path = WEIGHTS_DIR, command: str = "",
           commit: str | None = None, extra_metrics: dict[str, dict[str, float]] | None = None,
           notes: dict[str, Any] | None = None) -> dict[str, Any]:
    """Export one checkpoint per role (``sources``: role -> checkpoint or run folder) into ``out_dir``
    and write its ``MANIFEST.json``; returns the manifest. ``extra_metrics`` (role -> {name: value})
    adds metrics measured outside the run (e.g. AP on another world)."""
    unknown = sorted(set(sources) - set(ROLES))
    if unknown:
        raise WeightsError(f"unknown weights role(s) {unknown}; expected {list(ROLES)}")
    out_dir = Path(out_dir)
    files = {}
    for role, src in sources.items():
        entry = export_checkpoint(src, out_dir / f"{role}.ckpt")
        entry["metrics"] = {**entry.get("metrics", {}), **(extra_metrics or {}).get(role, {})}
        files[role] = entry
    manifest = {"command": command, "commit": commit or git_commit(),
                "exported": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "files": files, **(notes or {})}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(weights_dir: str | Path = WEIGHTS_DIR) -> dict[str, Any]:
    path = Path(weights_dir) / MANIFEST
    if not path.is_file():
        raise WeightsError(f"{path}: no manifest (run `make weights` to train and export the shipped weights)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise WeightsError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(manifest.get("files"), dict):
        raise WeightsError(f"{path}: field 'files' missing or not an object")
    return manifest


def verify(weights_dir: str | Path = WEIGHTS_DIR) -> dict[str, Any]:
    """Check that every file in the manifest exists, has its sha256 and loads as a checkpoint with
    hyper-parameters. Raises :class:`WeightsError` naming the first problem; returns the manifest."""
    weights_dir = Path(weights_dir)
    manifest = read_manifest(weights_dir)
    for role, entry in manifest["files"].items():
        path = weights_dir / str(entry.get("file", f"{role}.ckpt"))
        if not path.is_file():
            raise WeightsError(f"{path}: listed in {MANIFEST} as '{role}' but missing")
        digest = sha256(path)
        if digest != entry.get("sha256"):
            raise WeightsError(f"{path}: sha256 {digest[:12]}... does not match {MANIFEST} "
                               f"({str(entry.get('sha256'))[:12]}...)")
        ckpt = _load(path)
        if not ckpt.get("hyper_parameters"):
            raise WeightsError(f"{path}: no 'hyper_parameters' (the loaders rebuild the nets from them)")
        stage = checkpoints.stage_of(ckpt)
        if checkpoints.STAGE_FAMILY.get(stage or "") != role:
            raise WeightsError(f"{path}: listed as '{role}' weights but written by the '{stage}' stage")
    return manifest


def set_hparams(role: str, changes: dict[str, Any], weights_dir: str | Path = WEIGHTS_DIR) -> dict[str, Any]:
    """Change inference-time hyper-parameters (e.g. the pose decoder's ``vote_radius``) of a shipped
    file in place, keeping its weights; the manifest entry gets the new sha256 / size and a record of
    every change (key, old and new value, commit, time). Only keys the file already has, with a value of
    the same kind (number, bool, string), can be set. Returns the manifest."""
    weights_dir = Path(weights_dir)
    manifest = verify(weights_dir)
    if role not in manifest["files"]:
        raise WeightsError(f"{weights_dir / MANIFEST}: no '{role}' weights to change")
    entry = manifest["files"][role]
    path = weights_dir / str(entry.get("file", f"{role}.ckpt"))
    ckpt = _load(path)
    hp = ckpt["hyper_parameters"]
    record = entry.setdefault("hparams_set", [])
    for key, value in changes.items():
        if key not in hp:
            raise WeightsError(f"{path}: no hyper-parameter {key!r} (it has {sorted(hp)})")
        old = hp[key]
        if not isinstance(old, (bool, int, float, str)):
            raise WeightsError(f"{path}: hyper-parameter {key!r} is not a number, bool or string; it cannot be set")
        if isinstance(old, bool) != isinstance(value, bool) or \
                isinstance(old, (int, float)) != isinstance(value, (int, float)) or \
                isinstance(old, str) != isinstance(value, str):
            raise WeightsError(f"{path}: hyper-parameter {key!r} is {old!r}; {value!r} is not of its kind")
        hp[key] = float(value) if isinstance(old, float) else value
        record.append({"key": key, "from": old, "to": hp[key], "commit": git_commit(),
                       "at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)
    entry["sha256"], entry["bytes"] = sha256(path), path.stat().st_size
    (weights_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _parse_assignments(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise WeightsError(f"{item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def shipped(role: str, weights_dir: str | Path = WEIGHTS_DIR) -> Path:
    """The shipped checkpoint of ``role``; a clear error when the project has none yet."""
    if role not in ROLES:
        raise WeightsError(f"unknown weights role {role!r}; expected one of {list(ROLES)}")
    path = Path(weights_dir) / f"{role}.ckpt"
    if not path.is_file():
        raise WeightsError(f"no shipped {role} weights ({path} missing): give a checkpoint path, or run "
                           f"`make weights`")
    return path


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m corrtrack.weights",
                                     description="Export or verify the shipped weights (weights/).")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export", help="export trained runs as weights-only checkpoints + MANIFEST.json")
    for role in ROLES:
        ex.add_argument(f"--{role}", metavar="CKPT_OR_RUN", help=f"{role} checkpoint or run folder")
    ex.add_argument("--out", default=str(WEIGHTS_DIR), help="output folder (default: weights/)")
    ex.add_argument("--command", default="", help="the command that trained the runs (for the manifest)")
    ex.add_argument("--metric", action="append", default=[], metavar="ROLE:NAME=VALUE",
                    help="a metric measured outside the run, e.g. pose:hard_val_ap=0.61 (repeatable)")
    ve = sub.add_parser("verify", help="check that the shipped files load and match their manifest")
    ve.add_argument("--dir", default=str(WEIGHTS_DIR))
    se = sub.add_parser("set", help="change inference hyper-parameters of a shipped file (recorded in the manifest)")
    se.add_argument("role", choices=ROLES)
    se.add_argument("assignments", nargs="+", metavar="KEY=VALUE", help="e.g. vote_radius=6")
    se.add_argument("--dir", default=str(WEIGHTS_DIR))
    args = parser.parse_args(argv)
    if args.cmd == "set":
        set_hparams(args.role, _parse_assignments(args.assignments), args.dir)
        print(f"{args.role}: set {' '.join(args.assignments)} ({Path(args.dir) / MANIFEST} updated)")
        return 0
    if args.cmd == "export":
        sources = {r: getattr(args, r) for r in ROLES if getattr(args, r)}
        if not sources:
            parser.error("give at least one of --pose, --correspondence, --reid")
        extra: dict[str, dict[str, float]] = {}
        for m in args.metric:
            try:
                role, rest = m.split(":", 1)
                name, value = rest.split("=", 1)
                extra.setdefault(role, {})[name] = float(value)
            except ValueError:
                raise WeightsError(f"--metric {m!r}: expected ROLE:NAME=VALUE") from None
        manifest = export(sources, args.out, command=args.command, extra_metrics=extra)
        total = sum(e["bytes"] for e in manifest["files"].values())
        print(f"exported {', '.join(manifest['files'])} to {args.out} ({total / 2**20:.1f} MiB)")
    else:
        manifest = verify(args.dir)
        print(f"ok: {', '.join(manifest['files'])} match {Path(args.dir) / MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
