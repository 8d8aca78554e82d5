"""Stage ``reid``: the person re-ID net of the tracker's ``reid`` cue (paper §6.2's re-ID baseline,
trained here with the strong-baseline recipe since no pretrained re-ID model can be downloaded).

Crops and identities come from the PoseTrack-format training videos (``datamodules.reid``); the number
of training identities sizes the classifier. ``model.pretrained`` initialises the net from a local file:
for ``bninception`` ImageNet BN-Inception weights (``corrtrack.nets.load_pretrained``), for ``resnet50`` a
torchvision ImageNet ResNet-50 or a re-ID ResNet-50 state dict (``corrtrack.reid.load_resnet50_weights``;
a classifier of another size is skipped). Nothing is downloaded.
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from experiments.stages import StageParts


def _plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node or {})


def build(cfg: DictConfig, run_dir: Path) -> StageParts:
    from datamodules.reid import ReIDDataModule
    from lightning_modules.reid import ReIDModule

    if cfg.stage != "reid":
        raise ValueError(f"experiments.stages.reid builds 'reid', not {cfg.stage!r}")
    dm = ReIDDataModule(cfg.data, seed=int(cfg.seed))
    dm.prepare_data()
    dm.setup("fit")
    net = _plain(cfg.model.net)
    net["num_classes"] = dm.num_classes
    if net.get("arch") == "resnet50":
        net = {k: net[k] for k in ("arch", "num_classes", "last_stride")}   # width / last: BN-Inception only
    module = ReIDModule(net=net, input_size=[int(v) for v in cfg.data.input_size], padding=float(cfg.data.padding),
                        loss=_plain(cfg.loss), optim=_plain(cfg.optim))
    if cfg.model.pretrained:
        _load_pretrained(module.net, str(cfg.model.pretrained), net["arch"])
    print(f"[corrtrack] reid: {dm.num_classes} training identities ({len(dm.train_set)} crops); validation on "
          f"{dm.val_set.num_identities if dm.val_set else 0} held-out identities ({len(dm.val_set or [])} crops) "
          f"of {len(dm.val_videos)} videos")
    return StageParts(module=module, datamodule=dm)


def _load_pretrained(net, path: str, arch: str) -> None:
    if arch == "resnet50":
        import torch

        from corrtrack.reid import load_resnet50_weights

        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"pretrained weights not found: {p}")
        obj = torch.load(p, map_location="cpu", weights_only=False)
        state = obj.get("state_dict", obj) if isinstance(obj, dict) else obj
        res = load_resnet50_weights(net, state, source=str(p))
    else:
        from corrtrack.nets.utils import load_pretrained

        res = load_pretrained(net.trunk, path)
    print(f"[corrtrack] reid: {len(res['loaded'])} tensors loaded from {path}")
