"""Checkpoints of the training stages, found, read and turned into networks without Lightning.

A checkpoint is named by a *spec*:

- ``latest`` (or empty): the newest run of a stage under an output root, i.e. the run folder that
  ``<output_root>/<stage>/latest`` points to;
- a run folder ``<output_root>/<stage>/<run_id>/``: its best checkpoint, else its last one (as its
  ``summary.json`` records them), else ``checkpoints/last.ckpt``, else the newest ``checkpoints/*.ckpt``;
- a ``.ckpt`` file.

Every Lightning checkpoint the project writes is self-describing: ``hyper_parameters`` holds the
networks' constructor kwargs under ``net`` and the stage that trained it under ``stage``; the networks'
weights are the ``state_dict`` entries under the LightningModule attribute's prefix (``net.`` for the
pose estimator, ``siamese.`` / ``refinement.`` for the correspondence stages). Checkpoints written before
the ``stage`` key existed are recognised from their ``net`` entry (see :func:`stage_of`).

Errors are one line naming the file (and, given ``what``, the config key the checkpoint came from):
:class:`CheckpointNotFoundError` (also a ``FileNotFoundError``) when nothing is there,
:class:`CheckpointError` (a ``ValueError``) when the file is truncated, corrupt, not a Lightning
checkpoint, or from another stage than the one asked for.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

#: every training stage, and the family it belongs to: a checkpoint of one family holds the same nets
STAGE_FAMILY: dict[str, str] = {"pose": "pose", "finetune": "pose", "siamese": "correspondence",
                                "refine": "correspondence", "reid": "reid"}


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message names the file (and the config key, when known)."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint where the spec points."""


def plain(obj: Any) -> Any:
    """Dict-like and list-like containers (omegaconf nodes, Lightning's ``AttributeDict``, tuples) ->
    plain dicts and lists, recursively; other values unchanged."""
    if isinstance(obj, Mapping) or (hasattr(obj, "items") and hasattr(obj, "keys")):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)):
        return [plain(v) for v in obj]
    return obj


def _prefix(what: str | None) -> str:
    return f"{what}: " if what else ""


# ------------------------------------------------------------------------------------------ resolving

def latest_run(output_root: str | Path, stage: str, what: str | None = None) -> Path:
    """The run folder ``<output_root>/<stage>/latest`` points to. Raises CheckpointNotFoundError."""
    link = Path(output_root) / stage / "latest"
    if not link.exists():
        raise CheckpointNotFoundError(
            f"{_prefix(what)}no '{stage}' run found under {Path(output_root) / stage} (no 'latest' link); "
            f"train that stage first (make train-{stage}) or give a checkpoint path")
    return link.resolve()


