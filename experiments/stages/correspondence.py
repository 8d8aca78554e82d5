"""Stages ``siamese`` and ``refine``: the correspondence network (paper §4; docs/method.md §1).

``siamese`` trains SiameseModule on affine pairs; ``refine`` loads a Siamese checkpoint
(``model.siamese_ckpt``: a checkpoint, a run folder, or ``latest`` = the best checkpoint of the newest
siamese run under ``output_root``), freezes it and trains RefinementModule. Both read pairs from
``PairDataModule``.
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from experiments.stages import StageParts


def build(cfg: DictConfig, run_dir: Path) -> StageParts:
    from datamodules.pairs import PairDataModule

    from callbacks.figures import AffinityFigure

    sections = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("optim", "loss")}
    common = dict(input_size=int(cfg.data.input_size), stride=int(cfg.data.stride),
                  joint_layout=str(cfg.data.train_format), **sections)
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
        from corrtrack import checkpoints
        from lightning_modules.refine import RefinementModule

        ckpt = checkpoints.load(m.siamese_ckpt, cfg.output_root, "siamese", accept=("siamese", "refine"),
                                what="model.siamese_ckpt")
        print(f"[corrtrack] refine: frozen Siamese stage from {ckpt.path}")
        module = RefinementModule.from_siamese_checkpoint(
            ckpt, refinement={"width": float(m.width), "residual": bool(m.residual)}, pretrained=m.pretrained,
            **common)
    else:
        raise ValueError(f"this builder serves 'siamese' and 'refine', not {cfg.stage!r}")
    figure = AffinityFigure(Path(run_dir) / "figures", cfg.stage, int(cfg.figures.every_n_validations),
                            int(cfg.figures.samples))
    return StageParts(module=module, datamodule=PairDataModule(cfg.data, seed=int(cfg.seed)),
                      callbacks=[figure, *tracking_callbacks(cfg)])


def tracking_callbacks(cfg: DictConfig) -> list:
    """The tracking evaluation of ``cfg.track_eval`` (callbacks/tracking_eval.py), when enabled."""
    from callbacks.tracking_eval import TrackEvalSetupError, TrackingEvaluationCallback
    from datamodules.sources import dataset_root
    from experiments.config import ConfigError

    try:
        cb = TrackingEvaluationCallback.from_config(
            OmegaConf.to_container(cfg.track_eval, resolve=True),
            posetrack_root=lambda: dataset_root(cfg.data, "posetrack"),   # after the datamodule prepared it
            fast_dev_run=bool(cfg.trainer.fast_dev_run), output_root=cfg.output_root)
    except TrackEvalSetupError as e:
        raise ConfigError(str(e)) from None
    return [cb] if cb is not None else []


def main(argv: list[str] | None = None) -> int:
    """``python -m experiments.stages.correspondence bench-data``: pairs per second of the training data
    pipeline (``datamodules.pairs.benchmark_pipeline``) of a stage config."""
    import argparse

    from datamodules.pairs import benchmark_pipeline
    from experiments.config import load_config

    p = argparse.ArgumentParser(prog="python -m experiments.stages.correspondence",
                                description="pairs per second of the correspondence data pipeline")
    p.add_argument("command", choices=["bench-data"])
    p.add_argument("overrides", nargs="*", help="key=value config changes (e.g. data.input_size=256)")
    p.add_argument("--stage", default="siamese", choices=["siamese", "refine"])
    p.add_argument("--preset", action="append", default=None, help="config preset(s) (default: cpu)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: the config's)")
    p.add_argument("--batches", type=int, default=20)
    args = p.parse_args(argv)
    cfg = load_config(args.stage, args.preset or ["cpu"], args.overrides)
    rate = benchmark_pipeline(cfg, num_workers=args.workers, batches=args.batches)
    print(f"data pipeline ({args.stage}, {'+'.join(args.preset or ['cpu'])}, batch {int(cfg.data.batch_size)}, "
          f"{int(cfg.data.input_size)} px): {rate:.1f} pairs/s")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
