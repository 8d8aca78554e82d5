import numpy as np

from corrtrack import keypoints as K


def test_posetrack_to_eval_matches_the_official_ids():
    # 2018 slot -> the official evaluation's joint id (docs/method.md §6)
    assert K.POSETRACK_TO_EVAL.tolist() == [13, 12, 14, -1, -1, 9, 8, 10, 7, 11, 6, 3, 2, 4, 1, 5, 0]
    assert K.EVAL_NAMES == ("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
                            "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
                            "left_wrist", "neck", "nose", "head_top")
    # the two maps are inverse of each other on evaluated slots
    assert (K.POSETRACK_TO_EVAL[K.EVAL_TO_POSETRACK] == np.arange(15)).all()


def test_coco_names_and_sigmas():
    assert K.COCO_NAMES[:3] == ("nose", "left_eye", "right_eye")
    assert len(K.COCO_NAMES) == len(K.POSETRACK_NAMES) == 17
    np.testing.assert_allclose(K.COCO_SIGMAS[[0, 5, 11, 16]], [0.026, 0.079, 0.107, 0.089])


def test_flip_perms_are_involutions_and_swap_sides():
    for names, perm in ((K.COCO_NAMES, K.COCO_FLIP_PERM), (K.POSETRACK_NAMES, K.POSETRACK_FLIP_PERM)):
        assert (perm[perm] == np.arange(17)).all()
        for i, j in enumerate(perm):
            a, b = names[i], names[j]
            if a.startswith("left_"):
                assert b == "right_" + a[5:]
            elif a.startswith("right_"):
                assert b == "left_" + a[6:]
            else:
                assert i == j
    # PoseTrack: head_bottom / head_top are central joints, ears still swap (unused slots)
    assert list(K.POSETRACK_FLIP_PERM[:5]) == [0, 1, 2, 4, 3]
    assert K.layout("posetrack")["flip_perm"] is K.POSETRACK_FLIP_PERM


def test_coco_to_posetrack_mapping():
    kp = np.arange(17 * 3, dtype=float).reshape(17, 3) + 1
    pt = K.coco_to_posetrack(kp)
    assert (pt[[1, 2, 3, 4]] == 0).all()          # head_bottom/head_top unknown in COCO; ears unused
    np.testing.assert_array_equal(pt[0], kp[0])   # nose
    np.testing.assert_array_equal(pt[5:], kp[5:])  # body joints share slots
    ev = K.posetrack_to_eval(pt)
    assert ev.shape == (15, 3)
    np.testing.assert_array_equal(ev[0], kp[16])  # right_ankle


def test_skeletons_are_valid_edges():
    for skel in (K.COCO_SKELETON, K.POSETRACK_SKELETON):
        assert all(0 <= a < 17 and 0 <= b < 17 and a != b for a, b in skel)
    assert min(min(e) for e in K.coco_skeleton_1based()) == 1
