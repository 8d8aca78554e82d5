"""Affine-pair synthesis: targets land where the warped image shows the point, truncation, collate,
worker-safe and deterministic randomness."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from corrtrack.nets.utils import denormalize_images as denormalize
from datamodules.pairs import (AffinePairDataset, AugmentConfig, PairDataModule, collate_pairs, feature_cell,
                               image_to_feature)
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


@pytest.mark.parametrize("changes, altered", [
    (dict(occlude=1.0, photometric=1.0, blur=1.0), "image2"),   # occluders, jitter and blur on I2
    ({**GEOMETRY_ONLY, "occlude_first": 1.0}, "image1"),        # occluders on the query image I1
])
def test_occluders_and_appearance_change_only_the_image(tmp_path, changes, altered):
    """Pasted occluders, jitter and blur alter one image but not the geometry: queries under a patch
    stay queried and every target stays that of the plain pair."""
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    rec = _dot_record(tmp_path, "o", (80.0, 60.0))
    cv2.imwrite(str(rec.path), img)
    plain = AffinePairDataset([rec], input_size=S, augment=AugmentConfig(**GEOMETRY_ONLY), train=False)[0]
    heavy = AffinePairDataset([rec], input_size=S, train=False, augment=AugmentConfig(**changes))[0]
    for k in ("kpts1", "target_xy", "target_idx", "present", "query_valid"):
        np.testing.assert_array_equal(plain[k], heavy[k])
    kept = "image1" if altered == "image2" else "image2"
    torch.testing.assert_close(plain[kept], heavy[kept])
    assert not torch.allclose(plain[altered], heavy[altered])


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
    assert not np.allclose(train[(0, 0)]["affine"], train[(1, 0)]["affine"])     # a new warp every epoch
    np.testing.assert_array_equal(train[(1, 0)]["affine"], train[(1, 0)]["affine"])  # a function of (epoch, index)


def test_training_randomness_is_a_function_of_seed_epoch_index_not_of_workers(tmp_path):
    from datamodules.sampling import EpochSampler

    rec = _dot_record(tmp_path, "w", (80.0, 60.0))
    ds = AffinePairDataset([rec] * 4, input_size=S, train=True, seed=3)

    def epochs(workers: int) -> torch.Tensor:
        sampler = EpochSampler(ds, seed=3)
        loader = DataLoader(ds, batch_size=1, sampler=sampler, num_workers=workers, collate_fn=collate_pairs)
        out = []
        for e in range(2):
            sampler.set_epoch(e)
            out.append(torch.cat([torch.cat([b["affine"].flatten(1), b["index"][:, None].float()], 1)
                                  for b in loader]))
        return torch.cat(out)

    two = epochs(2)
    assert len({tuple(np.round(r[:6].numpy(), 5)) for r in two}) == len(two)  # 8 distinct warps
    torch.testing.assert_close(epochs(0), two)   # the same pairs in the same order with or without workers


def test_unreadable_image_is_skipped_not_fatal(tmp_path, caplog):
    good = _dot_record(tmp_path, "g", (80.0, 60.0))
    bad = _dot_record(tmp_path, "bad", (80.0, 60.0))
    bad.path.write_bytes(b"not a png")
    s = AffinePairDataset([bad, good], input_size=S, train=False)[0]
    assert s["query_valid"].any()
    assert [Path(p).name for p in s["skipped"]] == ["bad.png"]      # reported (and counted by the run)
    assert collate_pairs([s, s])["skipped"] == [str(bad.path)] * 2


def test_too_many_unreadable_images_in_a_row_stop_with_their_names(tmp_path):
    from datamodules.sources import MAX_UNREADABLE_IN_A_ROW, UnreadableDataError

    recs = [_dot_record(tmp_path, f"bad{i}", (80.0, 60.0)) for i in range(MAX_UNREADABLE_IN_A_ROW + 1)]
    for r in recs:
        r.path.write_bytes(b"")
    with pytest.raises(UnreadableDataError, match=r"20 unreadable training images in a row .*bad0.png"):
        AffinePairDataset(recs, input_size=S, train=True)[(0, 0)]


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


# ------------------------------------------------------------------------------------ temporal pairs

def _video_frame(tmp_path, seq: str, frame: int, persons: dict[int, dict[int, tuple[float, float]]],
                 size=(160, 120)) -> ImageRecord:
    """A PoseTrack-layout record of frame ``frame`` of video ``seq``: a white dot per labeled joint;
    ``persons`` maps track id -> {joint: (x, y)}."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    kp = np.zeros((len(persons), 17, 3), np.float32)
    for p, joints in enumerate(persons.values()):
        for j, (x, y) in joints.items():
            kp[p, j] = [x, y, 1]
            cv2.circle(img, (int(round(x)), int(round(y))), 2, (255, 255, 255), -1)
    (tmp_path / seq).mkdir(exist_ok=True)
    path = tmp_path / seq / f"{frame:06d}.png"
    cv2.imwrite(str(path), img)
    n = len(persons)
    return ImageRecord(path=path, width=w, height=h, image_id=frame, keypoints=kp,
                       boxes=np.tile([[0, 0, w, h]], (n, 1)).astype(np.float32),
                       areas=np.full(n, w * h, np.float32), layout="posetrack",
                       track_ids=np.array(list(persons), dtype=np.int64), extra={"sequence": seq})


