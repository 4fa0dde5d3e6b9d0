"""Labels agree with pixels; samples are deterministic; stored parameters reproduce the mesh."""

import cv2
import numpy as np
import pytest
import torch

from handrecon.camera import project_points
from handrecon.hand import load_hand_model
from handrecon.hand.keypoints import TIP_KEYPOINTS
from handrecon.synth import AppearanceConfig, SceneConfig, SceneGenerator


@pytest.fixture(scope="module")
def generator():
    return SceneGenerator(seed=5)


@pytest.fixture(scope="module")
def samples(generator):
    return generator.generate(range(24))


def _label_silhouette(sample, faces):
    """Rasterise the labelled mesh in 2D without GL: pixel (x, y) is covered when the point (x, y)
    (OpenCV pixel centres) lies inside a projected triangle."""
    uv = project_points(sample["vertices"], sample["K"])
    h, w = sample["mask"].shape
    canvas = np.zeros((h, w), bool)
    for a, b, c in uv[faces]:
        x0, y0 = np.floor(np.minimum(np.minimum(a, b), c)).astype(int)
        x1, y1 = np.ceil(np.maximum(np.maximum(a, b), c)).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w - 1), min(y1, h - 1)
        if x0 > x1 or y0 > y1:
            continue
        ys, xs = np.mgrid[y0:y1 + 1, x0:x1 + 1]
        p = np.stack([xs, ys], -1).astype(np.float64)

        def edge(p0, p1):
            return (p1[0] - p0[0]) * (p[..., 1] - p0[1]) - (p1[1] - p0[1]) * (p[..., 0] - p0[0])

        e = np.stack([edge(a, b), edge(b, c), edge(c, a)])
        inside = (e >= 0).all(0) | (e <= 0).all(0)
        canvas[y0:y1 + 1, x0:x1 + 1] |= inside
    return canvas


def test_mask_is_the_projected_mesh_minus_occluders(generator, samples):
    faces = generator.hand.faces.numpy()
    clean = 0
    for s in samples:
        mask = s["mask"].astype(bool)
        label = _label_silhouette(s, faces)
        assert mask.sum() > 50
        # Every mask pixel is covered by the projected mesh; without occluders the two are the same but
        # for pixel centres that lie exactly on a triangle edge.
        assert (mask & ~label).sum() <= 0.002 * label.sum()
        if not s["occluded"]:
            clean += 1
            assert (label & ~mask).sum() <= 0.002 * label.sum()
    assert clean > 10


def test_visible_keypoints_project_onto_the_mask(samples):
    kernel = np.ones((5, 5), np.uint8)
    checked = 0
    for s in samples:
        mask = cv2.dilate(s["mask"], kernel).astype(bool)
        uv = np.rint(s["keypoints_2d"]).astype(int)
        for (u, v), vis in zip(uv, s["visible"]):
            if vis:
                checked += 1
                assert mask[v, u]
        assert np.allclose(s["keypoints_2d"], project_points(s["keypoints"], s["K"]), atol=1e-3)
    assert checked > 100


def test_fingertip_keypoints_lie_on_the_mesh(samples):
    for s in samples:
        for k in TIP_KEYPOINTS:
            d = np.linalg.norm(s["vertices"] - s["keypoints"][k], axis=1).min()
            assert d < 1e-5


def test_stored_pose_shape_and_root_reproduce_the_vertices(samples):
    hand = load_hand_model("open")
    pose = torch.as_tensor(np.stack([s["pose"] for s in samples]))
    shape = torch.as_tensor(np.stack([s["shape"] for s in samples]))
    root = torch.as_tensor(np.stack([s["root"] for s in samples]))
    with torch.no_grad():
        out = hand(pose, shape, translation=root)
    verts = np.stack([s["vertices"] for s in samples])
    assert np.abs(out.vertices.numpy() - verts).max() < 1e-4
    for s in samples:
        assert np.allclose(s["root"], s["keypoints"][0])
        assert s["keypoints"][:, 2].min() > 0.1
        assert np.isclose(s["scale"], np.linalg.norm(s["keypoints"][9] - s["keypoints"][10]))


