"""Loading the networks tracking uses from checkpoints, with one clear error per problem (a missing file,
a file that is no checkpoint, a checkpoint of the wrong stage), and the shipped default weights.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from corrtrack.tracking.config import TrackingConfig
from corrtrack.tracking.precompute import Models
from corrtrack.tracking.video import TrackingInputError

WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"
# the checkpoints ``python -m corrtrack.track`` uses when no path is given (weights/MANIFEST.json)
DEFAULT_WEIGHTS = {"pose": WEIGHTS_DIR / "pose.ckpt", "corr": WEIGHTS_DIR / "refine.ckpt",
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


def resolve_weights(kind: str, path: str | Path | None) -> Path:
    """The checkpoint to load: ``path`` if given (it must exist), else the shipped default."""
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise TrackingInputError(f"{FLAGS[kind]} {p}: no such file")
        return p
    p = DEFAULT_WEIGHTS[kind]
    if not p.exists():
        raise TrackingInputError(f"{FLAGS[kind]} not given and the shipped default {p} is not there; "
                                 f"pass {FLAGS[kind]} PATH (a checkpoint of the "
                                 f"{ {'pose': 'pose or finetune', 'corr': 'refine or siamese', 'reid': 'reid'}[kind]} "
                                 "stage)")
    return p


def _read(path: Path, flag: str) -> dict:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:                         # truncated, not a torch file, ...
        raise TrackingInputError(f"{flag} {path}: cannot be read as a checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise TrackingInputError(f"{flag} {path}: not a Lightning checkpoint (no 'state_dict')")
    return ckpt


def _stage(ckpt: dict) -> str:
    hp = ckpt.get("hyper_parameters") or {}
    stage = hp.get("stage") if hasattr(hp, "get") else None
    if stage:
        return str(stage)
    net = hp.get("net") if hasattr(hp, "get") else None
    if hasattr(net, "keys") and ("siamese" in net or "refinement" in net):
        return "refine" if net.get("refinement") else "siamese"
    if any(k.startswith("net.") for k in ckpt["state_dict"]):
        return "pose"
    return "unknown"


def load_pose(path: Path, device: str | torch.device = "cpu") -> Any:
    """A ``corrtrack.pose.PoseEstimator`` from a pose / finetune checkpoint."""
    from corrtrack.pose import PoseEstimator

    stage = _stage(_read(path, "--pose-ckpt"))
    if stage not in ("pose", "finetune"):
        raise TrackingInputError(f"--pose-ckpt {path}: a checkpoint of the '{stage}' stage, not of the pose "
                                 "estimator (pose or finetune)")
    try:
        return PoseEstimator.from_checkpoint(path, device=device)
    except (ValueError, TypeError, RuntimeError, KeyError) as e:
        raise TrackingInputError(f"--pose-ckpt {path}: {e}") from None


def load_corr(path: Path, input_size: int, device: str | torch.device = "cpu") -> Any:
    """A ``corrtrack.correspondence.CorrespondenceModel`` from a refine (or siamese) checkpoint."""
    from corrtrack.correspondence import load_correspondence_checkpoint

    p = Path(path)
    if p.is_file():
        stage = _stage(_read(p, "--corr-ckpt"))
        if stage not in ("siamese", "refine"):
            raise TrackingInputError(f"--corr-ckpt {path}: a checkpoint of the '{stage}' stage, not of the "
                                     "correspondence net (refine or siamese)")
    try:
        return load_correspondence_checkpoint(path, device=device, input_size=input_size)
    except (ValueError, TypeError, RuntimeError, KeyError, FileNotFoundError) as e:
        raise TrackingInputError(f"--corr-ckpt {path}: {e}") from None


def load_reid(path: Path, device: str | torch.device = "cpu") -> Any:
    """A re-ID embedder (``corrtrack.reid.ReIDEmbedder``) from a reid checkpoint or a user's weights."""
    try:
        from corrtrack.reid import ReIDEmbedder
    except ImportError:
        raise TrackingInputError(f"--reid-ckpt {path}: this version has no re-ID model (corrtrack.reid)") from None
    try:
        return ReIDEmbedder.load(path, device=device)
    except (ValueError, TypeError, RuntimeError, KeyError, FileNotFoundError) as e:
        raise TrackingInputError(f"--reid-ckpt {path}: {e}") from None


def load_models(config: TrackingConfig, cues: list[str], pose_ckpt: str | Path | None = None,
                corr_ckpt: str | Path | None = None, reid_ckpt: str | Path | None = None,
                device: str | torch.device = "cpu", optional: tuple[str, ...] = ()) -> tuple[Models, dict]:
    """The networks a run needs (:func:`needed_models`), from the given checkpoints or the shipped
    defaults. Networks in ``optional`` that cannot be found are left out instead of failing (their
    messages are returned). Returns (Models, {kind: message of a skipped network})."""
    need = needed_models(config, cues)
    given = {"pose": pose_ckpt, "corr": corr_ckpt, "reid": reid_ckpt}
    models, skipped = Models(), {}
    for kind in ("pose", "corr", "reid"):
        if kind not in need:
            continue
        try:
            path = resolve_weights(kind, given[kind])
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
