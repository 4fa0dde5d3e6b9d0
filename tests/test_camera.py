import numpy as np
import pytest
import torch

from handrecon.camera import (
    apply_affine,
    bbox_from_mask,
    bbox_from_points,
    crop_affine,
    intrinsics_from_fov,
    invert_affine,
    mirror_intrinsics,
    mirror_points,
    project_points,
    transform_intrinsics,
    unproject_points,
)

K = np.array([[500.0, 0, 112], [0, 500.0, 110], [0, 0, 1]])


def _points(n=21, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 3)) * 0.05 + [0.02, 0.01, 0.6]


def test_project_unproject_round_trip_numpy_and_torch():
    p = _points()
    uv = project_points(p, K)
    assert np.allclose(unproject_points(uv, p[:, 2], K), p)
    uv_t = project_points(torch.as_tensor(p), torch.as_tensor(K))
    assert isinstance(uv_t, torch.Tensor) and np.allclose(uv_t.numpy(), uv)
    batched = project_points(np.stack([p, p + [0, 0, 0.1]]), np.stack([K, K]))
    assert batched.shape == (2, 21, 2) and np.allclose(batched[0], uv)


@pytest.mark.parametrize("rotation", [0.0, 0.7, -1.5, np.pi / 2])
def test_crop_changes_K_and_rotation_moves_3d_consistently(rotation):
    p = _points()
    A = crop_affine((130, 100), 150, 128, rotation=rotation)
    K_new, R = transform_intrinsics(K, A)
    assert np.allclose(project_points(p @ R.T, K_new), apply_affine(project_points(p, K), A), atol=1e-9)
    assert abs(K_new[0, 1]) < 1e-9 and np.isclose(K_new[0, 0], K_new[1, 1])
    assert np.allclose(apply_affine(apply_affine(project_points(p, K), A), invert_affine(A)), project_points(p, K))


def test_crop_affine_maps_the_box_centre_to_the_crop_centre():
    A = crop_affine((50.0, 60.0), 40, 64)
    assert np.allclose(apply_affine(np.array([[50.0, 60.0]]), A), [[31.5, 31.5]])
    # Rotation turns content counter-clockwise on screen: a point to the right of the centre goes up.
    A = crop_affine((50.0, 60.0), 64, 64, rotation=np.pi / 2)
    assert np.allclose(apply_affine(np.array([[60.0, 60.0]]), A), [[31.5, 21.5]])


def test_mirroring_flips_pixels_and_x():
    p = _points()
    uv = project_points(p, K)
    uv_m = project_points(mirror_points(p), mirror_intrinsics(K, 224))
    assert np.allclose(uv_m[:, 0], 223 - uv[:, 0]) and np.allclose(uv_m[:, 1], uv[:, 1])


def test_fov_and_boxes():
    K2 = intrinsics_from_fov(90.0, 200)
    assert np.isclose(K2[0, 0], 100.0) and np.isclose(K2[0, 2], 99.5)
    box = bbox_from_points(np.array([[0.0, 0.0], [10.0, 4.0]]), expand=2.0)
    assert np.allclose(box, [-5.0, -8.0, 15.0, 12.0])
    mask = np.zeros((10, 10), np.uint8)
    assert bbox_from_mask(mask) is None
    mask[2:4, 3:8] = 1
    assert np.allclose(bbox_from_mask(mask, square=False), [3, 2, 7, 3])


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="K"):
        project_points(_points(), np.eye(2))
    with pytest.raises(ValueError, match="points"):
        project_points(np.ones((4, 2)), K)
    with pytest.raises(ValueError, match="NaN"):
        project_points(np.full((2, 3), np.nan), K)
    with pytest.raises(ValueError, match="front"):
        project_points(np.array([[0.0, 0.0, -1.0]]), K)
    with pytest.raises(ValueError, match="similarity"):
        transform_intrinsics(K, np.array([[1.0, 0.5, 0], [0, 1.0, 0]]))
    with pytest.raises(ValueError, match="fov"):
        intrinsics_from_fov(200, 10)
