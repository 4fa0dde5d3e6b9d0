import math

import cv2
import numpy as np
import pytest
import torch

from data_fixture import SIZE, camera, make_hands, open_hand
from handrecon.camera import apply_affine, project_points
from handrecon.data import (
    Augmentation,
    augment_sample,
    color_jitter,
    crop_sample,
    eval_crop,
    make_sample,
    two_view,
)


@pytest.fixture(scope="module")
def samples():
    out = []
    for i, h in enumerate(make_hands(3, seed=7)):
        out.append(make_sample(h["image"], h["K"], index=i, mask=h["mask"], keypoints=h["keypoints"],
                               vertices=h["vertices"], pose=h["pose"], shape=h["shape"]))
    return out


def test_crop_reprojects_keypoints_and_vertices(samples):
    cfg = Augmentation(output_size=64)
    rng = np.random.default_rng(0)
    for trial in range(12):
        s = samples[trial % len(samples)]
        view = augment_sample(s, cfg, rng)
        a = view.sample
        assert a["image"].shape == (64, 64, 3) and a["mask"].shape == (64, 64)
        uv = apply_affine(s["keypoints_2d"].astype(np.float64), view.affine)
        np.testing.assert_allclose(a["keypoints_2d"], uv, atol=1e-3)
        np.testing.assert_allclose(project_points(a["keypoints"].astype(np.float64), a["K"].astype(np.float64)),
                                   uv, atol=2e-3)
        uv_v = apply_affine(project_points(s["vertices"].astype(np.float64), s["K"].astype(np.float64)), view.affine)
        np.testing.assert_allclose(project_points(a["vertices"].astype(np.float64), a["K"].astype(np.float64)),
                                   uv_v, atol=2e-3)
        # 3D only rotates about the optical axis; root follows the keypoints
        np.testing.assert_allclose(a["keypoints"], s["keypoints"] @ view.rotation.T, atol=1e-6)
        np.testing.assert_allclose(a["root"], a["keypoints"][0], atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(a["keypoints"] - a["root"], axis=1),
                                   np.linalg.norm(s["keypoints"] - s["root"], axis=1), atol=1e-6)
        # the hand model with the rotated pose reproduces the rotated mesh
        with torch.no_grad():
            out = open_hand()(torch.as_tensor(a["pose"][None]), torch.as_tensor(a["shape"][None]),
                              torch.as_tensor(a["root"][None]))
        np.testing.assert_allclose(out.vertices[0].numpy(), a["vertices"], atol=2e-5)


def test_mask_and_image_warp_with_the_keypoints(samples):
    cfg = Augmentation(output_size=80, brightness=0, contrast=0, saturation=0, hue=0)
    rng = np.random.default_rng(1)
    for trial in range(9):
        s = samples[trial % len(samples)]
        view = augment_sample(s, cfg, rng)
        a = view.sample
        uv = np.rint(a["keypoints_2d"]).astype(int)
        inside = (uv >= 0).all(1) & (uv < 80).all(1)
        assert inside.sum() >= 10
        grown = cv2.dilate(a["mask"], np.ones((3, 3), np.uint8))
        assert grown[uv[inside, 1], uv[inside, 0]].mean() > 0.95
        # the warped image is the warped source: hand pixels are bright, background is 40 or black border
        hand = a["mask"].astype(bool) & (cv2.erode(a["mask"], np.ones((3, 3), np.uint8)) > 0)
        background = cv2.dilate(a["mask"], np.ones((5, 5), np.uint8)) == 0
        assert a["image"][hand].mean() > 90 and a["image"][background].max(initial=0) <= 60
        # the mask is the source mask pulled through the inverse affine (nearest neighbour)
        expected = cv2.warpAffine(s["mask"], view.affine, (80, 80), flags=cv2.INTER_NEAREST)
        np.testing.assert_array_equal(a["mask"], expected)


def test_crop_covers_the_hand_with_the_configured_scale(samples):
    s = samples[0]
    cfg = Augmentation(output_size=64, scale=1.3, scale_jitter=0.0, shift=0.0, rotation=0.0)
    a = augment_sample(s, cfg, np.random.default_rng(0)).sample
    uv = a["keypoints_2d"]
    extent = (uv.max(0) - uv.min(0)).max()
    assert extent == pytest.approx(64 / 1.3, rel=1e-3)
    assert np.allclose((uv.max(0) + uv.min(0)) / 2, 31.5, atol=1e-3)


