"""Posing a hand model from dataset parameters (FreiHAND MANO vectors, HO3D meta, our synthetic sets)."""

from __future__ import annotations

import numpy as np
import torch

from handrecon.hand.keypoints import KEYPOINT_FROM_JOINT

#: OpenGL camera (y up, z backward) <-> OpenCV camera (y down, z forward); its own inverse.
GL_TO_CV = np.diag([1.0, -1.0, -1.0])


def run_hand(hand, pose, shape, translation=None):
    """One sample through ``hand``: numpy (16,3), (S,), optional (3,) -> float64 vertices (V,3),
    keypoints (21,3), kinematic joints (16,3)."""
    with torch.no_grad():
        out = hand(torch.as_tensor(np.asarray(pose, np.float32)[None]),
                   torch.as_tensor(np.asarray(shape, np.float32)[None]),
                   None if translation is None else torch.as_tensor(np.asarray(translation, np.float32)[None]))
    return (out.vertices[0].double().numpy(), out.keypoints[0].double().numpy(), out.joints[0].double().numpy())


def rest_root_joint(hand, shape) -> np.ndarray:
    """(3,) the kinematic root joint of the shaped template (MANO's ``J[0]``), which no pose moves."""
    with torch.no_grad():
        beta = torch.as_tensor(np.asarray(shape, np.float32))
        v_shaped = hand.v_template + torch.einsum("vcs,s->vc", hand.shapedirs, beta)
        return (hand.joint_regressor[0] @ v_shaped).double().numpy()


def freihand_mano_mesh(hand, theta, K):
    """FreiHAND's 61-value MANO vector -> (pose used as given (16,3), shape (10,), vertices (V,3)).

    As the official toolbox (``utils/model.py``: ``pose_hand`` with ``use_mean_pose=True``): the 48 pose
    values are relative to MANO's ``hands_mean`` (``flat_hand_mean=False``), and the posed hand is
    translated so that keypoint 9 (middle-finger MCP, a kinematic joint) lands at
    ``[(uv_root - pp), focal] / scale`` with ``focal = (fx + fy) / 2`` and ``pp`` the principal point.
    """
    theta = np.asarray(theta, np.float64).reshape(-1)
    pose = theta[:48].reshape(16, 3) + hand.pose_mean.double().cpu().numpy()
    shape = theta[48:58]
    uv_root, scale = theta[58:60], theta[60]
    K = np.asarray(K, np.float64)
    focal, pp = 0.5 * (K[0, 0] + K[1, 1]), K[:2, 2]
    xyz_root = np.concatenate([uv_root - pp, [focal]]) / scale
    vertices, _, joints = run_hand(hand, pose, shape)
    offset = xyz_root - joints[KEYPOINT_FROM_JOINT[9]]
    return pose, shape, vertices + offset


def axis_angle_compose(R: np.ndarray, axis_angle) -> np.ndarray:
    """(3,) axis-angle of ``R @ Rodrigues(axis_angle)``."""
    import cv2

    M, _ = cv2.Rodrigues(np.asarray(axis_angle, np.float64).reshape(3, 1))
    out, _ = cv2.Rodrigues(np.asarray(R, np.float64) @ M)
    return out.reshape(3)
