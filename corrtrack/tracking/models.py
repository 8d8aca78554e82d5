"""Loading the networks tracking uses from checkpoints, with one clear error per problem (a missing file,
a file that is no checkpoint, a checkpoint of the wrong stage), and the shipped default weights.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from corrtrack.tracking.config import TrackingConfig
from corrtrack.tracking.precompute import Models
from corrtrack.tracking.video import TrackingInputError
from corrtrack.weights import WEIGHTS_DIR

# the checkpoints ``python -m corrtrack.track`` uses when no path is given: the shipped weights
# (corrtrack.weights, weights/MANIFEST.json), by the role names of corrtrack.weights.ROLES
DEFAULT_WEIGHTS = {"pose": WEIGHTS_DIR / "pose.ckpt", "corr": WEIGHTS_DIR / "correspondence.ckpt",
                   "reid": WEIGHTS_DIR / "reid.ckpt"}
FLAGS = {"pose": "--pose-ckpt", "corr": "--corr-ckpt", "reid": "--reid-ckpt"}


def needed_models(config: TrackingConfig, cues: list[str]) -> set[str]:
    """Which networks a run needs: the pose estimator for boxes, the correspondence net for the corr cue,
    recovery (not with GT poses) and merge, the re-ID net for the reid cue."""
    need = set()
    if config.boxes != "gt-poses":
        need.add("pose")
        if config.recovery:
            need.add("corr")
    if "corr" in cues or config.merge:
        need.add("corr")
    if "reid" in cues:
        need.add("reid")
    return need


# ``latest``: the newest run of these stages under the output root (the first that has one)
LATEST_STAGES = {"pose": ("finetune", "pose"), "corr": ("refine", "siamese"), "reid": ("reid",)}


def resolve_weights(kind: str, path: str | Path | None, output_root: str | Path | None = None) -> Path:
    """The checkpoint to load: ``path`` if given (a file or a run folder; ``latest`` = the newest run of
    the stage under ``output_root``, default ``$CORRTRACK_OUTPUTS`` or ``outputs``), else the shipped
    default."""
    if path is not None and str(path) == "latest":
        from corrtrack.checkpoints import CheckpointError, resolve

        root = output_root or os.environ.get("CORRTRACK_OUTPUTS", "outputs")
        for stage in LATEST_STAGES[kind]:
            try:
                return resolve("latest", root, stage)
            except CheckpointError:
                continue
        raise TrackingInputError(f"{FLAGS[kind]} latest: no {' or '.join(LATEST_STAGES[kind])} run under {root}")
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise TrackingInputError(f"{FLAGS[kind]} {p}: no such file or folder")
        return p
    p = DEFAULT_WEIGHTS[kind]
    if not p.exists():
        stages = {"pose": "finetune or pose", "corr": "refine or siamese", "reid": "reid"}[kind]
        raise TrackingInputError(f"{FLAGS[kind]} not given and the shipped default {p} is not there; pass "
                                 f"{FLAGS[kind]} PATH (a {stages} checkpoint or run folder, or 'latest'), or run "
                                 "`make weights`")
    return p


def _checked(path: str | Path, kind: str, accept: tuple[str, ...], what: str) -> Path:
    """The checkpoint file of ``path`` (a file or run folder) after checking its stage: one line naming
    the flag, the file and the stage it came from when it is not one of ``accept``."""
    from corrtrack import checkpoints

    try:
        ck = checkpoints.load(path, what=FLAGS[kind])
        checkpoints.check_stage(ck, accept)
    except checkpoints.CheckpointNotFoundError as e:
        raise TrackingInputError(str(e)) from None
    except checkpoints.CheckpointError as e:
        if "ck" not in locals():
            raise TrackingInputError(str(e)) from None
        found = f"a checkpoint of the '{ck.stage}' stage" if ck.stage else "not a checkpoint of a corrtrack stage"
        raise TrackingInputError(f"{FLAGS[kind]} {ck.path}: {found}, not of the {what} "
                                 f"({' or '.join(accept)})") from None
    return ck.path


def load_pose(path: Path, device: str | torch.device = "cpu") -> Any:
    """A ``corrtrack.pose.PoseEstimator`` from a pose / finetune checkpoint (file or run folder)."""
    from corrtrack.checkpoints import CheckpointError
    from corrtrack.pose import PoseEstimator

    path = _checked(path, "pose", ("finetune", "pose"), "pose estimator")
    try:
        return PoseEstimator.from_checkpoint(path, device=device)
    except CheckpointError as e:
        raise TrackingInputError(f"--pose-ckpt: {e}") from None


def load_corr(path: Path, input_size: int, device: str | torch.device = "cpu") -> Any:
    """A ``corrtrack.correspondence.CorrespondenceModel`` from a refine (or siamese) checkpoint (file or
    run folder); the whole frame is letterboxed to ``input_size``."""
    from corrtrack.checkpoints import CheckpointError
    from corrtrack.correspondence import load_correspondence_checkpoint

    path = _checked(path, "corr", ("refine", "siamese"), "correspondence net")
    try:
        return load_correspondence_checkpoint(path, device=device, input_size=input_size)
    except CheckpointError as e:
        raise TrackingInputError(f"--corr-ckpt: {e}") from None


def load_reid(path: Path, device: str | torch.device = "cpu") -> Any:
    """A re-ID embedder (``corrtrack.reid.ReIDEmbedder``) from a reid checkpoint or a user's weights."""
    try:
        from corrtrack.reid import ReIDEmbedder
    except ImportError:
        raise TrackingInputError(f"--reid-ckpt {path}: this version has no re-ID model (corrtrack.reid)") from None
    try:
        return ReIDEmbedder.load(path, device=device)
    except (ValueError, FileNotFoundError) as e:          # CheckpointError is a ValueError
        raise TrackingInputError(f"--reid-ckpt: {e}") from None


def _checkpoint_file(kind: str, path: Path) -> Path:
    """The checkpoint file a path names (a run folder's best or last checkpoint)."""
    from corrtrack.checkpoints import CheckpointError, resolve

    try:
        return resolve(path, what=FLAGS[kind])
    except CheckpointError as e:
        raise TrackingInputError(str(e)) from None


def load_models(config: TrackingConfig, cues: list[str], pose_ckpt: str | Path | None = None,
                corr_ckpt: str | Path | None = None, reid_ckpt: str | Path | None = None,
                device: str | torch.device = "cpu", optional: tuple[str, ...] = ()) -> tuple[Models, dict]:
    """The networks a run needs (:func:`needed_models`), from the given checkpoints or the shipped
    defaults. Networks in ``optional`` that cannot be found are left out instead of failing (their
    messages are returned). Returns (Models, {kind: message of a skipped network}); ``Models.files`` holds
    the checkpoint file of each network loaded."""
    need = needed_models(config, cues)
    given = {"pose": pose_ckpt, "corr": corr_ckpt, "reid": reid_ckpt}
    models, skipped = Models(), {}
    for kind in ("pose", "corr", "reid"):
        if kind not in need:
            continue
        try:
            path = resolve_weights(kind, given[kind])
            models.files[kind] = _checkpoint_file(kind, path)
            if kind == "pose":
                models.pose = load_pose(path, device)
            elif kind == "corr":
                models.corr = load_corr(path, config.input_size, device)
            else:
                models.reid = load_reid(path, device)
        except TrackingInputError as e:
            if kind in optional and given[kind] is None:
                skipped[kind] = str(e)
                continue
            raise
    return models, skipped
