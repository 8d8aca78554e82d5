"""Stages ``pose`` and ``finetune``: the top-down pose estimator (paper §6.1; docs/method.md §2).

``pose`` trains PoseEstimatorModule on COCO-format crops (``data.train_format: coco``). ``finetune``
starts from a pose checkpoint (``model.init_ckpt``: a path, or ``latest`` = the best checkpoint of the
newest ``pose`` run under ``output_root``) and trains on PoseTrack-format crops with the PoseTrack
layout (slots 1/2 = head_bottom/head_top, flip permutation of that layout). The network architecture
of a fine-tuning run is the initial checkpoint's (a differing ``model.net`` is reported and ignored).
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from experiments.stages import StageParts


def build(cfg: DictConfig, run_dir: Path) -> StageParts:
    from callbacks.figures import PoseFigure
    from datamodules.topdown import TopDownDataModule
    from corrtrack.pose import DEFAULT_VOTE_RADIUS
    from lightning_modules.pose import PoseEstimatorModule

    if cfg.stage not in ("pose", "finetune"):
        raise ValueError(f"experiments.stages.pose builds 'pose' and 'finetune', not {cfg.stage!r}")
    m = cfg.model
    net_kwargs = OmegaConf.to_container(m.net, resolve=True)
    init = None
    if m.init_ckpt:
        from corrtrack import checkpoints

        init = checkpoints.load(str(m.init_ckpt), cfg.output_root, "pose", accept=("pose", "finetune"),
                                what="model.init_ckpt")
        ck_net = init.hparams.get("net")
        if isinstance(ck_net, dict) and ck_net != net_kwargs:
            print(f"[corrtrack] {cfg.stage}: using the initial checkpoint's network {ck_net} "
                  f"(config model.net {net_kwargs} ignored)")
            net_kwargs = ck_net
    module = PoseEstimatorModule(
        net=net_kwargs, layout=str(m.layout), input_size=[int(v) for v in cfg.data.input_size],
        padding=float(cfg.data.padding), lr=float(cfg.optim.lr), weight_decay=float(cfg.optim.weight_decay),
        milestones=[int(v) for v in cfg.optim.milestones], gamma=float(cfg.optim.gamma),
        heatmap_weight=float(m.loss.heatmap_weight), offset_weight=float(m.loss.offset_weight),
        stage_weights=[float(v) for v in m.loss.stage_weights], flip_test=bool(m.flip_test),
        vote_radius=float(m.get("vote_radius", DEFAULT_VOTE_RADIUS)),
        oks_nms=None if cfg.val.oks_nms is None else float(cfg.val.oks_nms), stage=str(cfg.stage))
    if init is not None:
        checkpoints.load_weights(module.net, init, "net.", what="model.init_ckpt")
        print(f"[corrtrack] {cfg.stage}: initialised from {init.path}")
    elif m.pretrained:
        from corrtrack.nets.utils import load_pretrained

        res = load_pretrained(module.net.stage1, m.pretrained)
        print(f"[corrtrack] {cfg.stage}: stage-1 trunk: {len(res['loaded'])} tensors loaded from "
              f"{m.pretrained}")
    dm = TopDownDataModule(cfg.data, layout=str(m.layout), stride=int(module.net.stride),
                           target_kind=str(m.target.kind), radius=float(m.target.radius),
                           unlabeled_weight=float(m.target.unlabeled_weight), seed=int(cfg.seed))
    figure = PoseFigure(Path(run_dir) / "figures", cfg.stage, int(cfg.figures.every_n_validations),
                        int(cfg.figures.samples))
    return StageParts(module=module, datamodule=dm, callbacks=[figure])


def evaluate_checkpoint(ckpt: str | Path, overrides: list[str] | None = None, untrained: bool = False,
                        flip_test: bool | None = None, layout: str | None = None, seed: int = 0,
                        vote_radius: float | None = None) -> dict[str, float]:
    """COCO keypoint AP of a pose checkpoint on its run's validation set, through the inference API
    (``PoseEstimator.estimate`` on whole images with GT boxes, or ``data.det_file`` detections).

    The data config is the run's ``config.yaml`` (next to ``checkpoints/``) with ``overrides``
    (``key=value``) applied. ``untrained=True`` evaluates a freshly initialised network of the same
    architecture (seeded), the baseline a trained one must beat. ``layout`` evaluates in another
    keypoint layout than the checkpoint's (e.g. a COCO-trained net on PoseTrack GT before fine-tuning)."""
    import numpy as np
    import torch

    from corrtrack.nets.pose import PoseNet
    from corrtrack.oks import oks_nms
    from corrtrack.pose import PoseEstimator, pose_score
    from corrtrack.evaluation.coco import coco_keypoint_eval
    from corrtrack.imageio import read_rgb
    from corrtrack.posetrack import load_detections
    from datamodules.topdown import TopDownDataModule

    ckpt = Path(ckpt)
    cfg_path = ckpt.resolve().parent.parent / "config.yaml"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path}: the run config next to the checkpoint is missing")
    cfg = OmegaConf.load(cfg_path)
    if overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    kw = {} if flip_test is None else {"flip_test": flip_test}
    if layout is not None:
        kw["layout"] = layout
    if vote_radius is not None:
        kw["vote_radius"] = vote_radius
    est = PoseEstimator.from_checkpoint(ckpt, **kw)
    if untrained:
        torch.manual_seed(seed)
        est = PoseEstimator(PoseNet(**est.net.kwargs), input_size=est.input_size, flip_test=est.flip_test,
                            layout=est.layout, padding=est.padding, vote_radius=est.vote_radius)
    dm = TopDownDataModule(cfg.data, layout=est.layout, stride=int(est.net.stride))
    dm.setup("validate")
    records = dm.val_set.records
    if cfg.data.get("det_file"):
        dets = load_detections(cfg.data.det_file, float(cfg.data.det_min_score))
        rows = [dets.get(r.image_id, np.zeros((0, 5))) for r in records]
        boxes = [d[:, :4] for d in rows]
        box_scores = [d[:, 4] for d in rows]
    else:
        boxes = [np.asarray(r.boxes, np.float64) for r in records]
        box_scores = [np.ones(len(b)) for b in boxes]
    sigmas = dm.sigmas
    results = []
    for r, b, s in zip(records, boxes, box_scores):
        poses = est.estimate([read_rgb(r.path)], [b])[0]
        scores = pose_score(poses, s)
        keep = np.arange(len(poses))
        if cfg.get("val", {}).get("oks_nms") is not None and len(poses):
            keep = oks_nms(poses, scores, sigmas, oks_threshold=float(cfg.val.oks_nms))
        results += [{"image_id": int(r.image_id), "category_id": 1,
                     "keypoints": poses[i].reshape(-1).tolist(), "score": float(scores[i])} for i in keep]
    return coco_keypoint_eval(dm.coco_gt, results, sigmas, image_ids=[r.image_id for r in records])


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m experiments.stages.pose",
                                description="COCO keypoint AP of a pose checkpoint on its validation set "
                                            "(through corrtrack.pose.PoseEstimator)")
    p.add_argument("ckpt", help="a pose/finetune checkpoint (.ckpt)")
    p.add_argument("overrides", nargs="*",
                   help="key=value changes to the run's config (e.g. data.det_file=...)")
    p.add_argument("--untrained", action="store_true", help="evaluate a freshly initialised network instead")
    p.add_argument("--no-flip", action="store_true", help="no flip test")
    p.add_argument("--vote-radius", type=float, default=None,
                   help="decoding: votes of the cells within this many output cells of the heatmap argmax "
                        "(0: the argmax cell alone; default: the checkpoint's, 2 for older ones)")
    p.add_argument("--layout", choices=("coco", "posetrack"),
                   help="evaluate in this layout (default: the checkpoint's)")
    args = p.parse_args(argv)
    stats = evaluate_checkpoint(args.ckpt, args.overrides, untrained=args.untrained,
                                flip_test=False if args.no_flip else None, layout=args.layout,
                                vote_radius=args.vote_radius)
    print(json.dumps({k: round(v, 4) for k, v in stats.items()}))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
