"""Anatomical joint angles, joint limits and named poses.

A pose is MANO's (B,16,3) axis-angle: joint k's rotation relative to its parent, expressed in the rest-pose
axes of the model. Anatomically it is easier to speak of three angles per joint: **flexion** (positive curls
a digit towards the palm), **abduction** (positive moves it towards the thumb side, for the thumb away from
the palm's plane) and **twist** (about the bone). ``joint_frames`` (16,3,3), columns flexion, abduction and
twist axes in the rest pose, connect the two:

    R_k = F_k  Rx(flexion) Ry(abduction) Rz(twist)  F_k^T

The limits and named poses here are in those angles (radians) for joints 1..15 (joint 0 is the global
rotation and has no limit).
"""

from __future__ import annotations

import numpy as np
import torch

from handrecon.hand.keypoints import FINGER_JOINTS, FINGERS, NUM_JOINTS
from handrecon.hand.lbs import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = [
    "JOINT_LIMITS",
    "NAMED_POSE_ANGLES",
    "POSE_NAMES",
    "angles_to_pose",
    "pose_to_angles",
    "clamp_angles",
    "euler_to_matrix",
    "joint_frames",
]

_FINGER_LIMITS = (  # (flexion, abduction, twist) ranges of MCP, PIP, DIP
    ((-0.40, 1.60), (-0.35, 0.35), (-0.20, 0.20)),
    ((-0.10, 1.90), (-0.08, 0.08), (-0.10, 0.10)),
    ((-0.25, 1.40), (-0.08, 0.08), (-0.10, 0.10)),
)
_THUMB_LIMITS = (  # CMC, MCP, IP
    ((-0.60, 1.00), (-0.50, 0.90), (-0.40, 0.70)),
    ((-0.30, 1.10), (-0.20, 0.20), (-0.20, 0.30)),
    ((-0.40, 1.50), (-0.10, 0.10), (-0.10, 0.10)),
)


def _limit_table() -> np.ndarray:
    table = np.zeros((NUM_JOINTS, 3, 2))
    table[0] = [[-np.pi, np.pi]] * 3
    for name, ids in FINGER_JOINTS.items():
        limits = _THUMB_LIMITS if name == "thumb" else _FINGER_LIMITS
        for k, jid in enumerate(ids):
            table[jid] = limits[k]
    return table


#: (16,3,2) min/max of (flexion, abduction, twist) per joint, radians; joint 0 unlimited (+-pi).
JOINT_LIMITS = _limit_table()


def _digits(**fingers) -> np.ndarray:
    """(16,3) angles from per-finger ((flex, abd, twist) x 3 joints); missing fingers stay flat."""
    angles = np.zeros((NUM_JOINTS, 3))
    for name, triples in fingers.items():
        for jid, triple in zip(FINGER_JOINTS[name], triples):
            angles[jid] = triple
    return angles


_FIST = ((1.45, 0, 0), (1.75, 0, 0), (1.1, 0, 0))
_THUMB_OVER_FIST = ((0.55, 0.35, 0.5), (0.55, 0, 0), (0.75, 0, 0))
_PINCH_THUMB = ((0.52, 0.13, 0.0), (0.10, 0, 0), (0.05, 0, 0))  # tips meet (found by optimisation)
_PINCH_INDEX = ((0.62, 0.0, 0), (0.72, 0, 0), (0.45, 0, 0))

#: Named poses as (16,3) anatomical angles.
NAMED_POSE_ANGLES = {
    "flat": _digits(),
    "relaxed": _digits(
        thumb=((0.15, 0.2, 0.15), (0.15, 0, 0), (0.2, 0, 0)),
        index=((0.25, 0.03, 0), (0.35, 0, 0), (0.2, 0, 0)),
        middle=((0.3, 0, 0), (0.4, 0, 0), (0.25, 0, 0)),
        ring=((0.35, -0.03, 0), (0.45, 0, 0), (0.25, 0, 0)),
        little=((0.4, -0.08, 0), (0.5, 0, 0), (0.3, 0, 0)),
    ),
    "fist": _digits(thumb=_THUMB_OVER_FIST, index=_FIST, middle=_FIST, ring=_FIST, little=_FIST),
    "point": _digits(thumb=_THUMB_OVER_FIST, middle=_FIST, ring=_FIST, little=_FIST),
    "pinch": _digits(
        thumb=_PINCH_THUMB, index=_PINCH_INDEX,
        middle=((0.5, 0, 0), (0.6, 0, 0), (0.35, 0, 0)),
        ring=((0.55, 0, 0), (0.7, 0, 0), (0.35, 0, 0)),
        little=((0.6, 0, 0), (0.75, 0, 0), (0.4, 0, 0)),
    ),
    "ok": _digits(
        thumb=_PINCH_THUMB, index=_PINCH_INDEX,
        middle=((0.1, -0.05, 0), (0.1, 0, 0), (0.05, 0, 0)),
        ring=((0.12, -0.15, 0), (0.12, 0, 0), (0.05, 0, 0)),
        little=((0.15, -0.3, 0), (0.15, 0, 0), (0.05, 0, 0)),
    ),
    "spread": _digits(
        thumb=((-0.2, -0.4, 0), (0, 0, 0), (-0.1, 0, 0)),
        index=((0, 0.3, 0), (0, 0, 0), (0, 0, 0)),
        middle=((0, 0.05, 0), (0, 0, 0), (0, 0, 0)),
        ring=((0, -0.18, 0), (0, 0, 0), (0, 0, 0)),
        little=((0, -0.35, 0), (0, 0, 0), (0, 0, 0)),
    ),
    "thumbs_up": _digits(
        thumb=((-0.2, -0.2, 0.1), (0, 0, 0), (0, 0, 0)),
        index=_FIST, middle=_FIST, ring=_FIST, little=_FIST,
    ),
}
POSE_NAMES = tuple(NAMED_POSE_ANGLES)