def test_two_views_are_related_by_their_relative_transforms(samples):
    cfg = Augmentation(output_size=64)
    rng = np.random.default_rng(2)
    for s in samples:
        v1, v2, affine, rotation = two_view(s, cfg, rng)
        np.testing.assert_allclose(apply_affine(v1.sample["keypoints_2d"].astype(np.float64), affine),
                                   v2.sample["keypoints_2d"], atol=2e-3)
        rel1 = v1.sample["vertices"] - v1.sample["root"]
        rel2 = v2.sample["vertices"] - v2.sample["root"]
        np.testing.assert_allclose(rel1 @ rotation.T, rel2, atol=1e-6)
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-9)
        assert rotation[2, 2] == pytest.approx(1.0)
        assert not np.allclose(v1.affine, v2.affine)


def test_augmentation_is_deterministic_given_the_generator(samples):
    cfg = Augmentation(output_size=48, blur_probability=0.5)
    a = augment_sample(samples[1], cfg, np.random.default_rng(42))
    b = augment_sample(samples[1], cfg, np.random.default_rng(42))
    c = augment_sample(samples[1], cfg, np.random.default_rng(43))
    np.testing.assert_array_equal(a.sample["image"], b.sample["image"])
    np.testing.assert_array_equal(a.affine, b.affine)
    assert not np.array_equal(a.sample["image"], c.sample["image"])


def test_color_jitter_changes_colours_only():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(16, 20, 3), dtype=np.uint8)
    cfg = Augmentation(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.2, blur_probability=1.0)
    out = color_jitter(image, cfg, np.random.default_rng(1))
    assert out.shape == image.shape and out.dtype == np.uint8 and not np.array_equal(out, image)
    off = Augmentation(brightness=0, contrast=0, saturation=0, hue=0)
    np.testing.assert_array_equal(color_jitter(image, off, np.random.default_rng(1)), image)
    # hue shift alone keeps grey pixels grey
    grey = np.full((4, 4, 3), 128, np.uint8)
    np.testing.assert_array_equal(color_jitter(grey, Augmentation(brightness=0, contrast=0, saturation=0, hue=0.3),
                                               np.random.default_rng(3)), grey)


def test_eval_crop_keeps_a_square_image_whole_or_crops_the_box(samples):
    s = samples[0]
    cfg = Augmentation(output_size=48)
    view = augment_sample(s, cfg)  # no generator: evaluation crop
    f = 48 / SIZE
    np.testing.assert_allclose(view.affine, [[f, 0, (f - 1) / 2], [0, f, (f - 1) / 2]], atol=1e-9)
    resized = cv2.resize(s["image"], (48, 48), interpolation=cv2.INTER_LINEAR)
    assert np.abs(view.sample["image"].astype(int) - resized).mean() < 8
    boxed = dict(s, bbox=np.array([20, 30, 50, 60], np.float32), has_bbox=np.True_)
    center, size, angle = eval_crop(boxed, cfg)
    np.testing.assert_allclose(center, [35, 45])
    assert size == pytest.approx(30 * 1.3) and angle == 0
    crop = augment_sample(boxed, cfg).sample
    np.testing.assert_allclose((crop["bbox"][2:] + crop["bbox"][:2]) / 2, 23.5, atol=1e-4)
    np.testing.assert_allclose((crop["bbox"][2:] - crop["bbox"][:2]), 30 * 48 / 39, atol=1e-4)
    # a non-square image without a box is cropped around the hand
    wide = make_sample(np.zeros((SIZE, SIZE + 40, 3), np.uint8), camera(SIZE), keypoints=s["keypoints"])
    c, size, _ = eval_crop(wide, cfg)
    uv = wide["keypoints_2d"]
    np.testing.assert_allclose(c, (uv.max(0) + uv.min(0)) / 2, atol=1e-4)


def test_crop_sample_rotation_direction(samples):
    s = samples[2]
    c = s["keypoints_2d"][0].astype(np.float64)
    view = crop_sample(s, c, 40.0, 40, rotation=math.pi / 2)
    # a point to the right of the centre goes up on screen (counter-clockwise)
    p = apply_affine(np.array([[c[0] + 10, c[1]]]), view.affine)[0]
    assert p[1] < 19.5 - 5 and abs(p[0] - 19.5) < 1e-6
    with pytest.raises(ValueError, match="output_size"):
        Augmentation(output_size=4)
    with pytest.raises(ValueError, match="eval_crop"):
        Augmentation(eval_crop="middle")
