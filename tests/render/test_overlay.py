"""Overlays: mesh over a photo, side view, skeleton drawing: shapes, where pixels change, input checks."""

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from handrecon.hand import load_hand_model
from handrecon.hand.keypoints import BONES, FINGER_KEYPOINTS
from handrecon.render.overlay import FINGER_COLORS, draw_keypoints, overlay_mesh, side_view
from handrecon.render.renderer import Mesh, Renderer

W, H = 160, 120
K = np.array([[300.0, 0.0, 79.5], [0.0, 300.0, 59.5], [0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def hand():
    model = load_hand_model("open")
    out = model(model.named_pose("relaxed")[None])
    v = out.vertices[0].detach().numpy().astype(np.float64)
    c = (v.max(0) + v.min(0)) / 2
    shift = np.array([0.0, 0.0, 0.6]) - c
    kp = out.keypoints[0].detach().numpy() + shift
    uvw = kp @ K.T
    return v + shift, model.faces.numpy(), uvw[:, :2] / uvw[:, 2:]


@pytest.fixture(scope="module")
def photo():
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def test_overlay_changes_only_pixels_around_the_mesh(hand, photo):
    v, f, _ = hand
    keep = photo.copy()
    out = overlay_mesh(photo, v, f, K)
    assert out.shape == photo.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(photo, keep)  # input untouched
    mask = Renderer(W, H).render(Mesh(v, f), K).mask()
    changed = (out != photo).any(axis=2)
    assert changed[mask].mean() > 0.9
    assert not changed[~binary_dilation(mask, iterations=1)].any()
    # alpha blends linearly; alpha 0 returns the photo
    np.testing.assert_array_equal(overlay_mesh(photo, v, f, K, alpha=0.0), photo)
    opaque = overlay_mesh(photo, v, f, K, alpha=1.0, color=(0.2, 0.4, 0.9))
    inner = ~binary_dilation(~mask, iterations=2)
    assert (opaque[inner, 2] > opaque[inner, 0]).all()  # the mesh colour, not the photo
    # torch inputs and a caller's renderer work too
    import torch
    out2 = overlay_mesh(photo, torch.as_tensor(v), torch.as_tensor(f), K, renderer=Renderer(8, 8, samples=4,
                                                                                            shading="pixel"))
    np.testing.assert_array_equal(out2, out)


def test_side_view_frames_the_rotated_mesh(hand):
    v, f, _ = hand
    img = side_view(v, f, size=(96, 80), angle_deg=90)
    assert img.shape == (80, 96, 3) and img.dtype == np.uint8
    fg = (img != 255).any(axis=2)
    rows, cols = np.nonzero(fg)
    assert fg.sum() > 500
    assert rows.min() >= 1 and cols.min() >= 1 and rows.max() <= 78 and cols.max() <= 94  # inside the margin
    assert min(rows.min(), 79 - rows.max()) <= 5 or min(cols.min(), 95 - cols.max()) <= 6  # fills the tighter side
    assert abs(rows.min() - (79 - rows.max())) <= 2 and abs(cols.min() - (95 - cols.max())) <= 2  # centred
    assert side_view(v, f, size=64).shape == (64, 64, 3)
    # a flat square facing the camera is seen edge-on after a quarter turn
    sq = np.array([[-0.1, -0.1, 1.0], [0.1, -0.1, 1.0], [0.1, 0.1, 1.0], [-0.1, 0.1, 1.0]])
    sq_f = np.array([[0, 1, 2], [0, 2, 3]])
    front = (side_view(sq, sq_f, size=64, angle_deg=0) != 255).any(axis=2).sum()
    edge = (side_view(sq, sq_f, size=64, angle_deg=90) != 255).any(axis=2).sum()
    assert front > 2000 and edge < 100


def test_draw_keypoints_draws_the_skeleton_in_finger_colours(hand, photo):
    _, _, uv = hand
    keep = photo.copy()
    img = np.zeros_like(photo)
    out = draw_keypoints(img, uv, radius=2, thickness=1)
    assert out.shape == photo.shape and out.dtype == np.uint8
    drawn = (out != 0).any(axis=2)
    # everything drawn lies near a bone
    near = np.zeros((H, W), bool)
    rr, cc = np.mgrid[0:H, 0:W]
    for p, c in BONES:
        a, b = uv[p], uv[c]
        t = np.clip(((cc - a[0]) * (b[0] - a[0]) + (rr - a[1]) * (b[1] - a[1])) / max(np.sum((b - a) ** 2), 1e-9),
                    0, 1)
        dist = np.hypot(cc - (a[0] + t * (b[0] - a[0])), rr - (a[1] + t * (b[1] - a[1])))
        near |= dist <= 4
    assert drawn.sum() > 100 and not drawn[~near].any()
    tip = FINGER_KEYPOINTS["thumb"][-1]
    u, v = np.rint(uv[tip]).astype(int)
    np.testing.assert_array_equal(out[v, u], FINGER_COLORS["thumb"])
    # hidden keypoints are skipped; the input is not modified
    hidden = draw_keypoints(img, uv, visible=np.arange(21) < 5, radius=2, thickness=1)
    assert (hidden != 0).any(axis=2).sum() < drawn.sum()
    draw_keypoints(photo, uv)
    np.testing.assert_array_equal(photo, keep)
    # keypoints far outside the image are clipped, not an error
    far = uv.copy()
    far[3] = [1e9, -1e9]
    assert draw_keypoints(photo, far).shape == photo.shape


def test_bad_inputs_raise_value_error_naming_the_argument(hand, photo):
    v, f, uv = hand
    cases = [
        (lambda: overlay_mesh(photo.astype(np.float32), v, f, K), "image"),
        (lambda: overlay_mesh(photo[..., :2], v, f, K), "image"),
        (lambda: overlay_mesh(photo, v[:, :2], f, K), "vertices"),
        (lambda: overlay_mesh(photo, np.full_like(v, np.nan), f, K), "vertices"),
        (lambda: overlay_mesh(photo, v, f + len(v), K), "faces"),
        (lambda: overlay_mesh(photo, v, f, K[:2]), "K"),
        (lambda: overlay_mesh(photo, v, f, K, alpha=1.5), "alpha"),
        (lambda: overlay_mesh(photo, v, f, K, color=(2.0, 0.0, 0.0)), "color"),
        (lambda: overlay_mesh(photo, v, f, K, renderer="gl"), "renderer"),
        (lambda: side_view(v, f, size=(0, 10)), "size"),
        (lambda: side_view(v, f, angle_deg=float("nan")), "angle_deg"),
        (lambda: side_view(v * np.nan, f), "vertices"),
        (lambda: side_view(v, f, margin=1.0), "margin"),
        (lambda: draw_keypoints(photo, uv[:, :1]), "keypoints_2d"),
        (lambda: draw_keypoints(photo, np.where(np.arange(21)[:, None] == 3, np.nan, uv)), "keypoints_2d"),
        (lambda: draw_keypoints(photo, uv[:20]), "parents"),
        (lambda: draw_keypoints(photo, uv, parents=[-1] + [21] * 20), "parents"),
        (lambda: draw_keypoints(photo, uv, colors=np.zeros((21, 3)) + 300), "colors"),
        (lambda: draw_keypoints(photo, uv, visible=np.ones(3, bool)), "visible"),
        (lambda: draw_keypoints(photo, uv, radius=0), "radius"),
        (lambda: draw_keypoints(photo.astype(np.int16), uv), "image"),
    ]
    for call, name in cases:
        with pytest.raises(ValueError, match=name):
            call()