def euler_to_matrix(angles: torch.Tensor) -> torch.Tensor:
    """(...,3) (flexion, abduction, twist) -> (...,3,3) = Rx(flexion) Ry(abduction) Rz(twist)."""
    eye = torch.eye(3, dtype=angles.dtype, device=angles.device)
    rx = axis_angle_to_matrix(angles[..., 0:1] * eye[0])
    ry = axis_angle_to_matrix(angles[..., 1:2] * eye[1])
    rz = axis_angle_to_matrix(angles[..., 2:3] * eye[2])
    return rx @ ry @ rz


def _as_tensor(x, name, like=None):
    t = torch.as_tensor(x, dtype=like.dtype if like is not None else torch.float32)
    if t.ndim < 2 or t.shape[-2:] != (NUM_JOINTS, 3):
        raise ValueError(f"{name} must have shape (..., {NUM_JOINTS}, 3), got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or inf")
    return t


def angles_to_pose(angles, frames, global_orient=None) -> torch.Tensor:
    """Anatomical angles (...,16,3) -> axis-angle pose (...,16,3). Row 0 of ``angles`` is ignored;
    ``global_orient`` (...,3) axis-angle goes there instead (zero if None). ``frames``: (16,3,3) from
    :func:`joint_frames`."""
    frames = torch.as_tensor(frames, dtype=torch.float32)
    a = _as_tensor(angles, "angles", frames)
    R = frames @ euler_to_matrix(a) @ frames.transpose(-1, -2)
    pose = matrix_to_axis_angle(R)
    root = torch.zeros_like(pose[..., 0, :]) if global_orient is None else torch.as_tensor(global_orient, dtype=pose.dtype)
    return torch.cat([root.expand_as(pose[..., :1, :].squeeze(-2)).unsqueeze(-2), pose[..., 1:, :]], dim=-2)


def pose_to_angles(pose, frames) -> torch.Tensor:
    """Axis-angle pose (...,16,3) -> anatomical angles (...,16,3) (XYZ Euler in each joint frame)."""
    frames = torch.as_tensor(frames, dtype=torch.float32)
    p = _as_tensor(pose, "pose", frames)
    M = frames.transpose(-1, -2) @ axis_angle_to_matrix(p) @ frames
    # M = Rx(a) Ry(b) Rz(c): M[0,2] = sin b; M[1,2] = -sin a cos b; M[2,2] = cos a cos b;
    # M[0,1] = -cos b sin c; M[0,0] = cos b cos c.
    b = torch.asin(M[..., 0, 2].clamp(-1.0, 1.0))
    a = torch.atan2(-M[..., 1, 2], M[..., 2, 2])
    c = torch.atan2(-M[..., 0, 1], M[..., 0, 0])
    out = torch.stack([a, b, c], dim=-1)
    out[..., 0, :] = 0.0
    return out


def clamp_angles(angles) -> torch.Tensor:
    """Clamp anatomical angles (...,16,3) to :data:`JOINT_LIMITS`."""
    a = _as_tensor(angles, "angles")
    lim = torch.as_tensor(JOINT_LIMITS, dtype=a.dtype)
    return torch.maximum(torch.minimum(a, lim[..., 1]), lim[..., 0])


def _normalize(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def joint_frames(joints: np.ndarray, thumb_roll_deg: float = 65.0) -> np.ndarray:
    """Anatomical frames (16,3,3) from rest joints (16,3) of a right hand: columns flexion, abduction, twist.

    Twist is along the bone (joint to child), abduction about the back-of-hand normal of the digit (the
    thumb's nail side is rolled by ``thumb_roll_deg`` towards the thumb side), flexion about
    ``normal x bone``, so that positive flexion curls a digit towards the palm. The root frame is identity.
    Works for any right-hand template whose rest pose is roughly flat (the open hand, MANO).
    """
    j = np.asarray(joints, dtype=np.float64)
    index_mcp, little_mcp = j[1], j[7]
    dorsal = _normalize(np.cross(little_mcp - j[0], index_mcp - j[0]))
    frames = np.repeat(np.eye(3)[None], NUM_JOINTS, axis=0)
    for name in FINGERS:
        ids = FINGER_JOINTS[name]
        for k, jid in enumerate(ids):
            child = j[ids[k + 1]] if k < 2 else j[jid] + (j[jid] - j[ids[k - 1]])
            u = _normalize(child - j[jid])
            n = _normalize(dorsal - u * (u @ dorsal))
            if name == "thumb":
                roll = np.radians(thumb_roll_deg)
                n = np.cos(roll) * n + np.sin(roll) * np.cross(n, u)
            frames[jid] = np.stack([np.cross(n, u), n, u], axis=1)
    return frames
