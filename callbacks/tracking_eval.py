"""TrackingEvaluationCallback: track the PoseTrack-format val videos with every association cue during
training of the correspondence net, and log IDSW, MOTA, mAP and HOTA per cue (paper §5, Table 2).

At every ``every_n_validations``-th validation (the 1st, N+1-th, ...: the first validation already has the
values, so a checkpoint monitoring them never misses its key; sanity checks do not count) rank 0
tracks the videos with each cue through ``corrtrack.tracking.pipeline`` (``track_videos`` and
``evaluate_cues``: the functions ``python -m corrtrack.track --cue all`` runs, so the numbers are the
command line's), broadcasts the table, and every rank logs the same values::

    track/<cue>/mota, track/<cue>/idsw, track/<cue>/map, track/<cue>/hota     (percent; idsw a count)
    perf/track_eval_s                                                          (seconds of the evaluation)

so that a ``ModelCheckpoint(monitor="track/corr/mota")`` works under DDP. With a ``WandbLogger`` attached,
rank 0 also logs the table of every evaluation so far as ``track/table``.

What is computed once and what follows training:
- The candidate poses (GT poses without ids, or GT / detected boxes through the pose estimator of
  ``pose_ckpt``), the recovered poses, the optical flow and the re-ID embeddings do not depend on the net
  being trained: they are precomputed once per fit, and the oks, flow and reid rows are evaluated once and
  reused (with ``merge: true`` those cues are re-tracked each time, because the merge runs the
  correspondence net; their precomputation is still reused).
- Recovery (paper §5.1) runs the correspondence net too. It uses a fixed net, ``recovery_ckpt`` (default:
  the shipped correspondence weights), not the module being trained: then every cue sees the same
  candidates for the whole run, the oks / flow / reid rows stay valid, and the corr values of successive
  evaluations differ only by the association. Without a recovery net recovery is off (one note).
- ``corr`` follows the module: the correspondence model is built from the module's current nets
  (``siamese``, plus ``refinement`` in the refine stage), in eval mode without gradients; the nets' train
  / eval modes and requires_grad flags are restored afterwards. No checkpoint is written.

Missing networks: a checkpoint given in the config must exist and be of the right stage, else the stage
fails at build time with one line naming the key. When a key is null and the shipped default
(``corrtrack.weights.shipped``) is not there, one line says which file is missing and the cues that need
it are skipped: the reid cue without re-ID weights, every cue without pose weights when ``boxes`` is gt
or detections (``boxes: gt-poses`` needs no pose estimator).
Under ``fast_dev_run`` the callback runs once on one video cut after its fourth labelled frame, a
wiring check.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger

from corrtrack.correspondence import CorrespondenceModel
from corrtrack.tracking import CUES, Models, TrackingConfig, TrackingInputError, Video, load_videos
from corrtrack.tracking.pipeline import evaluate_cues, format_table, track_videos

log = logging.getLogger(__name__)

METRICS = ("mota", "idsw", "map", "hota")          # logged as track/<cue>/<metric>
TABLE_COLUMNS = ["epoch", "step", "cue", "IDSW", "MOTA", "mAP", "HOTA", "AssA"]
FAST_DEV_RUN_LIMITS = (1, 4)                        # videos, labelled frames per video under fast_dev_run


class TrackEvalSetupError(ValueError):
    """A configured checkpoint or video folder the callback cannot use; the message names the config key."""


def truncate_video(video: Video, max_frames: int | None) -> Video:
    """The video up to and including its ``max_frames``-th labelled frame (the frames the evaluation reads
    and, with GT boxes or GT poses, the only ones tracked), GT cut alike. None: the whole video."""
    labeled = video.labeled()
    if max_frames is None or len(labeled) <= max_frames:
        return video
    return video.head(labeled[max_frames - 1] + 1)


def correspondence_model(module: torch.nn.Module, input_size: int, device: torch.device | str
                         ) -> CorrespondenceModel:
    """A tracking correspondence model on the module's current nets (``module.siamese`` and, when set,
    ``module.refinement``; the checkpoint contract of ``lightning_modules/siamese.py``). It shares the
    module's parameters (nothing is copied) and puts the nets in eval mode: use :func:`preserved_modes`."""
    siamese = getattr(module, "siamese", None)
    if siamese is None:
        raise TypeError(f"{type(module).__name__} has no 'siamese' net: the tracking evaluation needs a "
                        "correspondence module (siamese or refine stage)")
    return CorrespondenceModel(siamese, getattr(module, "refinement", None), input_size=input_size,
                               device=device)


