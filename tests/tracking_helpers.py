"""Hand-built videos, poses and nets for the tracking tests (known answers, no training)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from corrtrack.posetrack.types import Frame, Person, Sequence
from corrtrack.tracking import Candidates, TrackingConfig, Video, VideoCache

# a standing person ~100 px tall in PoseTrack slots (x, y offsets from the hip centre); ears (3, 4) unused
TEMPLATE = np.array([
    [0, -40], [0, -32], [0, -50], [0, 0], [0, 0], [10, -28], [-10, -28], [14, -12], [-14, -12], [16, 2],
    [-16, 2], [6, 5], [-6, 5], [7, 25], [-7, 25], [7, 45], [-7, 45]], dtype=np.float64)
USED = np.array([j not in (3, 4) for j in range(17)])


def make_pose(cx: float, cy: float, score: float = 0.9, scale: float = 1.0) -> np.ndarray:
    """(17, 3) x, y, score of the template centred at (cx, cy); unused slots [0, 0, 0]."""
    p = np.zeros((17, 3))
    p[USED, :2] = TEMPLATE[USED] * scale + [cx, cy]
    p[USED, 2] = score
    return p


def gt_person(track_id: int, cx: float, cy: float) -> Person:
    pose = make_pose(cx, cy)
    kp = pose.copy()
    kp[USED, 2] = 1.0
    return Person(keypoints=kp, track_id=track_id, head_box=np.array([cx - 8, cy - 52, 16, 22]),
                  bbox=np.array([cx - 20, cy - 55, 40, 105]))


def make_video(tracks: dict[int, dict[int, tuple[float, float]]], num_frames: int, name: str = "000001_mpii_test",
               root: Path | None = None, size: tuple[int, int] = (240, 320)) -> Video:
    """A GT video: ``tracks`` = {track id: {frame: (cx, cy)}}. With ``root`` plain grey frames are written
    (``root/images/val/<name>/NNNNNN.jpg``) so networks and flow can read them."""
    frames = []
    for f in range(num_frames):
        persons = [gt_person(t, *pos[f]) for t, pos in sorted(tracks.items()) if f in pos]
        frames.append(Frame(file_name=f"images/val/{name}/{f + 1:06d}.jpg", image_id=10000000000 + f + 1,
                            persons=persons, is_labeled=bool(persons)))
        if root is not None:
            path = Path(root) / frames[-1].file_name
            path.parent.mkdir(parents=True, exist_ok=True)
            img = np.full((*size, 3), 90 + 5 * f % 40, np.uint8)
            cv2.imwrite(str(path), img)
    seq = Sequence(name=name, frames=frames, format="2018", vid_id=name[:6])
    return Video(name, seq, Path(root) if root is not None else Path("."))


def hand_cache(video: Video, poses: dict[int, np.ndarray], config: TrackingConfig | None = None,
               window: int = 1, parts: tuple[str, ...] = ()) -> VideoCache:
    """A precomputation built by hand: the candidates of each processed frame (its keys, in order)."""
    cache = VideoCache(video=video, frames=sorted(poses), config=config or TrackingConfig(), window=window)
    for f, p in poses.items():
        p = np.asarray(p, dtype=np.float64).reshape(-1, 17, 3)
        boxes = np.array([[q[USED, 0].min(), q[USED, 1].min(), np.ptp(q[USED, 0]), np.ptp(q[USED, 1])] for q in p])
        cache.candidates[f] = Candidates(p, boxes.reshape(-1, 4), np.full(len(p), 0.9), np.zeros(len(p), bool))
        cache.image_hw[f] = (240, 320)
    cache.parts |= set(parts)
    return cache


class PositionCodeNet(nn.Module):
    """A 'Siamese net' whose features are a fixed random unit code per feature cell, whatever the image:
    a descriptor matches only its own cell, so correspondences propagate every joint to where it was
    (zero motion) with a clear peak. Stride 4 like SiameseNet."""

    stride = 4
    descriptor = "nearest"

    def __init__(self, channels: int = 32, max_cells: int = 64, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        code = torch.randn(1, channels, max_cells, max_cells, generator=g)
        self.register_buffer("code", code / code.norm(dim=1, keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2] // 4, x.shape[-1] // 4
        return self.code[:, :, :h, :w].expand(x.shape[0], -1, -1, -1).contiguous()


def save_tiny_checkpoints(folder: Path, seed: int = 0) -> dict[str, Path]:
    """Untrained tiny pose and correspondence nets saved in the checkpoint layout the training stages write
    (hyper_parameters["net"] + prefixed state_dict): {"pose": finetune ckpt, "corr": refine ckpt}. Another
    ``seed`` gives other weights (other file contents)."""
    from corrtrack.nets.correspondence import RefinementNet, SiameseNet
    from corrtrack.nets.pose import PoseNet

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    pose = PoseNet(width=0.125)
    torch.save({"state_dict": {"net." + k: v for k, v in pose.state_dict().items()},
                "hyper_parameters": {"net": pose.kwargs, "input_size": [64, 48], "layout": "posetrack",
                                     "padding": 1.25, "flip_test": False, "stage": "finetune"}}, folder / "pose.ckpt")
    sia, ref = SiameseNet("release", width=0.125, feat_channels=8), RefinementNet(width=0.125, in_channels=33)
    sd = {"siamese." + k: v for k, v in sia.state_dict().items()}
    sd.update({"refinement." + k: v for k, v in ref.state_dict().items()})
    torch.save({"state_dict": sd, "hyper_parameters": {"net": {"siamese": sia.config(), "refinement": ref.config()},
                                                       "stage": "refine", "input_size": 128, "stride": 4}},
               folder / "refine.ckpt")
    return {"pose": folder / "pose.ckpt", "corr": folder / "refine.ckpt"}