def test_samples_are_deterministic_whatever_the_batch(generator, samples):
    again = SceneGenerator(seed=5).generate([7, 3])
    for s, i in zip(again, [7, 3]):
        for key in ("image", "mask", "K", "vertices", "visible"):
            assert np.array_equal(s[key], samples[i][key]), key
    other = SceneGenerator(seed=6).generate([3])[0]
    assert not np.array_equal(other["image"], samples[3]["image"])


def test_occluders_hide_part_of_the_hand():
    cfg = SceneConfig(size=128, appearance=AppearanceConfig(occluder_probability=1.0))
    gen = SceneGenerator(seed=1, config=cfg)
    faces = gen.hand.faces.numpy()
    hidden = []
    for s in gen.generate(range(12)):
        assert s["occluded"]
        label = _label_silhouette(s, faces)
        hidden.append(1 - s["mask"].sum() / label.sum())
    assert np.median(hidden) > 0.02


def test_full_masks_cover_the_hand_behind_occluders():
    appearance = AppearanceConfig(occluder_probability=1.0)
    visible = SceneGenerator(seed=1, config=SceneConfig(size=128, appearance=appearance)).generate(range(6))
    gen = SceneGenerator(seed=1, config=SceneConfig(size=128, appearance=appearance, mask="full"))
    faces = gen.hand.faces.numpy()
    hidden = []
    for s, v in zip(gen.generate(range(6)), visible):
        assert np.array_equal(s["image"], v["image"])  # only the label changes
        assert np.array_equal(s["vertices"], v["vertices"]) and np.array_equal(s["visible"], v["visible"])
        full, seen, label = s["mask"].astype(bool), v["mask"].astype(bool), _label_silhouette(s, faces)
        assert not (seen & ~full).any()
        assert (full ^ label).sum() <= 0.002 * label.sum()
        hidden.append((full & ~seen).sum() / full.sum())
    assert np.median(hidden) > 0.02


def test_mask_kind_is_checked():
    with pytest.raises(ValueError, match="mask must be one of"):
        SceneConfig(mask="amodal")


def test_config_and_cli_offer_exactly_the_scene_mask_kinds():
    """The training config and ``handrecon synth --mask`` spell the kinds out (so that neither imports the
    renderer); they must stay the scene's own list."""
    import argparse
    import dataclasses

    from handrecon.cli import build_parser
    from handrecon.synth.scene import MASK_KINDS
    from handrecon.train.config import SourceConfig

    field = next(f for f in dataclasses.fields(SourceConfig) if f.name == "mask")
    assert tuple(field.metadata["choices"]) == MASK_KINDS and field.default == SceneConfig().mask
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    option = next(a for a in subparsers.choices["synth"]._actions if a.dest == "mask")
    assert tuple(option.choices) == MASK_KINDS and option.default == SceneConfig().mask


def test_left_hands_are_mirrored_right_hands():
    right = SceneGenerator(seed=2, config=SceneConfig(size=96)).generate([4])[0]
    left = SceneGenerator(seed=2, config=SceneConfig(size=96, left_probability=1.0)).generate([4])[0]
    assert left["left"] and not right["left"]
    assert np.array_equal(left["mask"], right["mask"][:, ::-1])
    assert np.allclose(left["vertices"][:, 0], -right["vertices"][:, 0])
    uv_r, uv_l = right["keypoints_2d"], left["keypoints_2d"]
    assert np.allclose(uv_l[:, 0], 95 - uv_r[:, 0], atol=1e-3) and np.allclose(uv_l[:, 1], uv_r[:, 1], atol=1e-3)


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="left_probability"):
        SceneConfig(left_probability=2.0)
    with pytest.raises(ValueError, match="size"):
        SceneConfig(size=4)
    with pytest.raises(ValueError, match="indices"):
        SceneGenerator(seed=0).generate([-1])