class preserved_modes:
    """Context manager: on exit, every submodule's train / eval mode and every parameter's
    requires_grad flag are what they were on entry; inside, gradients are off."""

    def __init__(self, module: torch.nn.Module):
        self.module = module

    def __enter__(self) -> None:
        self.training = [(m, m.training) for m in self.module.modules()]
        self.grads = [(p, p.requires_grad) for p in self.module.parameters()]
        self.no_grad = torch.no_grad()
        self.no_grad.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self.no_grad.__exit__(*exc)
        for m, mode in self.training:
            m.training = mode
        for p, flag in self.grads:
            p.requires_grad_(flag)


class TrackingEvaluationCallback(pl.Callback):
    """Track and evaluate the val videos with every cue every N validations (see the module docstring).

    posetrack_root: the official PoseTrack layout (``ROOT/annotations/<split>/*.json``), or a function
    returning it (resolved at ``setup``, after the datamodule has prepared its data). config: the tracking
    config (``boxes`` and the thresholds; its ``cue`` is ignored: ``cues`` lists them). models: the fixed
    networks, ``pose`` (for boxes gt / detections), ``corr`` (recovery only) and ``reid`` (the reid cue);
    the corr cue always uses the module's nets. skipped: {cue: why} for cues left out (logged once).
    detections: a detection file or folder (default ``ROOT/detections/<split>/``). progress: tqdm bars over
    videos and frames (in a training run only when the trainer shows its own progress bar)."""

    def __init__(self, posetrack_root: str | Path | Callable[[], str | Path], config: TrackingConfig,
                 cues: Iterable[str] = CUES, every_n_validations: int = 1, split: str = "val",
                 max_videos: int | None = None, max_frames: int | None = None, models: Models | None = None,
                 detections: str | Path | None = None, skipped: Mapping[str, str] | None = None,
                 progress: bool = True):
        cues = list(dict.fromkeys(cues))
        bad = [c for c in cues if c not in CUES]
        if bad:
            raise TrackEvalSetupError(f"track_eval.cues: unknown cue(s) {bad} (choose from {', '.join(CUES)})")
        if int(every_n_validations) < 1:
            raise TrackEvalSetupError(f"track_eval.every_n_validations={every_n_validations}: must be >= 1")
        for key, v in (("max_videos", max_videos), ("max_frames", max_frames)):
            if v is not None and int(v) < 1:
                raise TrackEvalSetupError(f"track_eval.{key}={v}: must be >= 1 or null")
        self.skipped = dict(skipped or {})
        self.cues = [c for c in cues if c not in self.skipped]
        self.posetrack_root = posetrack_root
        self.config = config
        self.every = int(every_n_validations)
        self.split = split
        self.max_videos = None if max_videos is None else int(max_videos)
        self.max_frames = None if max_frames is None else int(max_frames)
        self.models = models or Models()
        if config.boxes != "gt-poses" and self.cues and self.models.pose is None:
            raise TrackEvalSetupError(f"track_eval.boxes={config.boxes} needs a pose estimator (track_eval.pose_ckpt)")
        if "reid" in self.cues and self.models.reid is None:
            raise TrackEvalSetupError("track_eval.cues has reid but no re-ID model was given (track_eval.reid_ckpt)")
        if config.recovery and config.boxes != "gt-poses" and self.models.corr is None:
            self.config = config = config.replace(recovery=False)      # no recovery net: recovery is off
        self.detections = detections
        self.progress = progress
        self.validations = 0                                     # validations seen in this fit (no sanity checks)
        self.videos: list[Video] | None = None
        self.root: Path | None = None
        self.base_caches: dict[str, Any] = {}                    # video name -> precomputation without corr
        self.fixed_rows: dict[str, dict[str, float]] = {}        # cue -> row, for the cues that do not train
        self.history: list[list[Any]] = []                       # W&B table rows of every evaluation
        self.last: dict[str, dict[str, float]] | None = None     # the last evaluation's table (every rank)
        self.last_predictions: dict[str, dict] = {}              # cue -> {video: Sequence} (rank 0)
        self.seconds: dict[str, float] = {}                      # time of the last evaluation by part (rank 0)

    # ------------------------------------------------------------------------------------- configuration
    @classmethod
    def from_config(cls, section: Mapping[str, Any], posetrack_root: str | Path | Callable[[], str | Path],
                    fast_dev_run: bool = False, weights_dir: str | Path | None = None,
                    output_root: str | Path | None = None) -> "TrackingEvaluationCallback | None":
        """The callback of a ``track_eval`` config section (experiments/configs/siamese.yaml), or None when
        it is disabled or no cue can run. Loads the fixed networks on the CPU (moved to the module's device
        at the first evaluation); raises :class:`TrackEvalSetupError` (one line naming the key) for a
        configured checkpoint that is missing or of the wrong stage. ``weights_dir``: where the shipped
        weights are looked for (default ``weights/``); ``output_root``: where ``latest`` looks for runs."""
        s = dict(section)
        if not s.get("enabled", False):
            return None
        tracking = dict(s.get("tracking") or {})
        for key in ("cue", "boxes"):
            if key in tracking:
                raise TrackEvalSetupError(f"track_eval.tracking.{key}: set track_eval."
                                          f"{'cues' if key == 'cue' else 'boxes'} instead")
        try:
            config = TrackingConfig.from_dict({**tracking, "boxes": s.get("boxes", "gt-poses")})
        except ValueError as e:
            raise TrackEvalSetupError(f"track_eval.tracking: {e}") from None
        cues = list(s.get("cues") or CUES)
        models, skipped = load_fixed_models(config, cues, s.get("pose_ckpt"), s.get("reid_ckpt"),
                                            s.get("recovery_ckpt"), weights_dir, output_root)
        for what, why in skipped.items():
            print(f"[corrtrack] track_eval: {why}")
        if "pose" in skipped:
            return None
        max_videos, max_frames = s.get("max_videos"), s.get("max_frames")
        if fast_dev_run:
            max_videos = min(max_videos or FAST_DEV_RUN_LIMITS[0], FAST_DEV_RUN_LIMITS[0])
            max_frames = min(max_frames or FAST_DEV_RUN_LIMITS[1], FAST_DEV_RUN_LIMITS[1])
        cb = cls(posetrack_root, config, cues=cues, every_n_validations=1 if fast_dev_run else
                 int(s.get("every_n_validations", 1)), split=str(s.get("split", "val")), max_videos=max_videos,
                 max_frames=max_frames, models=models, detections=s.get("detections"),
                 skipped={"reid": skipped["reid"]} if "reid" in skipped else None)
        return cb if cb.cues else None

    # --------------------------------------------------------------------------------------- Lightning hooks
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Load the videos on every rank (a bad annotation file then fails on all of them alike)."""
        if not trainer.is_global_zero:
            self.models = Models()                                     # only rank 0 tracks
        self.prepare()

    def prepare(self) -> None:
        """Resolve the PoseTrack root and load (and cut) the videos, once. Raises TrackingInputError."""
        if self.videos is not None:
            return
        root = self.posetrack_root() if callable(self.posetrack_root) else self.posetrack_root
        self.root = Path(root)
        # images are checked as they are read: a missing frame costs one skipped evaluation, not the run
        videos = load_videos(self.root, self.split, self.max_videos, check_images=False)
        self.videos = [truncate_video(v, self.max_frames) for v in videos]

    def state_dict(self) -> dict[str, Any]:
        return {"validations": self.validations}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.validations = int(state_dict.get("validations", 0))

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self.validations += 1
        if (self.validations - 1) % self.every:
            return
        payload: dict[str, Any] | None = None
        if trainer.is_global_zero:
            show, self.progress = self.progress, self.progress and trainer.progress_bar_callback is not None
            try:
                t0 = time.perf_counter()
                table = self.evaluate(pl_module)
                payload = {"table": table, "seconds": time.perf_counter() - t0}
            except (TrackingInputError, OSError) as e:       # input trouble: warn, keep training
                payload = {"warning": f"track_eval: evaluation at epoch {trainer.current_epoch} skipped: {e}"}
            except Exception as e:                            # a bug: every rank stops together
                payload = {"error": f"{type(e).__name__}: {e}"}
                log.exception("track_eval failed")
            finally:
                self.progress = show
        payload = trainer.strategy.broadcast(payload, src=0)
        if "error" in payload:
            raise RuntimeError(f"track_eval failed on rank 0: {payload['error']}")
        if "warning" in payload:
            log.warning(payload["warning"])
            return
        table = payload["table"]
        self.last = table
        for cue, row in table.items():
            for m in METRICS:
                v = row.get(m)
                if v is not None and math.isfinite(float(v)):
                    pl_module.log(f"track/{cue}/{m}", float(v), sync_dist=False)
        pl_module.log("perf/track_eval_s", float(payload["seconds"]), sync_dist=False)
        if trainer.is_global_zero:
            self._log_table(trainer, table)
            print(format_table(table, f"[corrtrack] tracking evaluation, epoch {trainer.current_epoch} "
                                      f"({len(self.videos or [])} video(s), boxes={self.config.boxes}, "
                                      f"{payload['seconds']:.1f} s)"))

    # ------------------------------------------------------------------------------------------ the work
    def evaluate(self, pl_module: torch.nn.Module) -> dict[str, dict[str, float]]:
        """Track the videos with every cue and evaluate them: {cue: {"idsw", "mota", "map", "hota", ...}}
        (``corrtrack.tracking.pipeline.evaluate_cues``'s rows). The first call precomputes what does not
        train (and evaluates those cues); later calls run only the corr part with the module's nets."""
        if self.videos is None:
            raise RuntimeError("TrackingEvaluationCallback.evaluate before setup()")
        device = next(pl_module.parameters()).device
        sec: dict[str, float] = {}
        t0 = time.perf_counter()
        fixed = [c for c in self.cues if c != "corr"]
        if not self.base_caches:
            self._precompute_fixed(fixed, device)
            sec["fixed"] = time.perf_counter() - t0
        retrack = fixed if self.config.merge else []           # the merge runs the trained net: re-track
        todo = (["corr"] if "corr" in self.cues else []) + retrack
        t1 = time.perf_counter()
        table: dict[str, dict[str, float]] = {}
        if todo:
            with preserved_modes(pl_module):
                corr = correspondence_model(pl_module, self.config.input_size, device)
                preds: dict[str, dict] = {c: {} for c in todo}
                for video, _, results in track_videos(self.videos, self.config, Models(corr=corr), todo,
                                                      progress=self.progress, caches=self.base_caches):
                    for c, res in results.items():
                        preds[c][video.name] = res.to_sequence()
            sec["track"] = time.perf_counter() - t1
            t2 = time.perf_counter()
            table = evaluate_cues(self.videos, preds, hota=True)
            sec["evaluate"] = time.perf_counter() - t2
            self.last_predictions.update(preds)
        self.seconds = sec
        return {c: table[c] if c in table else self.fixed_rows[c] for c in self.cues}

    def _precompute_fixed(self, fixed: list[str], device: torch.device) -> None:
        """Candidates (and recovery), flow and re-ID of every video, once; the fixed cues' rows."""
        models = Models(pose=self.models.pose, corr=self.models.corr, reid=self.models.reid)
        for m in (models.pose, models.corr, models.reid):
            _to_device(m, device)
        detections = None
        if self.config.boxes == "detections":
            from corrtrack.posetrack import load_detections
            from corrtrack.tracking.candidates import detection_file_for

            files: dict[Path, dict] = {}

            def detections(video: Video) -> dict:
                path = detection_file_for(video.name, self.detections, self.root, self.split)
                if path not in files:
                    files[path] = load_detections(path, self.config.detection_min_score)
                return files[path]

        preds: dict[str, dict] = {c: {} for c in fixed}
        caches = {}
        for video, cache, results in track_videos(self.videos, self.config, models, fixed, detections=detections,
                                                  progress=self.progress):
            caches[video.name] = cache
            for c, res in results.items():
                preds[c][video.name] = res.to_sequence()
        if fixed and not self.config.merge:
            self.fixed_rows = evaluate_cues(self.videos, preds, hota=True)
            self.last_predictions.update(preds)
        self.base_caches = caches

    def _log_table(self, trainer: pl.Trainer, table: Mapping[str, Mapping[str, float]]) -> None:
        for cue, row in table.items():
            self.history.append([trainer.current_epoch, trainer.global_step, cue, row.get("idsw"), row.get("mota"),
                                 row.get("map"), row.get("hota"), row.get("assa")])
        for lg in trainer.loggers:
            if isinstance(lg, WandbLogger):
                try:
                    lg.log_table(key="track/table", columns=TABLE_COLUMNS, data=[list(r) for r in self.history],
                                 step=trainer.global_step)
                except Exception as e:                         # a table must never kill a run
                    log.warning("track_eval: W&B table not logged: %r", e)


def _to_device(model: Any, device: torch.device) -> None:
    """Move a fixed tracking network (``PoseEstimator``, ``CorrespondenceModel``, re-ID embedder: each holds
    its nets as attributes and its ``device``) to ``device``."""
    if model is None or torch.device(device) == getattr(model, "device", None):
        return
    for net in vars(model).values():
        if isinstance(net, torch.nn.Module):
            net.to(device)
    model.device = torch.device(device)


def load_fixed_models(config: TrackingConfig, cues: list[str], pose_ckpt: str | None, reid_ckpt: str | None,
                      recovery_ckpt: str | None, weights_dir: str | Path | None = None,
                      output_root: str | Path | None = None) -> tuple[Models, dict[str, str]]:
    """The networks that do not train, on the CPU: pose estimator (boxes gt / detections), recovery net,
    re-ID net (reid cue). A configured checkpoint (a file, a run folder, or ``latest``: the newest run
    under ``output_root``) must exist and load, else :class:`TrackEvalSetupError` naming the key; a null
    key takes the shipped weights (``corrtrack.weights.shipped``), and when those are missing the network
    is skipped. Returns (Models, {"pose" | "reid" | "recovery": one line on what is missing and skipped})."""
    from corrtrack import weights
    from corrtrack.tracking.models import FLAGS, load_corr, load_pose, load_reid, resolve_weights

    weights_dir = Path(weights_dir) if weights_dir is not None else weights.WEIGHTS_DIR
    models, skipped = Models(), {}
    wants = {"pose": config.boxes != "gt-poses",
             "recovery": config.boxes != "gt-poses" and config.recovery,
             "reid": "reid" in cues}
    # kind -> (config key, shipped role, the tracking loaders' name of the net)
    what = {"pose": ("pose_ckpt", "pose", "pose"), "recovery": ("recovery_ckpt", "correspondence", "corr"),
            "reid": ("reid_ckpt", "reid", "reid")}
    consequence = {"pose": f"every cue is skipped (boxes={config.boxes} needs a pose estimator; boxes=gt-poses "
                           "does not)", "recovery": "recovery is off", "reid": "the reid cue is skipped"}
    given = {"pose": pose_ckpt, "recovery": recovery_ckpt, "reid": reid_ckpt}
    for kind, wanted in wants.items():
        if not wanted:
            continue
        key, role, net = what[kind]
        try:
            if given[kind] is None:
                try:
                    path = weights.shipped(role, weights_dir)
                except weights.WeightsError:
                    skipped[kind] = (f"no track_eval.{key} given and no shipped {role} weights "
                                     f"({weights_dir / (role + '.ckpt')} missing): {consequence[kind]}")
                    continue
            else:
                path = resolve_weights(net, given[kind], output_root)
            if kind == "pose":
                models.pose = load_pose(Path(path))
            elif kind == "recovery":
                models.corr = load_corr(Path(path), config.input_size)
            else:
                models.reid = load_reid(Path(path))
        except TrackingInputError as e:
            msg = str(e).replace(FLAGS[net], f"track_eval.{key}")
            raise TrackEvalSetupError(msg if msg.startswith("track_eval.") else f"track_eval.{key}: {msg}") from None
    return models, skipped
