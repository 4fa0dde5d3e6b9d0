"""Pure skinning maths: rotations, kinematic chain, skinning."""

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from handrecon.hand.lbs import axis_angle_to_matrix, kinematic_chain, matrix_to_axis_angle, skin_vertices


def test_rodrigues_matches_scipy_and_is_exact_near_zero():
    rng = np.random.default_rng(0)
    aa = rng.normal(size=(64, 3)) * np.array([[1.0]] * 60 + [[1e-6]] * 4)
    ours = axis_angle_to_matrix(torch.tensor(aa)).numpy()
    np.testing.assert_allclose(ours, Rotation.from_rotvec(aa).as_matrix(), atol=1e-10)


def test_axis_angle_round_trip_including_near_pi():
    rng = np.random.default_rng(1)
    axes = rng.normal(size=(50, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.concatenate([rng.uniform(0, 3.1, 45), [np.pi - 1e-5, np.pi - 1e-4, 1e-7, 0.0, np.pi - 2e-3]])
    aa = torch.tensor(axes * angles[:, None])
    R = axis_angle_to_matrix(aa)
    back = axis_angle_to_matrix(matrix_to_axis_angle(R))
    torch.testing.assert_close(back, R, atol=1e-6, rtol=0)


def test_kinematic_chain_composes_parent_rotations():
    joints = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0]]])
    rot = torch.eye(3).repeat(1, 3, 1, 1)
    rot[0, 1] = axis_angle_to_matrix(torch.tensor([0.0, 0.0, np.pi / 2]))
    posed, transforms = kinematic_chain(rot, joints, [-1, 0, 1])
    torch.testing.assert_close(posed[0, 2], torch.tensor([1.0, 1.0, 0.0]), atol=1e-6, rtol=0)
    # A vertex skinned fully to the last joint, at its rest position, lands on the posed joint.
    v = skin_vertices(joints[:, 2:3], torch.tensor([[0.0, 0.0, 1.0]]), transforms)
    torch.testing.assert_close(v[0, 0], posed[0, 2], atol=1e-6, rtol=0)