def test_video_frame_pairs_within_gap_both_directions_sharing_a_track(tmp_path):
    from datamodules.sources import video_frame_pairs

    f = {n: _video_frame(tmp_path, "v1", n, {7: {9: (50.0, 50.0)}}) for n in (1, 2, 4)}
    other = _video_frame(tmp_path, "v1", 5, {8: {9: (50.0, 50.0)}})   # frame 5: another person only
    elsewhere = _video_frame(tmp_path, "v2", 3, {7: {9: (50.0, 50.0)}})  # another video
    recs = [f[1], f[2], f[4], other, elsewhere]
    names = lambda pairs: sorted((a.path.stem, b.path.stem) for a, b in pairs)
    assert names(video_frame_pairs(recs, 1)) == [("000001", "000002"), ("000002", "000001")]
    assert names(video_frame_pairs(recs, 2)) == [("000001", "000002"), ("000002", "000001"),
                                                 ("000002", "000004"), ("000004", "000002")]
    with pytest.raises(ValueError, match="temporal_gap"):
        video_frame_pairs(recs, 0)


def test_temporal_pair_targets_follow_the_real_motion(tmp_path):
    """I2 shows frame b (the dot moved by a non-affine amount relative to the other person); targets are
    frame b's labels of the same track, found where I2 shows them. Joints unlabeled in b, and persons
    absent from b, are not queried."""
    a = _video_frame(tmp_path, "v", 10, {3: {9: (60.0, 50.0), 10: (90.0, 50.0)}, 4: {9: (120.0, 90.0)}})
    b = _video_frame(tmp_path, "v", 11, {3: {9: (75.0, 70.0)}, 5: {9: (20.0, 20.0)}})
    aug = AugmentConfig(temporal=1.0, temporal_warp=0.0, max_translate=0, max_rotate=0, scale=(1, 1),
                        flip_prob=0, **GEOMETRY_ONLY)
    ds = AffinePairDataset([a], input_size=S, augment=aug, train=True, video_pairs=[(a, b)])
    s = ds[0]
    assert s["query_valid"].shape == (1, 17)                       # only track 3 is in both frames
    assert s["query_valid"][0].nonzero()[0].tolist() == [9]         # joint 10 is unlabeled in b
    assert s["present"][0, 9]
    scale = S / 160                                                 # letterbox of the 160-px-wide frame
    np.testing.assert_allclose(s["target_xy"][0, 9] - s["kpts1"][0, 9], np.array([15.0, 20.0]) * scale / 4,
                               atol=1e-4)
    # where I2 shows a dot: track 3's wrist of frame b (the other dot of b is person 5's)
    img2 = denormalize(torch.as_tensor(s["image2"])[None])[0].astype(float).sum(-1)
    x, y = (s["target_xy"][0, 9] * 4).round().astype(int)
    assert img2[y, x] > 0.5 * img2.max()


def test_temporal_pairs_need_video_pairs_and_are_training_only(tmp_path):
    a = _video_frame(tmp_path, "v", 1, {1: {9: (60.0, 50.0)}})
    with pytest.raises(ValueError, match="video frame pairs"):
        AffinePairDataset([a], input_size=S, augment=AugmentConfig(temporal=0.5), train=True)
    val = AffinePairDataset([a], input_size=S, augment=AugmentConfig(temporal=1.0), train=False)
    s = val[0]                                   # validation stays affine: a warp of the same frame
    assert s["query_valid"][0, 9]