def run_checkpoint(run_dir: str | Path, what: str | None = None) -> Path:
    """The checkpoint of a run folder: ``summary.json``'s best, else its last, else
    ``checkpoints/last.ckpt``, else the newest ``checkpoints/*.ckpt``. A checkpoint recorded in the
    summary is looked up by name under this folder's ``checkpoints/`` first, so a copied or moved run
    folder uses its own files, then at the recorded path."""
    run = Path(run_dir)
    summary = run / "summary.json"
    if summary.is_file():
        try:
            s = json.loads(summary.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{_prefix(what)}{summary}: not valid JSON ({e})") from None
        if not isinstance(s, dict):
            raise CheckpointError(f"{_prefix(what)}{summary}: expected a JSON object")
        for key in ("best_checkpoint", "last_checkpoint"):
            if s.get(key):
                recorded = Path(str(s[key]))
                for cand in (run / "checkpoints" / recorded.name, recorded):
                    if cand.is_file():
                        return cand
    last = run / "checkpoints" / "last.ckpt"
    if last.is_file():
        return last
    ckpts = sorted((run / "checkpoints").glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    if ckpts:
        return ckpts[-1]
    raise CheckpointNotFoundError(f"{_prefix(what)}run folder {run} has no checkpoint (no summary.json "
                                  f"entry, no checkpoints/*.ckpt)")


def resolve(spec: str | Path | None, output_root: str | Path | None = None, stage: str | None = None,
            what: str | None = None) -> Path:
    """The ``.ckpt`` file a spec names (see the module docstring). ``latest`` needs ``output_root`` and
    the ``stage`` whose newest run is meant. ``what`` (e.g. ``"model.siamese_ckpt"``) prefixes errors."""
    if spec is None or str(spec) in ("", "latest"):
        if output_root is None or stage is None:
            raise CheckpointError(f"{_prefix(what)}'latest' needs an output root and a stage")
        return run_checkpoint(latest_run(output_root, stage, what), what)
    path = Path(spec).expanduser()
    if path.is_dir():
        return run_checkpoint(path, what)
    if path.is_file():
        return path
    raise CheckpointNotFoundError(f"{_prefix(what)}checkpoint not found: {path}")


# ------------------------------------------------------------------------------------------ reading

def read(path: str | Path, what: str | None = None) -> dict:
    """The content of a Lightning checkpoint file (on the CPU). Raises CheckpointNotFoundError when the
    file is missing, CheckpointError when it is truncated, corrupt or not a Lightning checkpoint."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"{_prefix(what)}checkpoint not found: {path}")
    try:
        # trusted local files: Lightning stores hyper-parameters as Python objects (AttributeDict)
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # zip/pickle errors of a truncated or foreign file
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{_prefix(what)}{path}: cannot read the checkpoint, the file is truncated or "
                              f"corrupt ({type(e).__name__}: {reason[:160]})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), Mapping):
        raise CheckpointError(f"{_prefix(what)}{path}: not a Lightning checkpoint (no 'state_dict')")
    return ckpt


def _correspondence_net(hp: Any) -> dict | None:
    """The ``{"siamese": ..., "refinement": ...}`` kwargs, wherever in the hyper-parameters they sit."""
    if not isinstance(hp, dict):
        return None
    net = hp.get("net")
    if isinstance(net, dict) and ("siamese" in net or "refinement" in net):
        return net
    for v in hp.values():
        found = _correspondence_net(v)
        if found is not None:
            return found
    return None


def _has_prefix(state_dict: Mapping, prefix: str) -> bool:
    return any(str(k).startswith(prefix) for k in state_dict)


def stage_of(ckpt: Mapping) -> str | None:
    """The stage that wrote a checkpoint (its content, as :func:`read` returns it): the explicit
    ``hyper_parameters["stage"]``; for older checkpoints without it, from the nets: ``siamese`` /
    ``refine`` (a ``net`` with ``siamese`` kwargs; ``refine`` when refinement weights are there too),
    ``reid`` (a ``net`` with ``reid`` kwargs), ``pose`` (PoseNet kwargs and ``net.`` weights; a
    fine-tuning run's old checkpoint reads as ``pose``, the same family). None: not recognised."""
    hp = plain(ckpt.get("hyper_parameters") or {})
    if isinstance(hp.get("stage"), str) and hp["stage"]:
        return hp["stage"]
    sd = ckpt.get("state_dict") or {}
    corr = _correspondence_net(hp)
    if corr is not None:
        refine = corr.get("refinement") is not None and _has_prefix(sd, "refinement.")
        return "refine" if refine else "siamese"
    net = hp.get("net")
    if isinstance(net, dict) and "reid" in net:
        return "reid"
    if isinstance(net, dict) and _has_prefix(sd, "net."):
        return "pose"
    return None


@dataclass
class Checkpoint:
    """A read checkpoint: its file, the stage that wrote it (None: unknown), its hyper-parameters as
    plain dicts, its ``state_dict`` and the training position it was saved at."""
    path: Path
    stage: str | None
    hparams: dict
    state_dict: Mapping[str, Any]
    epoch: int | None = None
    global_step: int | None = None
    stage_explicit: bool = False
    raw: dict = field(default_factory=dict, repr=False)

    def weights(self, prefix: str) -> dict[str, Any]:
        """The ``state_dict`` entries under ``prefix`` (e.g. ``"siamese."``), the prefix removed."""
        return {k[len(prefix):]: v for k, v in self.state_dict.items() if k.startswith(prefix)}

    @property
    def family(self) -> str | None:
        return STAGE_FAMILY.get(self.stage or "")


def check_stage(ck: Checkpoint, accepted: Iterable[str], what: str | None = None) -> str:
    """Raise CheckpointError unless ``ck`` comes from one of the ``accepted`` stages. A checkpoint
    without the explicit ``stage`` key is judged by its family (an old fine-tuning checkpoint reads as
    ``pose``). Returns the stage."""
    accepted = list(accepted)
    ok = ck.stage in accepted or (not ck.stage_explicit and ck.family is not None
                                  and ck.family in {STAGE_FAMILY.get(a) for a in accepted})
    if not ok:
        found = (f"a '{ck.stage}' checkpoint" if ck.stage else
                 "not a checkpoint of a corrtrack training stage (no 'stage' nor 'net' in hyper_parameters)")
        need = " or ".join(f"'{a}'" for a in accepted)
        raise CheckpointError(f"{_prefix(what)}{ck.path} is {found}; a {need} checkpoint is needed here")
    return ck.stage


def load(spec: str | Path | None, output_root: str | Path | None = None, stage: str | None = None,
         accept: Iterable[str] | None = None, what: str | None = None) -> Checkpoint:
    """Resolve ``spec`` (``latest`` = the newest run of ``stage`` under ``output_root``), read it, and
    check that it comes from one of the ``accept`` stages (default: any)."""
    path = resolve(spec, output_root, stage, what)
    raw = read(path, what)
    hp = plain(raw.get("hyper_parameters") or {})
    ck = Checkpoint(path=path, stage=stage_of(raw), hparams=hp if isinstance(hp, dict) else {},
                    state_dict=raw["state_dict"], epoch=raw.get("epoch"), global_step=raw.get("global_step"),
                    stage_explicit=isinstance(hp, dict) and bool(hp.get("stage")), raw=raw)
    if accept is not None:
        check_stage(ck, accept, what)
    return ck


# ------------------------------------------------------------------------------------------ networks

def load_weights(net, ck: Checkpoint, prefix: str, what: str | None = None):
    """Load the ``prefix`` weights of ``ck`` into ``net`` (an ``nn.Module``; strict); returns ``net``.
    A missing prefix or weights that do not fit the network are a CheckpointError."""
    weights = ck.weights(prefix)
    if not weights:
        raise CheckpointError(f"{_prefix(what)}{ck.path}: state_dict has no '{prefix}' weights")
    try:
        net.load_state_dict(weights)
    except RuntimeError as e:  # shape or key mismatch between the kwargs and the weights
        raise CheckpointError(f"{_prefix(what)}{ck.path}: the '{prefix}' weights do not fit the network "
                              f"built from hyper_parameters ({str(e).splitlines()[0][:200]})") from None
    return net


def correspondence_nets(ck: Checkpoint, what: str | None = None):
    """(SiameseNet, RefinementNet or None) of a ``siamese`` / ``refine`` checkpoint: kwargs from
    ``hyper_parameters["net"]``, weights from the ``siamese.`` / ``refinement.`` prefixes."""
    from corrtrack.nets.correspondence import build_refinement, build_siamese

    net = _correspondence_net(ck.hparams)
    if net is None:
        raise CheckpointError(f"{_prefix(what)}{ck.path}: hyper_parameters has no 'net' entry with "
                              f"'siamese'/'refinement' constructor kwargs (is it a '{ck.stage}' checkpoint?)")
    try:
        siamese = build_siamese(net.get("siamese"))
        refinement = build_refinement(net["refinement"]) if net.get("refinement") is not None else None
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{_prefix(what)}{ck.path}: hyper_parameters['net'] does not build the "
                              f"networks ({e})") from None
    load_weights(siamese, ck, "siamese.", what)
    if refinement is not None and ck.weights("refinement."):
        load_weights(refinement, ck, "refinement.", what)
    else:
        refinement = None
    return siamese, refinement


def pose_net(ck: Checkpoint, what: str | None = None):
    """The ``PoseNet`` of a ``pose`` / ``finetune`` checkpoint: kwargs from ``hyper_parameters["net"]``,
    weights from the ``net.`` prefix."""
    from corrtrack.nets.pose import PoseNet

    kwargs = ck.hparams.get("net")
    if not isinstance(kwargs, dict) or "siamese" in kwargs:
        raise CheckpointError(f"{_prefix(what)}{ck.path}: not a pose checkpoint (hyper_parameters has no "
                              f"PoseNet 'net' kwargs)")
    try:
        net = PoseNet(**kwargs)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{_prefix(what)}{ck.path}: hyper_parameters['net'] does not build a PoseNet "
                              f"({e})") from None
    return load_weights(net, ck, "net.", what)


def info(ck: Checkpoint) -> dict[str, Any]:
    """A small summary for logs and results: file, stage, epoch, global step."""
    return {"checkpoint": str(ck.path), "stage": ck.stage, "epoch": ck.epoch, "global_step": ck.global_step}
