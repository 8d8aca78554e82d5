import numpy as np
import pytest

from corrtrack import geometry as G


def test_warp_then_inverse_is_identity():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 200, size=(10, 3))
    m = G.affine_matrix((50, 60), angle_deg=33, scale=1.7, translate=(5, -7), flip=True, flip_width=128)
    back = G.warp_points(G.warp_points(pts, m), G.invert(m))
    np.testing.assert_allclose(back, pts, atol=1e-9)


def test_compose_order():
    a = G.affine_matrix((0, 0), 0, 2.0)             # scale by 2
    b = np.array([[1.0, 0, 3], [0, 1.0, 0]])         # shift x by 3
    p = np.array([[1.0, 1.0]])
    np.testing.assert_allclose(G.warp_points(p, G.compose(a, b)), [[8.0, 2.0]])  # b first, then a


def test_flip_mirrors_x():
    m = G.affine_matrix((0, 0), flip=True, flip_width=100)
    np.testing.assert_allclose(G.warp_points(np.array([[0.0, 5.0], [99.0, 7.0]]), m), [[99, 5], [0, 7]])
    with pytest.raises(ValueError):
        G.affine_matrix((0, 0), flip=True)


def test_crop_affine_puts_box_centre_at_crop_centre_and_fits():
    box = np.array([100.0, 50.0, 40.0, 120.0])
    m = G.crop_affine(box, (64, 48), padding=1.0)
    c = G.warp_points(np.array([[120.0, 110.0]]), m)[0]
    np.testing.assert_allclose(c, [(48 - 1) / 2, (64 - 1) / 2], atol=1e-9)
    corners = G.warp_points(np.array([[100.0, 50.0], [140.0, 170.0]]), m)
    assert corners[:, 1].min() >= -0.5 - 1e-6 and corners[:, 1].max() <= 63.5 + 1e-6


def test_warp_image_moves_a_dot_like_warp_points():
    img = np.zeros((60, 80), np.float32)
    img[20, 30] = 1.0
    m = G.affine_matrix((40, 30), angle_deg=20, scale=1.0, translate=(4, 3))
    out = G.warp_image(img, m, (60, 80), interpolation=0)
    y, x = np.unravel_index(np.argmax(G.warp_image(img, m, (60, 80))), (60, 80))
    exp = G.warp_points(np.array([[30.0, 20.0]]), m)[0]
    assert abs(x - exp[0]) <= 1 and abs(y - exp[1]) <= 1
    assert out.shape == (60, 80)


def test_letterbox_and_boxes():
    m = G.letterbox_affine((100, 200), 512)
    np.testing.assert_allclose(G.warp_points(np.array([[0.0, 0.0], [200.0, 100.0]]), m),
                               [[0, 128], [512, 384]])
    b = G.warp_boxes(np.array([[10.0, 20.0, 30.0, 40.0]]), np.array([[2.0, 0, 1], [0, 2.0, 1]]))
    np.testing.assert_allclose(b, [[21, 41, 60, 80]])
    np.testing.assert_allclose(G.box_from_points(np.array([[1.0, 2.0], [np.nan, 0], [5.0, 9.0]]), 1.0),
                               [0, 1, 6, 9])
    with pytest.raises(ValueError):
        G.box_from_points(np.full((2, 2), np.nan))
    assert G.inside(np.array([[0, 0], [80, 10], [-1, 3]]), (60, 80)).tolist() == [True, False, False]
