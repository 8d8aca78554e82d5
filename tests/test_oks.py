import numpy as np

from corrtrack.keypoints import COCO_SIGMAS
from corrtrack.oks import oks_matrix, oks_nms, pose_area


def _pose(rng, offset=0.0):
    p = np.ones((17, 3))
    p[:, :2] = rng.uniform(0, 100, (17, 2)) + offset
    return p


def test_oks_identical_is_one_and_decreases_with_distance():
    rng = np.random.default_rng(1)
    a = _pose(rng)
    o = oks_matrix(a[None], np.stack([a, a + [3, 0, 0], a + [30, 0, 0]]), np.array([5000.0]), COCO_SIGMAS)
    assert o.shape == (1, 3)
    assert o[0, 0] == 1.0 and 1.0 > o[0, 1] > o[0, 2] > 0


def test_oks_known_value_single_joint():
    a = np.zeros((1, 17, 3)); a[0, 0] = [10, 10, 1]
    b = np.zeros((1, 17, 3)); b[0, 0] = [13, 14, 1]
    area, s = 100.0, COCO_SIGMAS[0]
    expected = np.exp(-25.0 / (2 * area * (2 * s) ** 2))
    np.testing.assert_allclose(oks_matrix(a, b, np.array([area]), COCO_SIGMAS), [[expected]])


def test_oks_nms_removes_duplicates_keeps_distinct():
    rng = np.random.default_rng(2)
    a, far = _pose(rng), _pose(rng, offset=500)
    poses = np.stack([a, a + [1, 1, 0], far])
    keep = oks_nms(poses, np.array([0.5, 0.9, 0.7]), COCO_SIGMAS, oks_threshold=0.7)
    assert keep.tolist() == [1, 2]
    assert pose_area(np.zeros((1, 17, 3))).tolist() == [0.0]
