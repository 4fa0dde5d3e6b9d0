"""Names, orders and groups of the hand's joints and keypoints.

Two orders matter:

* **Joints** (16, MANO's kinematic order): the articulated joints a pose rotates. Index 0 is the wrist
  (global rotation), then three joints per finger, base to tip, fingers in MANO's order
  index, middle, little, ring, thumb.
* **Keypoints** (21, FreiHAND order): 0 wrist; thumb 1-4; index 5-8; middle 9-12; ring 13-16;
  little 17-20, each finger base to tip. Keypoint = joint, or a fingertip surface vertex.

Every other module takes its names, parents and groups from here.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "JOINT_NAMES",
    "JOINT_PARENTS",
    "NUM_JOINTS",
    "KEYPOINT_NAMES",
    "NUM_KEYPOINTS",
    "FINGERS",
    "KEYPOINT_FROM_JOINT",
    "TIP_KEYPOINTS",
    "FINGER_KEYPOINTS",
    "FINGER_JOINTS",
    "KEYPOINT_LEVELS",
    "KEYPOINT_PARENTS",
    "BONES",
    "keypoint_regressor_from_joints",
]

FINGERS = ("thumb", "index", "middle", "ring", "little")

JOINT_NAMES = (
    "wrist",
    "index_mcp", "index_pip", "index_dip",
    "middle_mcp", "middle_pip", "middle_dip",
    "little_mcp", "little_pip", "little_dip",
    "ring_mcp", "ring_pip", "ring_dip",
    "thumb_cmc", "thumb_mcp", "thumb_ip",
)
NUM_JOINTS = len(JOINT_NAMES)

# Parent of each joint in the kinematic tree (-1 for the root).
JOINT_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)

# Joints of each finger, base to tip, keyed by finger name.
FINGER_JOINTS = {
    "thumb": (13, 14, 15),
    "index": (1, 2, 3),
    "middle": (4, 5, 6),
    "ring": (10, 11, 12),
    "little": (7, 8, 9),
}

KEYPOINT_NAMES = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "little_mcp", "little_pip", "little_dip", "little_tip",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)

# For each keypoint, the joint it is (None for fingertips, which are surface vertices).
KEYPOINT_FROM_JOINT = tuple(
    JOINT_NAMES.index(name) if name in JOINT_NAMES else None for name in KEYPOINT_NAMES
)

# Keypoint indices of the fingertips, FreiHAND order (thumb, index, middle, ring, little).
TIP_KEYPOINTS = (4, 8, 12, 16, 20)

# Keypoints of each finger (the "part" groups of CMR's semantic aggregation), base to tip.
FINGER_KEYPOINTS = {finger: tuple(range(1 + 4 * i, 5 + 4 * i)) for i, finger in enumerate(FINGERS)}

# Keypoints of each kinematic level (CMR's "level" groups): level 0 = finger bases ... level 3 = tips.
KEYPOINT_LEVELS = tuple(tuple(1 + 4 * f + level for f in range(5)) for level in range(4))

# Parent of each keypoint along the hand's skeleton (wrist is the root).
KEYPOINT_PARENTS = (-1,) + tuple(0 if k % 4 == 1 else k - 1 for k in range(1, NUM_KEYPOINTS))

# Bones as (parent, child) keypoint pairs, for drawing skeletons.
BONES = tuple((p, c) for c, p in enumerate(KEYPOINT_PARENTS) if p >= 0)


def keypoint_regressor_from_joints(joint_regressor, tip_vertices) -> np.ndarray:
    """(21,V) keypoint regressor: the 16 joint rows of ``joint_regressor`` (16,V) in FreiHAND order, and
    one-hot rows for the five fingertip vertices ``tip_vertices`` (thumb, index, middle, ring, little)."""
    joint_regressor = np.asarray(joint_regressor, dtype=np.float64)
    if joint_regressor.ndim != 2 or joint_regressor.shape[0] != NUM_JOINTS:
        raise ValueError(f"joint_regressor must have shape ({NUM_JOINTS}, V), got {joint_regressor.shape}")
    if len(tip_vertices) != len(TIP_KEYPOINTS):
        raise ValueError(f"tip_vertices must list {len(TIP_KEYPOINTS)} vertex indices, got {len(tip_vertices)}")
    out = np.zeros((NUM_KEYPOINTS, joint_regressor.shape[1]))
    for k, jid in enumerate(KEYPOINT_FROM_JOINT):
        if jid is not None:
            out[k] = joint_regressor[jid]
    for k, vid in zip(TIP_KEYPOINTS, tip_vertices):
        out[k, vid] = 1.0
    return out