def test_datamodule_with_temporal_pairs_on_tiny_world(tiny_world, world_overrides):
    from experiments.config import load_config

    cfg = load_config("siamese", ["debug"], world_overrides + ["data.input_size=64", "data.augment.temporal=1.0"])
    dm = PairDataModule(cfg.data, seed=0)
    dm.setup("fit")
    assert dm.train_set.video_pairs and not dm.val_set.video_pairs
    assert all(a.extra["sequence"] == b.extra["sequence"] for a, b in dm.train_set.video_pairs)
    batch = next(iter(dm.train_dataloader()))
    assert batch["query_valid"].any()


def test_real_coco_without_posetrack_root_trains_on_single_images(tmp_path, caplog):
    """DATA=coco with the cpu preset (temporal pairs on) but no PoseTrack root must not mix synthetic videos
    into real COCO training: temporal pairs are switched off with a warning."""
    from omegaconf import OmegaConf
    import json

    for d in ("train2017", "annotations"):
        (tmp_path / "coco" / d).mkdir(parents=True)
    rec = _dot_record(tmp_path / "coco" / "train2017", "000001", (80.0, 60.0))
    ann = {"images": [{"id": 1, "file_name": rec.path.name, "width": 160, "height": 120}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "num_keypoints": 1,
                            "keypoints": rec.keypoints[0].reshape(-1).tolist(), "bbox": [0, 0, 160, 120],
                            "area": 19200.0}],
           "categories": [{"id": 1, "name": "person"}]}
    (tmp_path / "coco" / "annotations" / "person_keypoints_train2017.json").write_text(json.dumps(ann))
    cfg = OmegaConf.create({"coco_root": str(tmp_path / "coco"), "posetrack_root": "synth", "train_format": "coco",
                            "synth": {"root": str(tmp_path / "never"), "preset": "tiny", "seed": 0},
                            "input_size": 64, "max_persons": 4, "augment": {"temporal": 0.5}})
    ds = PairDataModule(cfg)._dataset("train", train=True)
    assert ds.aug.temporal == 0.0 and not ds.video_pairs
    assert "temporal" in caplog.text and not (tmp_path / "never").exists()


def test_crop_scale_fixes_the_image_to_input_scale(tmp_path):
    rec = _dot_record(tmp_path, "cs", (80.0, 60.0), size=(640, 360))
    aug = AugmentConfig(crop_prob=1.0, crop_scale=(0.4, 0.4), max_translate=0, max_rotate=0, scale=(1, 1),
                        flip_prob=0, **GEOMETRY_ONLY)
    ds = AffinePairDataset([rec], input_size=S, augment=aug, train=False)
    m1 = ds._first_affine((360, 640), rec.keypoints.astype(np.float64), np.random.default_rng(0))
    np.testing.assert_allclose(np.linalg.det(m1[:, :2]), 0.4 ** 2, rtol=1e-6)
    assert AugmentConfig.from_config({"crop_scale": [0.3, 0.5]}).crop_scale == (0.3, 0.5)


def test_training_sampler_shards_over_the_ranks_and_resumes_part_way(tmp_path):
    from types import SimpleNamespace

    from datamodules.sampling import EpochSampler, train_sampler

    rec = _dot_record(tmp_path, "s", (80.0, 60.0))
    ds = AffinePairDataset([rec] * 10, input_size=S, train=True)
    dm = SimpleNamespace(trainer=SimpleNamespace(world_size=2, global_rank=1), cfg=SimpleNamespace(batch_size=2),
                         resume_position=None)
    s = train_sampler(dm, ds, seed=5)
    assert (s.num_replicas, s.rank, len(s)) == (2, 1, 5)
    other = EpochSampler(ds, seed=5, num_replicas=2, rank=0)
    assert not {i for _, i in s} & {i for _, i in other}          # the two ranks see different pairs
    dm.resume_position = (3, 1)                                      # epoch 3, one batch of 2 done
    s = train_sampler(dm, ds, seed=5)
    full = EpochSampler(ds, seed=5, num_replicas=2, rank=1)
    full.set_epoch(3)
    assert list(s) == list(full)[2:] and dm.resume_position is None
    assert list(s) == list(full)                                     # the next pass is whole again
