"""Stages ``siamese`` and ``refine``: the correspondence network (paper §4, SPEC §1).

``siamese`` trains SiameseModule on affine pairs; ``refine`` loads a Siamese checkpoint
(``model.siamese_ckpt``: a checkpoint, a run folder, or ``latest`` = the best checkpoint of the newest
siamese run under ``output_root``), freezes it and trains RefinementModule. Both read pairs from
``PairDataModule``.
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from experiments.stages import StageParts


def _plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node or {})


def build(cfg: DictConfig, run_dir: Path) -> StageParts:
    from datamodules.pairs import PairDataModule

    common = dict(input_size=int(cfg.data.input_size), stride=int(cfg.data.stride),
                  optim=_plain(cfg.optim), loss=_plain(cfg.loss), vis=_plain(cfg.vis),
                  joint_layout=str(cfg.data.train_format))
    m = cfg.model
    if cfg.stage == "siamese":
        from corrtrack.nets.utils import load_pretrained
        from lightning_modules.siamese import SiameseModule

        module = SiameseModule(net={"siamese": {"variant": m.variant, "width": float(m.width),
                                                "feat_channels": int(m.feat_channels),
                                                "normalize": m.normalize, "descriptor": m.descriptor},
                                    "refinement": None}, **common)
        if m.pretrained:
            load_pretrained(module.siamese.backbone, m.pretrained)
    elif cfg.stage == "refine":
        from experiments.run import resolve_checkpoint
        from lightning_modules.refine import RefinementModule

        spec = m.siamese_ckpt
        if spec not in (None, "", "latest") and Path(spec).is_dir():   # a run folder: its best checkpoint
            from corrtrack.correspondence import resolve_checkpoint_path
            ckpt = resolve_checkpoint_path(spec)
        else:
            ckpt = resolve_checkpoint(spec, cfg.output_root, "siamese")
        print(f"[corrtrack] refine: frozen Siamese stage from {ckpt}")
        module = RefinementModule.from_siamese_checkpoint(ckpt, refinement={"width": float(m.width), "residual": bool(m.residual)},
                                                          pretrained=m.pretrained, **common)
    else:
        raise ValueError(f"this builder serves 'siamese' and 'refine', not {cfg.stage!r}")
    module.figure_dir = Path(run_dir) / "figures"
    return StageParts(module=module, datamodule=PairDataModule(cfg.data, seed=int(cfg.seed)))
