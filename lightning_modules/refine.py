"""RefinementModule: trains the refinement module on a frozen Siamese stage (paper §4.2-4.3, eq. 5).

The Siamese stage comes from a ``SiameseModule`` checkpoint and is frozen explicitly (paper §6.1, module-wise training):
``requires_grad`` off, eval mode (BatchNorm uses and keeps its running statistics), and kept in eval
mode when Lightning calls ``train()``; its forward runs under ``torch.no_grad``. Only the refinement
net is optimised. A RefinementModule checkpoint holds both nets, so it alone rebuilds the full
correspondence model (contract in ``lightning_modules.siamese``).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from corrtrack import checkpoints, correspondence as corr
from corrtrack.keypoints import NUM_JOINTS
from corrtrack.nets.correspondence import RefinementNet, SiameseNet
from corrtrack.nets.utils import load_pretrained
from lightning_modules.siamese import CorrespondenceModule


def freeze(module: torch.nn.Module) -> torch.nn.Module:
    """requires_grad off and eval mode (BatchNorm statistics stay as trained)."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


class RefinementModule(CorrespondenceModule):
    """Refinement net on the frozen Siamese net, trained with eq. 5 (BCE-with-logits, all-zero targets
    for truncated keypoints).

    net: {"siamese": SiameseNet kwargs, "refinement": RefinementNet kwargs (``in_channels`` defaults to
    2 * feat_channels + NUM_JOINTS)}. ``from_siamese_checkpoint`` loads trained Siamese weights; the constructor
    alone builds randomly initialised nets (what ``load_from_checkpoint`` needs before loading weights).
    """

    stage_name = "refine"

    def __init__(self, net: dict | None = None, input_size: int = 256, stride: int = 4,
                 optim: dict | None = None, loss: dict | None = None, joint_layout: str = "coco",
                 siamese_ckpt: str | None = None, stage: str = "refine"):
        # ``stage`` is saved for corrtrack.checkpoints (and handed back by load_from_checkpoint); fixed here
        super().__init__(optim, loss)
        net = dict(net or {})
        self.siamese = freeze(SiameseNet(**dict(net.get("siamese") or {})))
        ref_kwargs = dict(net.get("refinement") or {})
        ref_kwargs.setdefault("in_channels", 2 * self.siamese.feat_channels + NUM_JOINTS)
        self.refinement = RefinementNet(**ref_kwargs)
        self._prior_init(input_size // stride)
        self._save_hparams(input_size, stride, joint_layout, siamese_ckpt=siamese_ckpt)

    def _prior_init(self, side: int) -> None:
        """Start the output logits at the prior of one positive cell per map, log(1 / h*w) (as RetinaNet
        does for rare positives): at zero bias the summed BCE of eq. 5 begins at h*w*log 2 and the
        first epochs only learn to push every cell down."""
        head = getattr(self.refinement, "head", None)
        if self.refinement.residual:
            return  # the logits start at log S, the Siamese answer, already at the prior's level
        if isinstance(head, torch.nn.Conv2d) and head.bias is not None:
            torch.nn.init.constant_(head.bias, -math.log(side * side))

    @classmethod
    def from_siamese_checkpoint(cls, path: str | Path | checkpoints.Checkpoint, refinement: dict | None = None,
                                pretrained: str | None = None, **kwargs) -> "RefinementModule":
        """A RefinementModule whose frozen Siamese net is the one of checkpoint (or run folder, or read
        :class:`corrtrack.checkpoints.Checkpoint`) ``path``, a ``siamese`` or ``refine`` stage checkpoint;
        ``pretrained`` optionally initialises the refinement body from local ImageNet BN-Inception
        weights."""
        ck = path if isinstance(path, checkpoints.Checkpoint) else \
            checkpoints.load(path, accept=("siamese", "refine"))
        siamese, _ = checkpoints.correspondence_nets(ck)
        module = cls(net={"siamese": siamese.config(), "refinement": refinement},
                     siamese_ckpt=str(ck.path), **kwargs)
        module.siamese.load_state_dict(siamese.state_dict())
        if pretrained:
            load_pretrained(module.refinement.body, pretrained)
        return module

    def train(self, mode: bool = True) -> "RefinementModule":
        super().train(mode)
        self.siamese.eval()   # frozen stage: BatchNorm keeps its running statistics
        return self

    def maps(self, batch: dict) -> dict:
        """S from the frozen net for every (person, joint) slot — uniform for joints not queried in I1,
        exactly as ``corrtrack.correspondence.propagate`` builds them at inference — then C for the
        valid persons only (padding persons never reach the refinement body)."""
        q, pv = batch["query_valid"], batch["person_valid"]
        with torch.no_grad():
            f1, f2 = self.siamese.forward_pair(batch["image1"], batch["image2"])
            _, s = corr.siamese_maps(f1, f2, batch["kpts1"], q, sampling=self.siamese.descriptor)
        persons = pv.nonzero()
        c = self.refinement(f1, f2, s[pv], batch_index=persons[:, 0])
        logits = c.new_zeros(s.shape)
        logits[pv] = c
        return {"loss": self.bce(logits, batch, "logit"), "probs": torch.sigmoid(logits),
                "extra": {"siamese": s}}
