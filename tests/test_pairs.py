"""Affine-pair synthesis: targets land where the warped image shows the point, truncation, collate,
worker-safe and deterministic randomness."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from datamodules.pairs import (AffinePairDataset, AugmentConfig, PairDataModule, collate_pairs, denormalize,
                               feature_cell, image_to_feature)
from datamodules.sources import ImageRecord

S = 64
GEOMETRY_ONLY = dict(photometric=0.0, blur=0.0, occlude=0.0)


def _dot_record(tmp_path, name: str, xy: tuple[float, float], size=(160, 120), joint: int = 9,
                persons: int = 1) -> ImageRecord:
    """A black image with one white dot at ``xy``; person 0 has joint ``joint`` there (others absent)."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    cv2.circle(img, (int(round(xy[0])), int(round(xy[1]))), 2, (255, 255, 255), -1)
    path = tmp_path / f"{name}.png"
    cv2.imwrite(str(path), img)
    kp = np.zeros((persons, 17, 3), np.float32)
    kp[:, joint] = [xy[0], xy[1], 2]
    return ImageRecord(path=path, width=w, height=h, image_id=0, keypoints=kp,
                       boxes=np.tile([[0, 0, w, h]], (persons, 1)).astype(np.float32),
                       areas=np.full(persons, w * h, np.float32), layout="coco")


def _dot_position(chw: np.ndarray) -> np.ndarray:
    """Image-pixel (x, y) centre of mass of the bright dot (robust to interpolation)."""
    img = denormalize(torch.as_tensor(chw)[None])[0].astype(float).sum(-1)
    ys, xs = np.nonzero(img > 0.3 * img.max())
    wts = img[ys, xs]
    return np.array([np.average(xs, weights=wts), np.average(ys, weights=wts)])


