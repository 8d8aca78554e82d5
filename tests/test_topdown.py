"""Top-down crops: augmentation keeps image and joints together, flips swap joints, targets, COCOeval."""
from __future__ import annotations


import cv2
import numpy as np
import pytest
import torch

from corrtrack.keypoints import COCO_NAMES
from corrtrack.pose import decode
from datamodules.sources import ImageRecord
from corrtrack.posetrack import load_detections
from corrtrack.evaluation.coco import build_coco_gt, coco_keypoint_eval
from datamodules.topdown import TopDownAugment, TopDownDataset, collate

LW, RW = COCO_NAMES.index("left_wrist"), COCO_NAMES.index("right_wrist")
LA, RA = COCO_NAMES.index("left_ankle"), COCO_NAMES.index("right_ankle")


@pytest.fixture()
def marked_image(tmp_path) -> ImageRecord:
    """A 240x320 image with one person whose left wrist is a red blob, right wrist a blue blob and left
    ankle a green blob (the other joints are labeled too, on a grey background)."""
    img = np.full((240, 320, 3), 90, np.uint8)
    kp = np.zeros((1, 17, 3), np.float32)
    rng = np.random.default_rng(0)
    kp[0, :, 0] = rng.uniform(130, 190, 17)
    kp[0, :, 1] = rng.uniform(60, 200, 17)
    kp[0, :, 2] = 2
    kp[0, LW, :2] = (135, 100)
    kp[0, RW, :2] = (185, 110)
    kp[0, LA, :2] = (150, 195)
    for j, colour in ((LW, (255, 0, 0)), (RW, (0, 0, 255)), (LA, (0, 255, 0))):
        cv2.circle(img, (int(kp[0, j, 0]), int(kp[0, j, 1])), 5, colour, -1)
    path = tmp_path / "img.png"
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return ImageRecord(path=path, width=320, height=240, image_id=7, keypoints=kp,
                       boxes=np.array([[125, 55, 70, 150]], np.float32),
                       areas=np.array([70 * 150], np.float32),
                       layout="coco")


def _colour_at(img: np.ndarray, xy) -> np.ndarray:
    x, y = int(round(xy[0])), int(round(xy[1]))
    return img[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).mean(0)


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_augmented_joints_stay_on_their_pixels_and_flips_swap_labels(marked_image, flip):
    aug = TopDownAugment(flip_prob=flip, max_rotate=40.0, rotate_prob=1.0, scale=(0.8, 1.2), shift=0.1,
                         color_prob=0.0, blur_prob=0.0)
    ds = TopDownDataset([marked_image], (128, 96), stride=8, layout="coco", train=True, augment=aug)
    from corrtrack.imageio import read_rgb

    image = read_rgb(marked_image.path)
    for seed in range(6):
        crop, kp, flipped = ds.augment_crop(image, marked_image.boxes[0], marked_image.keypoints[0],
                                            np.random.default_rng(seed))
        assert crop.shape == (128, 96, 3) and flipped == bool(flip)
        red, blue = _colour_at(crop, kp[LW]), _colour_at(crop, kp[RW])
        green = _colour_at(crop, kp[RA if flipped else LA])
        assert green[1] > 150 and green[0] < 100             # the ankle blob moved with its (swapped) label
        if flipped:
            # the mirrored person's left wrist is the physical right wrist (blue), and vice versa
            assert red[2] > 150 and red[0] < 100 and blue[0] > 150 and blue[2] < 100
        else:
            assert red[0] > 150 and red[2] < 100 and blue[2] > 150 and blue[0] < 100


def test_dataset_samples_decode_to_their_keypoints(marked_image):
    ds = TopDownDataset([marked_image], (128, 96), stride=8, layout="coco", train=True)
    batch = collate([ds[0], ds[0]])
    assert batch["image"].shape == (2, 3, 128, 96) and batch["heatmaps"].shape == (2, 17, 16, 12)
    dec = decode(batch["heatmaps"], batch["offsets"], 8).numpy()
    kp = batch["keypoints"].numpy()
    inside = (batch["heatmaps"].flatten(2).amax(-1) > 0).numpy()
    assert inside.sum() > 20
    np.testing.assert_allclose(dec[..., :2][inside], kp[..., :2][inside], atol=1e-3)

    val = TopDownDataset([marked_image], (128, 96), stride=8, layout="coco", train=False)
    s = val[0]
    from corrtrack import geometry
    back = geometry.warp_points(s["keypoints"].astype(np.float64), geometry.invert(s["affine"]))
    np.testing.assert_allclose(back[:, :2], marked_image.keypoints[0, :, :2], atol=1e-3)
    assert s["image_id"] == 7 and s["box_score"] == 1.0


def test_detections_drive_validation_crops(marked_image, tmp_path):
    det = tmp_path / "dets.json"
    det.write_text('[{"image_id": 7, "bbox": [120, 50, 80, 160], "score": 0.9, "category_id": 1},'
                   ' {"image_id": 7, "bbox": [0, 0, 30, 30], "score": 0.1, "category_id": 1},'
                   ' {"image_id": 7, "bbox": [0, 0, 30, 30], "score": 0.9, "category_id": 2}]')
    dets = load_detections(det, min_score=0.5)
    assert list(dets) == [7] and len(dets[7]) == 1
    ds = TopDownDataset([marked_image], (128, 96), stride=8, layout="coco", train=False, detections=dets)
    assert len(ds) == 1 and ds[0]["box_score"] == pytest.approx(0.9) and ds[0]["weights"].sum() == 0


def test_coco_eval_of_ground_truth_is_perfect(marked_image):
    gt = build_coco_gt([marked_image], "posetrack")
    kp = marked_image.keypoints[0].copy()
    res = [{"image_id": 7, "category_id": 1, "keypoints": kp.reshape(-1).tolist(), "score": 0.8}]
    from corrtrack.keypoints import POSETRACK_SIGMAS

    assert coco_keypoint_eval(gt, res, POSETRACK_SIGMAS)["ap"] == pytest.approx(1.0)
    assert coco_keypoint_eval(gt, [], POSETRACK_SIGMAS)["ap"] == 0.0


def test_datamodule_on_tiny_world(tiny_world):
    from omegaconf import OmegaConf

    from datamodules.topdown import TopDownDataModule
    from experiments.config import load_config

    cfg = load_config("pose", ["debug"], [f"data.synth.root={tiny_world.parent}", "data.synth.preset=tiny",
                                          "data.coco_root=synth", "data.posetrack_root=synth",
                                          "data.input_size=[64,48]", "data.val_max_images=4"])
    for layout in ("coco", "posetrack"):
        dm = TopDownDataModule(cfg.data, layout=layout, stride=8)
        dm.setup("fit")
        assert len(dm.train_set) > 0 and len(dm.val_set.records) <= 4
        b = next(iter(dm.train_dataloader()))
        assert b["image"].shape[1:] == (3, 64, 48) and torch.isfinite(b["image"]).all()
        gt = dm.coco_gt
        assert set(dm.val_image_ids) <= set(gt.getImgIds())
    assert OmegaConf.is_config(cfg)