def _check_target(xy_feat: np.ndarray, flat_idx: int | None, chw: np.ndarray) -> None:
    """The dot seen in ``chw`` is at ``xy_feat`` (within 1 px) and, unless it sits on a cell border, in
    cell ``flat_idx``."""
    dot = _dot_position(chw)
    np.testing.assert_allclose(xy_feat * 4, dot, atol=1.0)
    f = image_to_feature(dot)
    if flat_idx is not None and (np.abs(f - np.round(f)) < 0.4).all():  # not within 0.4 px of a border
        cx, cy = feature_cell(f)
        assert flat_idx == cy * (S // 4) + cx


@pytest.mark.parametrize("flip_prob,crop_prob", [(0.0, 0.0), (1.0, 0.0), (0.5, 1.0)])
def test_target_cell_is_where_the_warped_image_shows_the_point(tmp_path, flip_prob, crop_prob):
    rng = np.random.default_rng(0)
    records = [_dot_record(tmp_path, f"d{i}", tuple(rng.integers([50, 35], [110, 85]).astype(float)))
               for i in range(8)]
    aug = AugmentConfig(max_translate=0.2, max_rotate=40, scale=(0.8, 1.25), flip_prob=flip_prob,
                        crop_prob=crop_prob, crop_context=(8.0, 12.0), **GEOMETRY_ONLY)
    ds = AffinePairDataset(records, input_size=S, augment=aug, train=False, seed=3)
    checked = 0
    for i in range(len(ds)):
        s = ds[i]
        assert s["query_valid"][0, 9] and s["query_valid"].sum() == 1
        # the query sits on the dot of I1
        _check_target(s["kpts1"][0, 9], None, s["image1"])
        if not s["present"][0, 9]:
            continue
        _check_target(s["target_xy"][0, 9], int(s["target_idx"][0, 9]), s["image2"])
        assert s["target_idx"][0, 9] == (lambda c: c[1] * (S // 4) + c[0])(feature_cell(s["target_xy"][0, 9]))
        checked += 1
    assert checked >= 4


def test_mirrored_pair_keeps_labels_and_mirrors_position(tmp_path):
    """A flip is a true mirror: joint 9 (left wrist) is still joint 9, at x -> S - 1 - x."""
    rec = _dot_record(tmp_path, "m", (40.0, 60.0))
    aug = AugmentConfig(max_translate=0, max_rotate=0, scale=(1, 1), flip_prob=1.0, **GEOMETRY_ONLY)
    s = AffinePairDataset([rec], input_size=S, augment=aug, train=False)[0]
    x1 = s["kpts1"][0, 9] * 4
    x2 = s["target_xy"][0, 9] * 4
    assert s["present"][0, 9] and not s["present"][0, 10]
    np.testing.assert_allclose(x2, [S - 1 - x1[0], x1[1]], atol=1e-4)


def test_occluders_and_appearance_change_only_the_image(tmp_path):
    """Pasted occluders, jitter and blur alter I2 but not the geometry: targets stay those of the plain pair."""
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    rec = _dot_record(tmp_path, "o", (80.0, 60.0))
    cv2.imwrite(str(rec.path), img)
    plain = AffinePairDataset([rec], input_size=S, augment=AugmentConfig(**GEOMETRY_ONLY), train=False)[0]
    heavy = AffinePairDataset([rec], input_size=S, train=False,
                              augment=AugmentConfig(occlude=1.0, photometric=1.0, blur=1.0))[0]
    for k in ("kpts1", "target_xy", "target_idx", "present", "query_valid"):
        np.testing.assert_array_equal(plain[k], heavy[k])
    torch.testing.assert_close(plain["image1"], heavy["image1"])
    assert not torch.allclose(plain["image2"], heavy["image2"])


def test_truncated_keypoint_gets_absent_target(tmp_path):
    rec = _dot_record(tmp_path, "t", (80.0, 60.0))
    ds = AffinePairDataset([rec], input_size=S, augment=AugmentConfig(**GEOMETRY_ONLY), train=False)
    ds._second_affine = lambda rng: np.array([[1.0, 0, S], [0, 1.0, 0]])  # shift I2 by a full width
    s = ds[0]
    assert s["query_valid"][0, 9]
    assert not s["present"].any() and (s["target_idx"] == -1).all()
    assert s["target_xy"][0, 9, 0] >= S // 4  # the float position is kept, outside the grid


def test_unannotated_and_out_of_view_keypoints_are_not_queried(tmp_path):
    rec = _dot_record(tmp_path, "u", (80.0, 60.0))
    rec.keypoints[0, 3] = [500.0, 60.0, 2]  # annotated but outside the image
    rec.keypoints[0, 4] = [80.0, 60.0, 0]   # inside but not annotated
    s = AffinePairDataset([rec], input_size=S, augment=AugmentConfig(**GEOMETRY_ONLY), train=False)[0]
    assert s["query_valid"][0].nonzero()[0].tolist() == [9]


def test_max_persons_caps_and_collate_pads(tmp_path):
    a = _dot_record(tmp_path, "a", (80.0, 60.0), persons=1)
    b = _dot_record(tmp_path, "b", (80.0, 60.0), persons=5)
    aug = AugmentConfig(max_translate=0, max_rotate=0, scale=(1, 1), flip_prob=0, **GEOMETRY_ONLY)
    ds = AffinePairDataset([a, b], input_size=S, max_persons=3, augment=aug, train=True)
    assert ds[1]["query_valid"].shape == (3, 17)
    batch = collate_pairs([ds[0], ds[1]])
    assert batch["image1"].shape == (2, 3, S, S) and batch["image2"].dtype == torch.float32
    assert batch["kpts1"].shape == (2, 3, 17, 2) and batch["target_xy"].shape == (2, 3, 17, 2)
    assert batch["person_valid"].tolist() == [[True, False, False], [True, True, True]]
    assert not batch["query_valid"][0, 1:].any()
    assert (batch["target_idx"][0, 1:] == -1).all()
    assert (batch["target_idx"][1, :, 9] >= 0).all()


def test_collate_of_images_without_persons(tmp_path):
    rec = _dot_record(tmp_path, "e", (80.0, 60.0))
    rec.keypoints[:] = 0
    s = AffinePairDataset([rec], input_size=S, train=False)[0]
    batch = collate_pairs([s, s])
    assert batch["person_valid"].shape == (2, 1) and not batch["person_valid"].any()


def test_validation_pairs_are_deterministic_and_training_pairs_vary(tmp_path):
    rec = _dot_record(tmp_path, "r", (80.0, 60.0))
    val = AffinePairDataset([rec] * 2, input_size=S, train=False, seed=1)
    torch.testing.assert_close(val[0]["image2"], val[0]["image2"])
    assert not np.allclose(val[0]["affine"], val[1]["affine"])
    train = AffinePairDataset([rec], input_size=S, train=True)
    assert not np.allclose(train[0]["affine"], train[0]["affine"])


def test_worker_randomness_differs_across_workers_and_epochs(tmp_path):
    rec = _dot_record(tmp_path, "w", (80.0, 60.0))
    ds = AffinePairDataset([rec] * 4, input_size=S, train=True)
    loader = DataLoader(ds, batch_size=1, num_workers=2, collate_fn=collate_pairs)
    torch.manual_seed(0)
    epochs = [torch.cat([b["affine"] for b in loader]) for _ in range(2)]
    flat = torch.cat(epochs).flatten(1)
    assert len({tuple(np.round(r.numpy(), 5)) for r in flat}) == len(flat)  # 8 distinct warps
    torch.manual_seed(0)
    again = torch.cat([b["affine"] for b in loader])
    torch.testing.assert_close(again, epochs[0])  # reproducible from the seed


def test_unreadable_image_is_skipped_not_fatal(tmp_path, caplog):
    good = _dot_record(tmp_path, "g", (80.0, 60.0))
    bad = _dot_record(tmp_path, "bad", (80.0, 60.0))
    bad.path.write_bytes(b"not a png")
    s = AffinePairDataset([bad, good], input_size=S, train=False)[0]
    assert s["query_valid"].any()
    assert "bad.png" in caplog.text


def test_datamodule_on_tiny_world(tiny_world, world_overrides):
    from experiments.config import load_config

    cfg = load_config("siamese", ["debug"], world_overrides + ["data.input_size=64"])
    dm = PairDataModule(cfg.data, seed=0)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    B = cfg.data.batch_size
    assert batch["image1"].shape == (B, 3, 64, 64)
    assert batch["query_valid"].any() and batch["person_valid"].any()
    assert batch["kpts1"].shape[1] <= cfg.data.max_persons
    v1 = next(iter(dm.val_dataloader()))
    v2 = next(iter(dm.val_dataloader()))
    torch.testing.assert_close(v1["image2"], v2["image2"])


def test_augment_config_rejects_unknown_keys_and_makes_tuples():
    from datamodules.pairs import AugmentConfig
    from datamodules.topdown import TopDownAugment

    assert AugmentConfig.from_config({"scale": [0.5, 2]}).scale == (0.5, 2.0)
    assert TopDownAugment.from_config({"scale": [0.8, 1.2]}).scale == (0.8, 1.2)
    for cls in (AugmentConfig, TopDownAugment):
        with pytest.raises(ValueError, match="unknown keys \\['nope'\\]"):
            cls.from_config({"nope": 1})
